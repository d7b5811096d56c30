package merge

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The host config is read by a helper that runs as the caller (their uid,
// gid and groups, no capabilities, no_new_privs) and streams the tree to the
// root side over a pipe: a frame is a 4-byte big-endian length, a binary
// header (codec.go), and for a file with content, exactly Size bytes. Everything in the
// stream is the caller's to choose; the root side validates it all.

// Header describes one entry of the stream.
type Header struct {
	Path     []byte   // relative, '/'-separated; bytes, so any name survives
	Type     string   // "dir", "file", "gone", "meta", "end"
	Mode     uint32   // permission bits
	Size     int64    // content length that follows
	Key      string   // identity of the host file: dev:ino:size:mtime:ctime
	Warnings []string // on "end"
	Err      string   // on "end": the walk failed
}

// Limits bound what a sync reads and writes.
type Limits struct {
	MaxFile    int64 // bytes of one file
	MaxTotal   int64 // bytes of all files with content in one sync
	MaxEntries int   // files and directories
}

// DefaultLimits fit a pi config with skills and prompts, not a dataset.
var DefaultLimits = Limits{MaxFile: 64 << 20, MaxTotal: 512 << 20, MaxEntries: 100000}

// KnownFile tells the reader a file's key at the last sync. A file still at
// that key is not sent at all; a known file the walk no longer finds is
// announced "gone". An unchanged sync thus streams next to nothing.
type KnownFile struct {
	Path []byte
	Key  string
}

// ReadRequest is what the root side sends the reader on its stdin.
type ReadRequest struct {
	Root string `json:"root"`
	// Home, when set, asks for the caller's git identity (see gitIdentity).
	Home    string      `json:"home"`
	Known   []KnownFile `json:"known"`
	Limits  Limits      `json:"limits"`
	Exclude []string    `json:"exclude"`
}

const maxHeader = 64 << 10

func writeFrame(w io.Writer, h *Header) error {
	b := encodeHeader(h)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
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
	return decodeHeader(b)
}

// exclusion is a compiled exclude list. A pattern starting with '/' is
// anchored at the config root and excludes the path it matches and
// everything below it; any other pattern matches a single name anywhere (as
// "*.lock" does). Compiled once, it serves the thousands of paths of a sync.
type exclusion struct {
	anchored [][]glob // the components of each anchored pattern
	names    []glob   // the patterns that match a name anywhere
}

// glob is one pattern component: a literal name, "*" and a literal suffix
// (the common "*.lock"), or anything else path.Match takes.
type glob struct {
	pattern string
	kind    uint8
}

const (
	globLiteral = iota
	globSuffix
	globMatch
)

const globMeta = `*?[\`

func compileGlob(pattern string) glob {
	if !strings.ContainsAny(pattern, globMeta) {
		return glob{pattern, globLiteral}
	}
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok && !strings.ContainsAny(suffix, globMeta) {
		return glob{suffix, globSuffix}
	}
	return glob{pattern, globMatch}
}

func (g glob) match(name string) bool {
	switch g.kind {
	case globLiteral:
		return g.pattern == name
	case globSuffix:
		return strings.HasSuffix(name, g.pattern)
	}
	m, _ := path.Match(g.pattern, name)
	return m
}

func compileExclude(patterns []string) *exclusion {
	x := &exclusion{}
	for _, p := range patterns {
		anchored, ok := strings.CutPrefix(p, "/")
		if !ok {
			x.names = append(x.names, compileGlob(p))
			continue
		}
		parts := []glob{}
		for anchored != "" {
			var pc string
			pc, anchored, _ = strings.Cut(anchored, "/")
			parts = append(parts, compileGlob(pc))
		}
		x.anchored = append(x.anchored, parts)
	}
	return x
}

// match reports whether rel (a '/'-separated relative path) is excluded.
func (x *exclusion) match(rel string) bool {
	for _, parts := range x.anchored {
		// Compare the pattern's components with the path's first ones.
		rest, matched := rel, true
		for _, g := range parts {
			if rest == "" {
				matched = false
				break
			}
			var c string
			c, rest, _ = strings.Cut(rest, "/")
			if !g.match(c) {
				matched = false
				break
			}
		}
		if matched {
			return true
		}
	}
	if len(x.names) == 0 {
		return false
	}
	for rest := rel; rest != ""; {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		for _, g := range x.names {
			if g.match(c) {
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

// ServeRead is the reader (`pi-agent-helper _sync-read`): it runs as the
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
	req, err := readRequest(in)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	w := &walker{req: *req, excl: compileExclude(req.Exclude), out: bw, known: make(map[string]string, len(req.Known)), seen: map[string]bool{}, visited: map[[2]uint64]bool{}}
	for _, k := range req.Known {
		w.known[string(k.Path)] = k.Key
	}
	for _, name := range AlwaysSend {
		delete(w.known, name)
	}
	if req.Home != "" {
		for key, value := range gitIdentity(req.Home) {
			if err := writeFrame(bw, &Header{Type: "meta", Path: []byte(key), Size: int64(len(value))}); err != nil {
				return err
			}
			bw.WriteString(value)
		}
	}
	end := &Header{Type: "end"}
	if err := w.walkRoot(); err != nil {
		end.Err = err.Error()
	} else {
		for _, k := range req.Known {
			if !w.seen[string(k.Path)] {
				if err := writeFrame(bw, &Header{Type: "gone", Path: k.Path}); err != nil {
					return err
				}
			}
		}
	}
	end.Warnings = w.warnings
	if err := writeFrame(bw, end); err != nil {
		return err
	}
	return bw.Flush()
}

type walker struct {
	req      ReadRequest
	excl     *exclusion
	out      *bufio.Writer
	known    map[string]string
	seen     map[string]bool // known files the walk found
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
	fd, err := unix.Open(w.req.Root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // no host config: nothing to sync
		}
		return fmt.Errorf("%s: %w", w.req.Root, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return err
	}
	w.visited[[2]uint64{st.Dev, st.Ino}] = true
	return w.walkDir(fd, "", 0)
}

// walkDir walks the directory open at fd (and closes it). Entries are
// resolved relative to the descriptor: links are followed, with the
// caller's rights, but the directory itself cannot be swapped underneath.
func (w *walker) walkDir(fd int, rel string, depth int) error {
	f := os.NewFile(uintptr(fd), rel)
	names, err := f.Readdirnames(-1)
	defer f.Close()
	if err != nil {
		w.warn("%s: %v, skipped", displayRel(rel), err)
		return nil
	}
	if depth > 32 {
		w.warn("%s: deeper than 32 levels, skipped", rel)
		return nil
	}
	sort.Strings(names)
	kept := names[:0]
	for _, name := range names {
		if !w.excl.match(joinRel(rel, name)) {
			kept = append(kept, name)
		}
	}
	stats := statAll(fd, kept)
	for i, name := range kept {
		if err := w.entry(fd, name, joinRel(rel, name), depth, &stats[i]); err != nil {
			return err
		}
	}
	return nil
}

func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

type statResult struct {
	st  unix.Stat_t
	err error
}

// statAll stats the names in dirfd, following links (with the caller's
// rights), on as many threads as the machine has: an unchanged sync is
// little else than these stats.
func statAll(dirfd int, names []string) []statResult {
	out := make([]statResult, len(names))
	workers := runtime.GOMAXPROCS(0)
	if workers > 8 {
		workers = 8
	}
	if len(names) < 64 || workers < 2 {
		for i, n := range names {
			out[i].err = unix.Fstatat(dirfd, n, &out[i].st, 0)
		}
		return out
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(names); i += workers {
				out[i].err = unix.Fstatat(dirfd, names[i], &out[i].st, 0)
			}
		}(w)
	}
	wg.Wait()
	return out
}

func (w *walker) entry(dirfd int, name, rel string, depth int, sr *statResult) error {
	st := sr.st
	if err := sr.err; err != nil {
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
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			w.warn("%s: %v, skipped", rel, err)
			return nil
		}
		w.visited[id] = true
		if err := writeFrame(w.out, &Header{Path: []byte(rel), Type: "dir", Mode: st.Mode & 0o7777}); err != nil {
			unix.Close(fd)
			return err
		}
		err = w.walkDir(fd, rel, depth+1)
		delete(w.visited, id)
		return err
	case unix.S_IFREG:
		return w.file(dirfd, name, rel, &st)
	default:
		w.warn("%s: not a regular file or directory (FIFO, socket or device), skipped", rel)
		return nil
	}
}

func statKey(st *unix.Stat_t) string {
	b := make([]byte, 0, 64)
	b = strconv.AppendUint(b, st.Dev, 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, st.Ino, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, st.Size, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, st.Mtim.Sec, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, st.Mtim.Nsec, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, st.Ctim.Sec, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, st.Ctim.Nsec, 10)
	return string(b)
}

func (w *walker) file(dirfd int, name, rel string, st *unix.Stat_t) error {
	key := statKey(st)
	if k, ok := w.known[rel]; ok {
		w.seen[rel] = true
		if k == key {
			return nil // unchanged: the root side has it
		}
	}
	h := &Header{Path: []byte(rel), Type: "file", Mode: st.Mode & 0o7777, Key: key}
	if st.Size > w.req.Limits.MaxFile {
		return fmt.Errorf("%s is %d bytes, more than the limit of %d for one file", rel, st.Size, w.req.Limits.MaxFile)
	}
	// O_NONBLOCK: a file swapped for a FIFO after the stat must not hang us.
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.warn("%s: %v, skipped", rel, err)
		return nil
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil || fst.Mode&unix.S_IFMT != unix.S_IFREG || fst.Dev != st.Dev || fst.Ino != st.Ino {
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

// gitIdentity reads user.name and user.email from the caller's global git
// config (~/.gitconfig, then $XDG_CONFIG_HOME's default ~/.config/git/config),
// so that commits the agent makes carry the human's name. Identity only: no
// other key is read and include directives are not followed, so no
// credential helper, token or path of theirs reaches the agent.
func gitIdentity(home string) map[string]string {
	id := map[string]string{}
	for _, p := range []string{home + "/.config/git/config", home + "/.gitconfig"} { // later wins, as in git
		data, err := os.ReadFile(p)
		if err != nil || len(data) > 1<<20 {
			continue
		}
		section := ""
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "[") {
				section = strings.ToLower(strings.Trim(strings.Fields(strings.Trim(line, "[]") + " ")[0], "\""))
				continue
			}
			if section != "user" {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			k = strings.ToLower(strings.TrimSpace(k))
			v = strings.Trim(strings.TrimSpace(v), "\"")
			if (k == "name" || k == "email") && v != "" {
				id["git."+k] = v
			}
		}
	}
	return id
}
