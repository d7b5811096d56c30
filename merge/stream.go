package merge

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The host config is read by a helper that runs as the caller (their uid,
// gid and groups, no capabilities, no_new_privs) and streams the tree to the
// root side over a pipe: a frame is a 4-byte big-endian length, a JSON
// header, and for a file with content, exactly Size bytes. Everything in the
// stream is the caller's to choose; the root side validates it all.

// Header describes one entry of the stream.
type Header struct {
	Path     []byte   `json:"p,omitempty"` // relative, '/'-separated; bytes, so any name survives
	Type     string   `json:"t"`           // "dir", "file", "end"
	Mode     uint32   `json:"m,omitempty"` // permission bits
	Size     int64    `json:"s,omitempty"` // content length that follows
	Key      string   `json:"k,omitempty"` // identity of the host file: dev:ino:size:mtime:ctime
	Same     bool     `json:"u,omitempty"` // unchanged since the Key the root side knew: no content
	Warnings []string `json:"w,omitempty"` // on "end"
	Err      string   `json:"e,omitempty"` // on "end": the walk failed
}

// Limits bound what a sync reads and writes.
type Limits struct {
	MaxFile    int64 // bytes of one file
	MaxTotal   int64 // bytes of all files with content in one sync
	MaxEntries int   // files and directories
}

// DefaultLimits fit a pi config with skills and prompts, not a dataset.
var DefaultLimits = Limits{MaxFile: 64 << 20, MaxTotal: 512 << 20, MaxEntries: 100000}

// KnownFile tells the reader a file's key at the last sync, so an unchanged
// file is announced without content.
type KnownFile struct {
	Path []byte `json:"p"`
	Key  string `json:"k"`
}

// ReadRequest is what the root side sends the reader on its stdin.
type ReadRequest struct {
	Root    string      `json:"root"`
	Known   []KnownFile `json:"known"`
	Limits  Limits      `json:"limits"`
	Exclude []string    `json:"exclude"`
}

const maxHeader = 64 << 10

func writeFrame(w io.Writer, h *Header) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func readFrame(r io.Reader) (*Header, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	l := binary.BigEndian.Uint32(n[:])
	if l == 0 || l > maxHeader {
		return nil, fmt.Errorf("malformed stream: header of %d bytes", l)
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	var h Header
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("malformed stream: %w", err)
	}
	return &h, nil
}

// Excluded reports whether rel (a '/'-separated relative path) is excluded
// by one of patterns. A pattern starting with '/' is anchored at the config
// root and excludes the path it matches and everything below it; any other
// pattern matches a single name anywhere (as "*.lock" does).
func Excluded(rel string, patterns []string) bool {
	comps := strings.Split(rel, "/")
	for _, p := range patterns {
		if anchored, ok := strings.CutPrefix(p, "/"); ok {
			depth := strings.Count(anchored, "/") + 1
			if depth <= len(comps) {
				if m, _ := path.Match(anchored, strings.Join(comps[:depth], "/")); m {
					return true
				}
			}
			continue
		}
		for _, c := range comps {
			if m, _ := path.Match(p, c); m {
				return true
			}
		}
	}
	return false
}

// AlwaysSend are read in full at every sync: the settings and env layers.
var AlwaysSend = []string{SettingsFile, EnvFile}

// File names with a meaning of their own at the top of the config dir.
const (
	SettingsFile = "settings.json"
	EnvFile      = ".env"
)

// ServeRead is the reader (`pi-agent-runner _sync-read`): it runs as the
// caller, reads a ReadRequest from in and streams the tree to out. Links are
// followed with the caller's rights (Home Manager renders the config as links
// into the Nix store); FIFOs, sockets and devices are skipped; what the caller
// cannot read is skipped with a warning.
func ServeRead(in io.Reader, out io.Writer) error {
	if os.Geteuid() == 0 || os.Getuid() == 0 {
		return errors.New("_sync-read is internal and never runs as root")
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	return serveRead(in, out)
}

func serveRead(in io.Reader, out io.Writer) error {
	var req ReadRequest
	if err := json.NewDecoder(io.LimitReader(in, 64<<20)).Decode(&req); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	w := &walker{req: req, out: bw, known: map[string]string{}, visited: map[[2]uint64]bool{}}
	for _, k := range req.Known {
		w.known[string(k.Path)] = k.Key
	}
	for _, name := range AlwaysSend {
		delete(w.known, name)
	}
	end := &Header{Type: "end"}
	if err := w.walkRoot(); err != nil {
		end.Err = err.Error()
	}
	end.Warnings = w.warnings
	if err := writeFrame(bw, end); err != nil {
		return err
	}
	return bw.Flush()
}

type walker struct {
	req      ReadRequest
	out      *bufio.Writer
	known    map[string]string
	visited  map[[2]uint64]bool
	warnings []string
	entries  int
	total    int64
}

func (w *walker) warn(format string, args ...any) {
	if len(w.warnings) < 100 {
		w.warnings = append(w.warnings, fmt.Sprintf(format, args...))
	}
}

func (w *walker) walkRoot() error {
	var st unix.Stat_t
	if err := unix.Stat(w.req.Root, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // no host config: nothing to sync
		}
		return fmt.Errorf("%s: %w", w.req.Root, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory", w.req.Root)
	}
	w.visited[[2]uint64{st.Dev, st.Ino}] = true
	return w.walkDir(w.req.Root, "", 0)
}

func (w *walker) walkDir(dir, rel string, depth int) error {
	if depth > 32 {
		w.warn("%s: deeper than 32 levels, skipped", rel)
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		w.warn("%s: %v, skipped", displayRel(rel), err)
		return nil
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		w.warn("%s: %v, skipped", displayRel(rel), err)
		return nil
	}
	sort.Strings(names)
	for _, name := range names {
		childRel := name
		if rel != "" {
			childRel = rel + "/" + name
		}
		if Excluded(childRel, w.req.Exclude) {
			continue
		}
		if err := w.entry(dir+"/"+name, childRel, depth); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) entry(full, rel string, depth int) error {
	var st unix.Stat_t
	if err := unix.Stat(full, &st); err != nil { // follows links, with the caller's rights
		w.warn("%s: %v, skipped", rel, err)
		return nil
	}
	w.entries++
	if w.entries > w.req.Limits.MaxEntries {
		return fmt.Errorf("the config has more than %d entries (at %s)", w.req.Limits.MaxEntries, rel)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		id := [2]uint64{st.Dev, st.Ino}
		if w.visited[id] {
			w.warn("%s: a link back to a directory already synced, skipped", rel)
			return nil
		}
		w.visited[id] = true
		if err := writeFrame(w.out, &Header{Path: []byte(rel), Type: "dir", Mode: st.Mode & 0o7777}); err != nil {
			return err
		}
		err := w.walkDir(full, rel, depth+1)
		delete(w.visited, id)
		return err
	case unix.S_IFREG:
		return w.file(full, rel, &st)
	default:
		w.warn("%s: not a regular file or directory (FIFO, socket or device), skipped", rel)
		return nil
	}
}

func statKey(st *unix.Stat_t) string {
	return fmt.Sprintf("%d:%d:%d:%d.%d:%d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}

func (w *walker) file(full, rel string, st *unix.Stat_t) error {
	key := statKey(st)
	h := &Header{Path: []byte(rel), Type: "file", Mode: st.Mode & 0o7777, Key: key}
	if w.known[rel] == key {
		h.Same = true
		return writeFrame(w.out, h)
	}
	if st.Size > w.req.Limits.MaxFile {
		return fmt.Errorf("%s is %d bytes, more than the limit of %d for one file", rel, st.Size, w.req.Limits.MaxFile)
	}
	// O_NONBLOCK: a file swapped for a FIFO after the stat must not hang us.
	f, err := os.OpenFile(full, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		w.warn("%s: %v, skipped", rel, err)
		return nil
	}
	defer f.Close()
	var fst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil || fst.Mode&unix.S_IFMT != unix.S_IFREG || fst.Dev != st.Dev || fst.Ino != st.Ino {
		w.warn("%s: changed while it was read, skipped", rel)
		return nil
	}
	w.total += fst.Size
	if w.total > w.req.Limits.MaxTotal {
		return fmt.Errorf("the config is larger than the limit of %d bytes (at %s)", w.req.Limits.MaxTotal, rel)
	}
	if fst.Size > w.req.Limits.MaxFile {
		return fmt.Errorf("%s is %d bytes, more than the limit of %d for one file", rel, fst.Size, w.req.Limits.MaxFile)
	}
	// Read it all before announcing it, so that a file that changes size
	// while it is read is skipped rather than sent torn.
	data, err := io.ReadAll(io.LimitReader(f, fst.Size+1))
	if err != nil || int64(len(data)) != fst.Size {
		w.warn("%s: changed while it was read, skipped", rel)
		return nil
	}
	h.Size, h.Key = fst.Size, statKey(&fst)
	if err := writeFrame(w.out, h); err != nil {
		return err
	}
	_, err = w.out.Write(data)
	return err
}

func displayRel(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
