package merge

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkRootSideUnchanged times the root side's own work in an
// unchanged resync of 10,000 files, and the reader's decoding of the
// request: everything but the stats and the process (make bench-sync).
func BenchmarkRootSideUnchanged(b *testing.B) {
	m := &Manifest{Version: 1, Base: map[string]any{"a": 1}}
	for i := 0; i < 10000; i++ {
		m.Files = append(m.Files, ManifestFile{Path: []byte(fmt.Sprintf("bulk/d%02d/f%03d", i/100, i%100)), Key: fmt.Sprintf("%d:%d:%d:%d", 1796407316089278972+i, 20000, 123456+i, 33188), Hash: fmt.Sprintf("%064x", i), Mode: 0o644})
	}
	raw, _ := encodeManifest(m)
	exclude := append([]string{}, DefaultExclude...)
	b.Run("decode", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			decodeManifest(raw)
		}
	})
	b.Run("exclude", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			n := 0
			x := compileExclude(exclude)
			for _, f := range m.Files {
				if !x.match(string(f.Path)) {
					n++
				}
			}
		}
	})
	b.Run("request", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			req := ReadRequest{Root: "/x", Exclude: exclude}
			for _, f := range m.Files {
				req.Known = append(req.Known, KnownFile{Path: f.Path, Key: f.Key})
			}
			var in bytes.Buffer
			writeRequest(&in, &req)
		}
	})
	b.Run("readRequest", func(b *testing.B) {
		req := ReadRequest{Root: "/x", Exclude: exclude}
		for _, f := range m.Files {
			req.Known = append(req.Known, KnownFile{Path: f.Path, Key: f.Key})
		}
		var in bytes.Buffer
		writeRequest(&in, &req)
		data := in.Bytes()
		for i := 0; i < b.N; i++ {
			readRequest(bytes.NewReader(data))
		}
	})
}
