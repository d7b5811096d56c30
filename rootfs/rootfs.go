// Package rootfs describes the sandbox's minimal root filesystem: which host
// paths appear read-only, the generated /etc files, the tmpfs mounts, the
// project and runtime binds, and the paths masked or made read-only the way
// runc does it. Builders here are pure: Probe reads host facts once, and
// everything else turns those facts into data that tests can compare.
package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// HostPath is a host path to show read-only inside the sandbox.
type HostPath struct {
	// Path is where it appears inside (the same path as on the host).
	Path string
	// Link, when set, makes Path a symlink with this target inside,
	// because the host's link resolves into another read-only path (as
	// /bin -> usr/bin does on merged-usr hosts).
	Link string
	// Source is the resolved host path bind-mounted at Path (unset for
	// links).
	Source string
}

// Probe turns configured read-only paths into HostPaths. With skipMissing
// (the built-in defaults), paths this host lacks are left out; otherwise a
// missing path is an error.
func Probe(paths []string, skipMissing bool) ([]HostPath, error) {
	var out []HostPath
	for _, p := range paths {
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			if skipMissing && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read-only path %s: %w", p, err)
		}
		out = append(out, HostPath{Path: p, Source: r})
	}
	// A path that is a symlink on the host becomes the same link inside when
	// its target is visible there at its own path, i.e. lies within another
	// entry that is bound at its own host path. Its target is written
	// resolved and absolute, so it cannot depend on other links inside.
	for i, hp := range out {
		if hp.Path == hp.Source {
			continue
		}
		fi, err := os.Lstat(hp.Path)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		for j, o := range out {
			if j != i && o.Path == o.Source && within(o.Path, hp.Source) {
				out[i] = HostPath{Path: hp.Path, Link: hp.Source}
				break
			}
		}
	}
	return out, nil
}

func within(base, p string) bool {
	return p == base || strings.HasPrefix(p, strings.TrimSuffix(base, "/")+"/")
}

// Owner is the agent's uid and gid, owner of its home inside.
type Owner struct{ UID, GID uint32 }

// Layout is everything the root filesystem is built from.
type Layout struct {
	Hostname string
	ReadOnly []HostPath
	// Home is the agent's home inside (a tmpfs owned by the agent).
	Home string
	// AgentDir is where the runtime dir appears inside ($HOME/.pi/agent).
	AgentDir string
	// RuntimeDir is the host path of the synced runtime config.
	RuntimeDir string
	// ProjectPath is where the project appears inside (its host path);
	// ProjectSource is the host path of the idmapped mount of the project
	// that the runner prepared (see sandbox.IDMapMount).
	ProjectPath, ProjectSource string
	Agent                      Owner
	TmpSize                    int64
	// Init is the host path of the runner binary, shown read-only at
	// InitPath to serve as the signal-forwarding PID 1.
	Init string
	// Names for the generated passwd and group files.
	AgentUser, AgentGroup string
}

// InitPath is where the runner binary appears inside the sandbox.
const InitPath = "/.pi-agent/init"

// reserved are paths the sandbox builds itself; a project may not be mounted
// at, above or below them.
var reserved = []string{"/proc", "/sys", "/dev", "/.pi-agent", "/etc"}

// CheckProjectPath refuses project locations that would cover or sit inside
// the sandbox's own mounts: "/", an ancestor of /proc, /dev, /sys or /etc, a
// path beneath them, or the agent's home.
func CheckProjectPath(p, home string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("project path %q is not clean and absolute", p)
	}
	for _, r := range append(reserved, home) {
		if within(p, r) || within(r, p) {
			return fmt.Errorf("project path %s overlaps %s, which the sandbox provides itself; choose a project directory elsewhere", p, r)
		}
	}
	return nil
}

// Mounts returns the mount list in the order it must be applied: parents
// before children, so that a project below /tmp lands on the tmpfs.
func (l *Layout) Mounts() ([]specs.Mount, error) {
	if err := CheckProjectPath(l.ProjectPath, l.Home); err != nil {
		return nil, err
	}
	m := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", fmt.Sprintf("size=%d", l.TmpSize)}},
		{Destination: l.Home, Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=700", fmt.Sprintf("uid=%d", l.Agent.UID), fmt.Sprintf("gid=%d", l.Agent.GID), "size=65536k"}},
		{Destination: l.AgentDir, Type: "bind", Source: l.RuntimeDir, Options: []string{"bind", "rw", "nosuid", "nodev"}},
		{Destination: InitPath, Type: "bind", Source: l.Init, Options: []string{"bind", "ro", "nosuid", "nodev"}},
		{
			// The project is the one writable host tree. Its source is
			// already idmapped (files the caller owns appear as the
			// agent's, what the agent creates lands owned by the caller)
			// and a bind keeps the idmap. Not recursive: mounts below the
			// project stay hidden.
			Destination: l.ProjectPath, Type: "bind", Source: l.ProjectSource,
			Options: []string{"bind", "rw", "nosuid", "nodev"},
		},
	}
	for _, hp := range l.ReadOnly {
		if hp.Link != "" {
			continue
		}
		m = append(m, specs.Mount{Destination: hp.Path, Type: "bind", Source: hp.Source, Options: []string{"rbind", "ro", "nosuid", "nodev"}})
	}
	for _, x := range m {
		if !filepath.IsAbs(x.Destination) || filepath.Clean(x.Destination) != x.Destination {
			return nil, fmt.Errorf("mount destination %q is not clean and absolute", x.Destination)
		}
	}
	sort.SliceStable(m, func(i, j int) bool { return depth(m[i].Destination) < depth(m[j].Destination) })
	return m, nil
}

func depth(p string) int { return strings.Count(p, "/") }

// File is an entry the rootfs directory holds before the container starts.
type File struct {
	Path string // relative to the rootfs
	Data string // contents of a regular file
	Link string // symlink target, when set
}

// Files returns the generated /etc files and the symlinks the read-only
// paths need.
func (l *Layout) Files() []File {
	files := []File{
		{Path: "etc/passwd", Data: fmt.Sprintf("root:x:0:0:root:/root:/usr/sbin/nologin\n%s:x:%d:%d:pi coding agent:%s:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
			l.AgentUser, l.Agent.UID, l.Agent.GID, l.Home)},
		{Path: "etc/group", Data: fmt.Sprintf("root:x:0:\n%s:x:%d:\nnogroup:x:65534:\n", l.AgentGroup, l.Agent.GID)},
		{Path: "etc/hosts", Data: fmt.Sprintf("127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n", l.Hostname)},
		{Path: "etc/hostname", Data: l.Hostname + "\n"},
	}
	for _, hp := range l.ReadOnly {
		if hp.Link != "" {
			files = append(files, File{Path: strings.TrimPrefix(hp.Path, "/"), Link: hp.Link})
		}
	}
	return files
}

// Populate writes files into dir, a fresh directory owned by root.
func Populate(dir string, files []File) error {
	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		if !within(dir, p) {
			return fmt.Errorf("rootfs entry %q escapes the rootfs", f.Path)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if f.Link != "" {
			if err := os.Symlink(f.Link, p); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, []byte(f.Data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// MaskedPaths are hidden inside (runc's defaults).
var MaskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
}

// ReadonlyPaths are read-only inside (runc's defaults).
var ReadonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}
