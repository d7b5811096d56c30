package merge

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

type frame struct {
	h    Header
	body string
}

func stream(frames ...frame) *bytes.Buffer {
	var b bytes.Buffer
	for _, f := range frames {
		h := f.h
		if (h.Type == "file" || h.Type == "meta") && h.Size == 0 {
			h.Size = int64(len(f.body))
		}
		writeFrame(&b, &h)
		b.WriteString(f.body)
	}
	return &b
}

func testConsume(t *testing.T, s *bytes.Buffer) (*received, *Result, string, error) {
	t.Helper()
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	o := &Options{HostDir: "/home/alice/.pi/agent", AgentUID: os.Getuid(), AgentGID: os.Getgid(), Limits: Limits{MaxFile: 100, MaxTotal: 150, MaxEntries: 10}}
	res := &Result{}
	rx, err := o.consume(s, compileExclude(DefaultExclude), fd, res)
	return rx, res, dir, err
}

func TestConsumeStagesFiles(t *testing.T) {
	rx, res, dir, err := testConsume(t, stream(
		frame{h: Header{Path: []byte("skills"), Type: "dir", Mode: 0o755}},
		frame{h: Header{Path: []byte("skills/x.md"), Type: "file", Mode: 0o4777, Key: "k"}, body: "hello"},
		frame{h: Header{Path: []byte("settings.json"), Type: "file", Key: "s"}, body: `{"a":1}`},
		frame{h: Header{Path: []byte(".env"), Type: "file", Key: "e"}, body: "A=1\n"},
		frame{h: Header{Path: []byte("sessions/s.jsonl"), Type: "file", Key: "x"}, body: "runtime-owned"},
		frame{h: Header{Path: []byte("a\nb\xff"), Type: "file", Key: "w"}, body: "odd name"},
		frame{h: Header{Type: "end", Warnings: []string{"fifo: skipped\x1b[2J"}}},
	))
	if err != nil {
		t.Fatal(err)
	}
	if string(rx.settings) != `{"a":1}` || string(rx.env) != "A=1\n" {
		t.Errorf("settings %q env %q", rx.settings, rx.env)
	}
	var rels []string
	for _, e := range rx.entries {
		rels = append(rels, e.Rel)
	}
	if strings.Join(rels, "|") != "skills|skills/x.md|a\nb\xff" {
		t.Errorf("entries %q", rels)
	}
	st, err := os.Stat(filepath.Join(dir, rx.entries[1].Staged))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 || st.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
		t.Errorf("staged mode %v: setuid and group/other write must go", st.Mode())
	}
	if len(res.Warnings) != 1 || strings.ContainsRune(res.Warnings[0], 0x1b) {
		t.Errorf("warnings not sanitized: %q", res.Warnings)
	}
}

func TestConsumeRejectsHostileStreams(t *testing.T) {
	end := frame{h: Header{Type: "end"}}
	for name, s := range map[string]*bytes.Buffer{
		"dotdot":          stream(frame{h: Header{Path: []byte("../../etc/passwd"), Type: "file"}, body: "x"}, end),
		"absolute":        stream(frame{h: Header{Path: []byte("/etc/passwd"), Type: "file"}, body: "x"}, end),
		"inner dotdot":    stream(frame{h: Header{Path: []byte("skills/../../x"), Type: "file"}, body: "x"}, end),
		"empty component": stream(frame{h: Header{Path: []byte("a//b"), Type: "file"}, body: "x"}, end),
		"duplicate":       stream(frame{h: Header{Path: []byte("a"), Type: "file"}, body: "x"}, frame{h: Header{Path: []byte("a"), Type: "file"}, body: "y"}, end),
		"too big":         stream(frame{h: Header{Path: []byte("big"), Type: "file"}, body: strings.Repeat("x", 101)}, end),
		"too much":        stream(frame{h: Header{Path: []byte("a"), Type: "file"}, body: strings.Repeat("x", 80)}, frame{h: Header{Path: []byte("b"), Type: "file"}, body: strings.Repeat("x", 80)}, end),
		"negative size":   stream(frame{h: Header{Path: []byte("a"), Type: "file", Size: -5}}, end),
		"dir with body":   stream(frame{h: Header{Path: []byte("d"), Type: "dir", Size: 3}, body: "abc"}, end),
		"unknown type":    stream(frame{h: Header{Path: []byte("s"), Type: "symlink"}}, end), // encodes as type 0
		"reader error":    stream(frame{h: Header{Type: "end", Err: "the config has more than 10 entries"}}),
		"truncated":       stream(frame{h: Header{Path: []byte("a"), Type: "file", Size: 50}, body: "short"}),
		"no end":          stream(frame{h: Header{Path: []byte("a"), Type: "dir"}}),
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, _, err := testConsume(t, s); err == nil {
				t.Error("accepted")
			}
		})
	}
	many := []frame{}
	for i := 0; i < 12; i++ {
		many = append(many, frame{h: Header{Path: []byte{byte('a' + i)}, Type: "dir"}})
	}
	if _, _, _, err := testConsume(t, stream(append(many, end)...)); err == nil || !strings.Contains(err.Error(), "more than 10 entries") {
		t.Errorf("entry limit: %v", err)
	}
}

// The reader's walk, in process: links followed, non-regular files skipped,
// loops cut, unchanged files announced without content.
func TestReaderWalk(t *testing.T) {
	root := t.TempDir()
	store := t.TempDir()
	os.MkdirAll(filepath.Join(root, "skills", "s"), 0o755)
	os.WriteFile(filepath.Join(root, "AGENTS.md"), []byte("agents"), 0o644)
	os.WriteFile(filepath.Join(store, "prompt.md"), []byte("from the store"), 0o444)
	os.Symlink(filepath.Join(store, "prompt.md"), filepath.Join(root, "prompt.md"))
	os.Symlink(root, filepath.Join(root, "skills", "loop"))
	os.Symlink("/nonexistent", filepath.Join(root, "dangling"))
	syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644)
	os.WriteFile(filepath.Join(root, "skills", "s", "SKILL.md"), []byte("skill"), 0o644)
	os.MkdirAll(filepath.Join(root, "sessions"), 0o755)
	os.WriteFile(filepath.Join(root, "sessions", "x"), []byte("no"), 0o644)

	read := func(known []KnownFile) (map[string]*Header, map[string]string, *Header) {
		var req, out bytes.Buffer
		writeRequest(&req, &ReadRequest{Root: root, Known: known, Limits: DefaultLimits, Exclude: DefaultExclude})
		if err := serveRead(&req, &out); err != nil {
			t.Fatal(err)
		}
		hs, bodies := map[string]*Header{}, map[string]string{}
		for {
			h, err := readFrame(&out)
			if err != nil {
				t.Fatal(err)
			}
			if h.Type == "end" {
				return hs, bodies, h
			}
			body := make([]byte, h.Size)
			out.Read(body)
			hs[string(h.Path)], bodies[string(h.Path)] = h, string(body)
		}
	}
	hs, bodies, end := read(nil)
	if bodies["prompt.md"] != "from the store" || bodies["skills/s/SKILL.md"] != "skill" {
		t.Errorf("bodies %q", bodies)
	}
	for _, absent := range []string{"fifo", "dangling", "sessions", "sessions/x", "skills/loop"} {
		if _, ok := hs[absent]; ok {
			t.Errorf("%s was sent", absent)
		}
	}
	if end.Err != "" || len(end.Warnings) != 3 {
		t.Errorf("end: err %q warnings %q (want fifo, dangling, loop)", end.Err, end.Warnings)
	}
	// Second walk: a known file at its key is not sent; a changed one is;
	// a known one that disappeared is announced gone.
	hs2, _, _ := read([]KnownFile{
		{Path: []byte("AGENTS.md"), Key: hs["AGENTS.md"].Key},
		{Path: []byte("prompt.md"), Key: "stale"},
		{Path: []byte("removed.md"), Key: "k"},
	})
	if _, sent := hs2["AGENTS.md"]; sent {
		t.Error("an unchanged file was sent")
	}
	if h := hs2["prompt.md"]; h == nil || h.Type != "file" || h.Size == 0 {
		t.Errorf("a changed file was not sent with content: %+v", h)
	}
	if h := hs2["removed.md"]; h == nil || h.Type != "gone" {
		t.Errorf("a vanished known file was not announced gone: %+v", h)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := &Manifest{Version: 1, Base: map[string]any{"a": 1.0, "n": nil, "l": []any{"x"}},
		Dirs:  [][]byte{[]byte("d"), []byte("d\xff")},
		Files: []ManifestFile{{Path: []byte("d/a\nb"), Key: "1:2:3", Hash: strings.Repeat("ab", 32), Mode: 0o644}}}
	data, err := encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeManifest(data)
	if err != nil || !reflect.DeepEqual(back, m) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	for i := 0; i < len(data); i += 7 {
		if _, err := decodeManifest(data[:i]); err == nil {
			t.Fatalf("truncated manifest (%d of %d bytes) accepted", i, len(data))
		}
	}
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add(encodeHeader(&Header{Type: "file", Path: []byte("a/b"), Size: 3, Key: "k", Mode: 0o644}))
	f.Add(encodeHeader(&Header{Type: "end", Warnings: []string{"w"}, Err: "e"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b)
		if err != nil {
			return
		}
		if h2, err := decodeHeader(encodeHeader(h)); err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("re-encoding changes the header: %+v %+v %v", h, h2, err)
		}
	})
}

func TestGitIdentityReadsOnlyTheIdentity(t *testing.T) {
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".config", "git"), 0o755)
	os.WriteFile(filepath.Join(home, ".config", "git", "config"), []byte("[user]\n\tname = Old Name\n"), 0o644)
	os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(`[user]
	name = "Alice Example"
	email = alice@example.org
	signingkey = SECRETKEY
[credential]
	helper = store --file ~/.git-credentials
[include]
	path = ~/.secret-gitconfig
[url "https://token@github.com/"]
	insteadOf = https://github.com/
`), 0o644)
	os.WriteFile(filepath.Join(home, ".secret-gitconfig"), []byte("[user]\n\temail = leaked@secret\n"), 0o644)
	id := gitIdentity(home)
	if id["git.name"] != "Alice Example" || id["git.email"] != "alice@example.org" || len(id) != 2 {
		t.Errorf("identity %v", id)
	}
}

// The reader runs as the caller, who can make it send any meta frame. Only
// a git name and email of one plain line reach the agent's environment.
func TestConsumeFiltersMetaFromALyingReader(t *testing.T) {
	consume := func(s *bytes.Buffer) map[string]string {
		t.Helper()
		fd, err := unix.Open(t.TempDir(), unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		o := &Options{HostDir: "/home/alice/.pi/agent", AgentUID: os.Getuid(), AgentGID: os.Getgid(), Limits: Limits{MaxFile: 4096, MaxTotal: 1 << 20, MaxEntries: 10}}
		rx, err := o.consume(s, compileExclude(DefaultExclude), fd, &Result{})
		if err != nil {
			t.Fatal(err)
		}
		return rx.meta
	}
	meta := consume(stream(
		frame{h: Header{Path: []byte("git.name"), Type: "meta"}, body: "Alice\nLD_PRELOAD=/tmp/evil.so"},
		frame{h: Header{Path: []byte("git.email"), Type: "meta"}, body: strings.Repeat("a", 257)},
		frame{h: Header{Path: []byte("ld.preload"), Type: "meta"}, body: "/tmp/evil.so"},
		frame{h: Header{Path: []byte("git.signingkey"), Type: "meta"}, body: "x"},
		frame{h: Header{Type: "end"}},
	))
	if len(meta) != 0 {
		t.Errorf("hostile meta kept: %q", meta)
	}
	meta = consume(stream(
		frame{h: Header{Path: []byte("git.name"), Type: "meta"}, body: "Alice Example"},
		frame{h: Header{Path: []byte("git.email"), Type: "meta"}, body: "alice\r@example.org"},
		frame{h: Header{Type: "end"}},
	))
	if meta["git.name"] != "Alice Example" || len(meta) != 1 {
		t.Errorf("meta: %q, want only the plain git.name", meta)
	}
}
