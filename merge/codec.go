package merge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// A small binary codec for the stream headers, the list of known files and
// the manifest: tens of thousands of entries per sync, where JSON cost more
// than the file system work. Every length is bounded on decode.

type enc struct{ b []byte }

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *enc) bytes16(p []byte) {
	e.u16(uint16(len(p)))
	e.b = append(e.b, p...)
}
func (e *enc) bytes32(p []byte) {
	e.u32(uint32(len(p)))
	e.b = append(e.b, p...)
}

type dec struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated record")

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = errShort
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}
func (d *dec) u16() uint16 {
	if p := d.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}
func (d *dec) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}
func (d *dec) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

// bytes16 and bytes32 return slices of the decoded buffer (no copy): every
// buffer decoded here is fresh and owned by its result.
func (d *dec) bytes16() []byte { return d.take(int(d.u16())) }
func (d *dec) bytes32() []byte { return d.take(int(d.u32())) }

const (
	typeDir  = 1
	typeFile = 2
	typeEnd  = 3
	typeGone = 4
	typeMeta = 5
)

var typeNames = map[uint8]string{typeDir: "dir", typeFile: "file", typeEnd: "end", typeGone: "gone", typeMeta: "meta"}

func encodeHeader(h *Header) []byte {
	var e enc
	switch h.Type {
	case "dir":
		e.u8(typeDir)
	case "file":
		e.u8(typeFile)
	case "end":
		e.u8(typeEnd)
	case "gone":
		e.u8(typeGone)
	case "meta":
		e.u8(typeMeta)
	default:
		e.u8(0)
	}
	e.u32(h.Mode)
	e.u64(uint64(h.Size))
	e.bytes16(h.Path)
	e.bytes16([]byte(h.Key))
	e.bytes32([]byte(h.Err))
	e.u16(uint16(len(h.Warnings)))
	for _, w := range h.Warnings {
		e.bytes16([]byte(w))
	}
	return e.b
}

func decodeHeader(b []byte) (*Header, error) {
	d := &dec{b: b}
	h := &Header{}
	t := d.u8()
	h.Mode = d.u32()
	h.Size = int64(d.u64())
	h.Path = d.bytes16()
	h.Key = string(d.bytes16())
	h.Err = string(d.bytes32())
	n := int(d.u16())
	for i := 0; i < n && d.err == nil; i++ {
		h.Warnings = append(h.Warnings, string(d.bytes16()))
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("malformed stream: %w", d.err)
	}
	name, ok := typeNames[t]
	if !ok {
		return nil, fmt.Errorf("malformed stream: unknown entry type %d", t)
	}
	h.Type = name
	return h, nil
}

// writeRequest sends the request: its JSON part, then the known files.
func writeRequest(w io.Writer, req *ReadRequest) error {
	js, err := json.Marshal(struct {
		Root    string   `json:"root"`
		Home    string   `json:"home"`
		Limits  Limits   `json:"limits"`
		Exclude []string `json:"exclude"`
	}{req.Root, req.Home, req.Limits, req.Exclude})
	if err != nil {
		return err
	}
	size := 8 + len(js)
	for _, k := range req.Known {
		size += 4 + len(k.Path) + len(k.Key)
	}
	e := enc{b: make([]byte, 0, size)}
	e.bytes32(js)
	e.u32(uint32(len(req.Known)))
	for _, k := range req.Known {
		e.bytes16(k.Path)
		e.bytes16([]byte(k.Key))
	}
	_, err = w.Write(e.b)
	return err
}

func readRequest(r io.Reader) (*ReadRequest, error) {
	data, err := io.ReadAll(io.LimitReader(bufio.NewReader(r), 256<<20))
	if err != nil {
		return nil, err
	}
	d := &dec{b: data}
	var req ReadRequest
	if err := json.Unmarshal(d.bytes32(), &req); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	n := int(d.u32())
	if n > 0 && n <= len(d.b)/4 { // each entry takes 4 bytes at least
		req.Known = make([]KnownFile, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		req.Known = append(req.Known, KnownFile{Path: d.bytes16(), Key: string(d.bytes16())})
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode request: %w", d.err)
	}
	return &req, nil
}

const manifestMagic = "pi-agent manifest 2\n"

func encodeManifest(m *Manifest) ([]byte, error) {
	js, err := json.Marshal(struct {
		Base map[string]any `json:"base"`
	}{m.Base})
	if err != nil {
		return nil, err
	}
	e := enc{b: []byte(manifestMagic)}
	e.bytes32(js)
	e.u32(uint32(len(m.Dirs)))
	for _, d := range m.Dirs {
		e.bytes16(d)
	}
	files := append([]ManifestFile(nil), m.Files...)
	sort.Slice(files, func(i, j int) bool { return bytes.Compare(files[i].Path, files[j].Path) < 0 })
	e.u32(uint32(len(files)))
	for _, f := range files {
		e.bytes16(f.Path)
		e.bytes16([]byte(f.Key))
		e.bytes16([]byte(f.Hash))
		e.u32(f.Mode)
	}
	return e.b, nil
}

func decodeManifest(data []byte) (*Manifest, error) {
	if len(data) < len(manifestMagic) || string(data[:len(manifestMagic)]) != manifestMagic {
		return nil, errors.New("not a manifest")
	}
	d := &dec{b: data[len(manifestMagic):]}
	var head struct {
		Base map[string]any `json:"base"`
	}
	if err := json.Unmarshal(d.bytes32(), &head); err != nil {
		return nil, err
	}
	m := &Manifest{Version: 1, Base: head.Base}
	for n, i := int(d.u32()), 0; i < n && d.err == nil; i++ {
		m.Dirs = append(m.Dirs, d.bytes16())
	}
	n := int(d.u32())
	if n > 0 && d.err == nil && n <= len(d.b) {
		m.Files = make([]ManifestFile, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		m.Files = append(m.Files, ManifestFile{Path: d.bytes16(), Key: string(d.bytes16()), Hash: string(d.bytes16()), Mode: d.u32()})
	}
	if d.err != nil || len(d.b) != 0 {
		return nil, errors.New("malformed manifest")
	}
	return m, nil
}
