package merge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultExclude are runtime-owned: never synced from the host, never
// deleted in the runtime.
var DefaultExclude = []string{"/sessions", "/bin", "/.cache", "*.lock"}

// Options describe one sync. The runner fills them from its config; every
// path here is trusted (root-owned or derived from passwd), except what the
// reader streams.
type Options struct {
	// Exe is pi-agent-helper, started as `_sync-read` for the caller.
	Exe string
	// Caller is the credential the reader runs with.
	Caller *syscall.Credential
	// HostDir is the caller's config dir (home + configPath).
	HostDir string
	// CallerHome, when set, has the reader pass on the caller's git
	// identity (user.name, user.email), which becomes GIT_AUTHOR_* and
	// GIT_COMMITTER_* in the agent's host environment layer.
	CallerHome string
	// UserDir is <stateDir>/users/<name>: root-only, holds the manifest,
	// the lock and the staging area.
	UserDir string
	// RuntimeDir is the agent-visible copy (<UserDir>/agent).
	RuntimeDir string
	// AgentUID and AgentGID own what is written into RuntimeDir.
	AgentUID, AgentGID int
	// Managed are the settings from the runner config; they always win.
	Managed map[string]any
	Limits  Limits
	// Exclude adds patterns to DefaultExclude (see exclusion).
	Exclude []string
	// DryRun computes the result without changing the runtime.
	DryRun bool
	// Timeout bounds the whole read; 0 means two minutes.
	Timeout time.Duration
	// Reader, when set, is a reader started ahead with StartReader; Sync
	// starts one otherwise.
	Reader *Reader
}

// Result is what a sync produced.
type Result struct {
	Settings map[string]any // the runtime settings.json
	HostEnv  []Var          // from the host's .env
	Warnings []string
	Written  int // files written
	Deleted  int // files deleted
	Kept     int // files pi changed, kept over the host's
}

const (
	manifestName = "manifest.json"
	lockName     = "sync.lock"
	stagingName  = "staging"
	maxSettings  = 4 << 20
)

// Sync brings the caller's host config into the runtime directory. Run it as
// root; it reads the caller's files only through the reader it starts as the
// caller. On error the runtime is left as it was, but for files already
// moved into place (each of them whole: old or new).
func Sync(ctx context.Context, o Options) (_ *Result, retErr error) {
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	exclude := append(append([]string{}, DefaultExclude...), o.Exclude...)

	unlock, err := lock(filepath.Join(o.UserDir, lockName))
	if err != nil {
		return nil, err
	}
	defer unlock()

	manPath := filepath.Join(o.UserDir, manifestName)
	manRaw, _ := os.ReadFile(manPath)
	man, err := decodeManifest(manRaw)
	if err != nil {
		man = &Manifest{Version: 1} // none, or unreadable: sync everything
	}
	res := &Result{}

	stagingDir := filepath.Join(o.UserDir, stagingName)
	if err := resetDir(stagingDir); err != nil {
		return nil, err
	}
	defer os.RemoveAll(stagingDir) // root-only, never a mount point
	staging, err := unix.Open(stagingDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(staging)

	// Files the manifest had that are excluded now are the runtime's:
	// forgotten, never deleted.
	excl := compileExclude(exclude)
	kept := man.Files[:0]
	for _, f := range man.Files {
		if !excl.match(string(f.Path)) {
			kept = append(kept, f)
		}
	}
	man.Files = kept
	rx, err := o.receive(ctx, man, exclude, excl, staging, res)
	if err != nil {
		return nil, err
	}
	// Nothing changed on the host since the last sync when the reader sent
	// no file and nothing gone, and the same directories: then only the
	// settings may need merging again (the common case, kept cheap).
	quiet := len(rx.gone) == 0 && sameDirs(rx.entries, man.Dirs)
	if !quiet {
		// What the reader did not mention is unchanged.
		sent := make(map[string]bool, len(rx.entries))
		for _, e := range rx.entries {
			sent[e.Rel] = true
		}
		for _, f := range man.Files {
			if rel := string(f.Path); !sent[rel] && !rx.gone[rel] {
				rx.entries = append(rx.entries, HostEntry{Rel: rel, Mode: f.Mode, Key: f.Key, Same: true})
			}
		}
	}
	hostSettings, err := ParseSettings(rx.settings, filepath.Join(o.HostDir, SettingsFile))
	if err != nil {
		return nil, err // the runtime is untouched
	}
	if name := rx.meta["git.name"]; name != "" {
		res.HostEnv = append(res.HostEnv, Var{Key: "GIT_AUTHOR_NAME", Value: name, Source: "git config"}, Var{Key: "GIT_COMMITTER_NAME", Value: name, Source: "git config"})
	}
	if email := rx.meta["git.email"]; email != "" {
		res.HostEnv = append(res.HostEnv, Var{Key: "GIT_AUTHOR_EMAIL", Value: email, Source: "git config"}, Var{Key: "GIT_COMMITTER_EMAIL", Value: email, Source: "git config"})
	}
	if rx.env != nil {
		vars, err := ParseDotenv(bytes.NewReader(rx.env), filepath.Join(o.HostDir, EnvFile))
		if err != nil {
			return nil, err
		}
		res.HostEnv = append(res.HostEnv, vars...)
	}

	rt, err := openTree(o.RuntimeDir, o.AgentUID, o.AgentGID)
	if err != nil {
		return nil, err
	}
	defer rt.Close()

	current := map[string]any{}
	if data, ok, err := rt.readFile(SettingsFile, maxSettings); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("runtime %s: %v; starting from the host's", SettingsFile, err))
	} else if ok {
		if m, err := ParseSettings(data, "runtime "+SettingsFile); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%v; starting from the host's", err))
		} else {
			current = m
		}
	}
	merged := MergeSettings(hostSettings, o.Managed, current, man.Base)
	res.Settings = merged.Runtime
	if o.DryRun {
		return res, nil
	}

	if quiet {
		if !reflect.DeepEqual(merged.Runtime, current) {
			if err := writeSettings(rt, staging, merged.Runtime); err != nil {
				return nil, fmt.Errorf("write runtime %s: %w", SettingsFile, err)
			}
		}
		if !reflect.DeepEqual(merged.Base, man.Base) || len(manRaw) == 0 {
			man.Base = merged.Base
			data, err := encodeManifest(man)
			if err != nil {
				return nil, err
			}
			if err := saveManifest(manPath, data); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	actions, next := Plan(rx.entries, man)
	dirs := map[string]bool{}
	for _, a := range actions {
		if err := o.apply(rt, staging, a, res); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s %s: %v", a.Op, a.Rel, err))
			switch a.Op {
			case OpWrite:
				delete(next, a.Rel) // not written: sync it again next time
			case OpMkdir:
				continue
			}
		}
		if a.Op == OpMkdir {
			dirs[a.Rel] = true
		}
	}
	if !reflect.DeepEqual(merged.Runtime, current) {
		if err := writeSettings(rt, staging, merged.Runtime); err != nil {
			return nil, fmt.Errorf("write runtime %s: %w", SettingsFile, err)
		}
	}
	nm := &Manifest{Version: 1, Base: merged.Base}
	for _, e := range rx.entries {
		if f, ok := next[e.Rel]; ok {
			nm.Files = append(nm.Files, f)
		} else if e.Dir && dirs[e.Rel] {
			nm.Dirs = append(nm.Dirs, []byte(e.Rel))
		}
	}
	data, err := encodeManifest(nm)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(data, manRaw) {
		if err := saveManifest(manPath, data); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (o *Options) apply(rt *tree, staging int, a Action, res *Result) error {
	switch a.Op {
	case OpMkdir:
		return rt.mkdirAll(a.Rel, a.Entry.Mode)
	case OpWrite:
		if dir := filepath.Dir(a.Rel); dir != "." {
			if err := rt.mkdirAll(dir, 0o700); err != nil {
				return err
			}
		}
		if err := rt.moveIn(staging, a.Entry.Staged, a.Rel); err != nil {
			return err
		}
		res.Written++
	case OpDelete:
		h, err := rt.hashFile(a.Rel, o.Limits.MaxFile)
		if err != nil || h == "" {
			return err
		}
		if h != a.Old.Hash {
			res.Kept++ // pi changed it: it stays, and is pi's from now on
			return nil
		}
		if err := rt.remove(a.Rel, 0); err != nil {
			return err
		}
		res.Deleted++
	case OpRmdir:
		if err := rt.remove(a.Rel, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	return nil
}

type received struct {
	entries  []HostEntry
	gone     map[string]bool
	meta     map[string]string
	settings []byte
	env      []byte
}

// Reader is a config reader process: pi-agent-helper `_sync-read`,
// running as the caller. Started ahead of the sync (StartReader), it waits
// for its request without touching a file, so its start-up overlaps with the
// runner's other checks.
//
// Started with a resolve socket, it is `pi-agent-helper _caller`: in the
// runner's working directory, it first answers sandbox.ResolveProject on the
// socket, then serves as the reader. One process as the caller does both.
type Reader struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    io.ReadCloser
	stderr bytes.Buffer
	cancel context.CancelFunc
	used   bool
}

// StartReader starts the reader for o (its Exe, Caller and Timeout), to
// be stopped when ctx ends; with resolveSock (the helper's end of
// sandbox.CallerSocket), one that resolves the project first. Pass it to
// Sync in Options.Reader, or Close it.
func StartReader(ctx context.Context, o *Options, resolveSock *os.File) (*Reader, error) {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	r := &Reader{cancel: cancel}
	if resolveSock != nil {
		r.cmd = exec.CommandContext(ctx, o.Exe, "_caller")
		r.cmd.ExtraFiles = []*os.File{resolveSock}
	} else {
		r.cmd = exec.CommandContext(ctx, o.Exe, "_sync-read")
		r.cmd.Dir = "/"
	}
	r.cmd.Env = []string{}
	r.cmd.Stderr = &limitedBuffer{buf: &r.stderr, max: 8 << 10}
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.Caller, Pdeathsig: syscall.SIGKILL, Setsid: true}
	var err error
	if r.in, err = r.cmd.StdinPipe(); err == nil {
		r.out, err = r.cmd.StdoutPipe()
	}
	if err == nil {
		err = r.cmd.Start()
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start the config reader: %w", err)
	}
	return r, nil
}

// Close stops a reader that Sync did not use; after Sync it does nothing.
func (r *Reader) Close() {
	if r == nil || r.used {
		return
	}
	r.used = true
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cancel()
}

// Failure stops the reader and returns what it said on stderr, first
// line: why it failed before Sync used it (a failed resolve).
func (r *Reader) Failure() string {
	r.Close()
	return firstLine(strings.TrimSpace(r.stderr.String()), "")
}

// receive sends the reader (the one in o, or a new one) its request and
// takes in its stream: files with content are staged (owned by the agent,
// sanitized modes, hashed), the settings and env files kept in memory.
// Every header is checked: paths, types, sizes, counts, duplicates.
func (o *Options) receive(ctx context.Context, man *Manifest, exclude []string, excl *exclusion, staging int, res *Result) (*received, error) {
	req := ReadRequest{Root: o.HostDir, Home: o.CallerHome, Limits: o.Limits, Exclude: exclude, Known: make([]KnownFile, 0, len(man.Files))}
	for _, f := range man.Files {
		req.Known = append(req.Known, KnownFile{Path: f.Path, Key: f.Key})
	}
	var in bytes.Buffer
	if err := writeRequest(&in, &req); err != nil {
		return nil, err
	}
	r := o.Reader
	if r == nil || r.used {
		var err error
		if r, err = StartReader(ctx, o, nil); err != nil {
			return nil, err
		}
	}
	r.used = true
	defer r.cancel()
	// The reader takes in the whole request before it writes a byte, so
	// sending it all first cannot deadlock; a reader that stops reading is
	// killed at the timeout, and one that died early says why on exit.
	_, werr := r.in.Write(in.Bytes())
	if err := r.in.Close(); werr == nil {
		werr = err
	}
	var rx *received
	var rerr error
	if werr == nil {
		rx, rerr = o.consume(bufio.NewReaderSize(r.out, 256<<10), excl, staging, res)
	}
	if werr != nil || rerr != nil {
		_ = r.cmd.Process.Kill()
	}
	_, _ = io.Copy(io.Discard, r.out)
	err := r.cmd.Wait()
	if rerr != nil {
		// A stream cut short by a reader that failed: its own words.
		if why := strings.TrimSpace(r.stderr.String()); err != nil && why != "" && (errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF)) {
			return nil, fmt.Errorf("reading %s failed: %s", o.HostDir, firstLine(why, ""))
		}
		return nil, rerr
	}
	if err != nil || werr != nil {
		return nil, fmt.Errorf("reading %s failed: %s", o.HostDir, firstLine(strings.TrimSpace(r.stderr.String()), errors.Join(err, werr).Error()))
	}
	return rx, nil
}

func (o *Options) consume(r io.Reader, excl *exclusion, staging int, res *Result) (*received, error) {
	rx := &received{gone: map[string]bool{}, meta: map[string]string{}}
	seen := map[string]bool{}
	var total int64
	for n := 0; ; n++ {
		h, err := readFrame(r)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", o.HostDir, err)
		}
		if h.Type == "end" {
			for i, w := range h.Warnings {
				if i < 100 {
					res.Warnings = append(res.Warnings, sanitize(w))
				}
			}
			if h.Err != "" {
				return nil, fmt.Errorf("reading %s: %s", o.HostDir, sanitize(h.Err))
			}
			return rx, nil
		}
		if n >= o.Limits.MaxEntries {
			return nil, fmt.Errorf("reading %s: more than %d entries", o.HostDir, o.Limits.MaxEntries)
		}
		rel := string(h.Path)
		if err := ValidRel(rel); err != nil {
			return nil, fmt.Errorf("reading %s: %v", o.HostDir, err)
		}
		if seen[rel] {
			return nil, fmt.Errorf("reading %s: %q sent twice", o.HostDir, rel)
		}
		seen[rel] = true
		if h.Size < 0 || h.Size > o.Limits.MaxFile || (h.Type != "file" && h.Type != "meta" && h.Size != 0) {
			return nil, fmt.Errorf("%s: %d bytes, more than the limit of %d for one file", filepath.Join(o.HostDir, rel), h.Size, o.Limits.MaxFile)
		}
		total += h.Size
		if total > o.Limits.MaxTotal {
			return nil, fmt.Errorf("%s: the config is larger than the limit of %d bytes", filepath.Join(o.HostDir, rel), o.Limits.MaxTotal)
		}
		content := io.LimitReader(r, h.Size)
		switch {
		case h.Type == "dir":
			if !excl.match(rel) {
				rx.entries = append(rx.entries, HostEntry{Rel: rel, Dir: true, Mode: h.Mode})
			}
		case h.Type == "gone":
			rx.gone[rel] = true
		case h.Type == "meta":
			data, err := io.ReadAll(content)
			if err != nil {
				return nil, err
			}
			if (rel == "git.name" || rel == "git.email") && len(data) <= 256 && !bytes.ContainsAny(data, "\x00\n\r") {
				rx.meta[rel] = string(data)
			}
		case h.Type != "file":
			return nil, fmt.Errorf("reading %s: unknown entry type %q", o.HostDir, h.Type)
		case rel == SettingsFile || rel == EnvFile:
			data, err := io.ReadAll(content)
			if err != nil {
				return nil, err
			}
			if h.Size > maxSettings {
				return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Join(o.HostDir, rel), maxSettings)
			}
			if rel == SettingsFile {
				rx.settings = data
			} else {
				rx.env = data
			}
		case excl.match(rel):
			// not ours to sync
		default:
			e := HostEntry{Rel: rel, Mode: h.Mode, Key: h.Key, Staged: fmt.Sprintf("f%07d", n)}
			if e.Hash, err = o.stage(staging, e.Staged, content, h.Size, h.Mode); err != nil {
				return nil, fmt.Errorf("stage %s: %w", rel, err)
			}
			rx.entries = append(rx.entries, e)
		}
		if _, err := io.Copy(io.Discard, content); err != nil { // whatever was not consumed
			return nil, err
		}
	}
}

// stage writes one file into the root-only staging dir, owned by the agent,
// with a sanitized mode, and returns its sha256.
func (o *Options) stage(staging int, name string, r io.Reader, size int64, mode uint32) (string, error) {
	fd, err := unix.Openat(staging, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return "", err
	}
	if n != size {
		return "", io.ErrUnexpectedEOF
	}
	if err := unix.Fchown(fd, o.AgentUID, o.AgentGID); err != nil {
		return "", err
	}
	if err := unix.Fchmod(fd, fileMode(mode)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeSettings(rt *tree, staging int, settings map[string]any) error {
	data, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	o := &Options{AgentUID: rt.uid, AgentGID: rt.gid}
	if _, err := o.stage(staging, "settings", bytes.NewReader(data), int64(len(data)), 0o600); err != nil {
		return err
	}
	return rt.moveIn(staging, "settings", SettingsFile)
}

// lock takes the per-user sync lock. Concurrent runs of one user wait for
// each other's sync (a dry run too: it uses the same staging area).
func lock(p string) (func(), error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sync lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("take sync lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// sameDirs reports whether entries are directories only, exactly dirs.
func sameDirs(entries []HostEntry, dirs [][]byte) bool {
	if len(entries) != len(dirs) {
		return false
	}
	for i, e := range entries {
		if !e.Dir || e.Rel != string(dirs[i]) {
			return false
		}
	}
	return true
}

// saveManifest replaces the manifest atomically.
func saveManifest(p string, data []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func resetDir(p string) error {
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	return os.Mkdir(p, 0o700)
}

// sanitize makes a message from the reader safe to print: one line, no
// control characters, bounded length.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func firstLine(s, fallback string) string {
	if s == "" {
		return fallback
	}
	l, _, _ := strings.Cut(s, "\n")
	return sanitize(l)
}

type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}
