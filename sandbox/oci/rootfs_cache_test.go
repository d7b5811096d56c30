package oci

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/m3ta/pi-agent/rootfs"
)

func testLayout(t *testing.T) ([]rootfs.File, []specs.Mount) {
	t.Helper()
	src := t.TempDir()
	file := filepath.Join(src, "init")
	if err := os.WriteFile(file, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	files := []rootfs.File{{Path: "etc/passwd", Data: "agent:x:999:999::/home/agent:/bin/sh\n"}, {Path: "bin", Link: "usr/bin"}}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc"},
		{Destination: "/usr", Type: "bind", Source: src},
		{Destination: "/home/alice/proj", Type: "bind", Source: src},
		{Destination: "/.pi-agent/init", Type: "bind", Source: file},
	}
	return files, mounts
}

func TestSharedRootfsIsBuiltOnceAndShared(t *testing.T) {
	b := &Backend{RunDir: t.TempDir()}
	files, mounts := testLayout(t)
	dir1, lock1, err := b.sharedRootfs(files, mounts)
	if err != nil {
		t.Fatal(err)
	}
	defer lock1.Close()
	dir2, lock2, err := b.sharedRootfs(files, mounts)
	if err != nil {
		t.Fatal(err)
	}
	defer lock2.Close()
	if dir1 != dir2 {
		t.Fatalf("same layout, two rootfs: %s %s", dir1, dir2)
	}
	for _, c := range []struct {
		path string
		dir  bool
	}{{"proc", true}, {"usr", true}, {"home/alice/proj", true}, {".pi-agent/init", false}, {"etc/passwd", false}} {
		st, err := os.Lstat(filepath.Join(dir1, c.path))
		if err != nil {
			t.Fatalf("mount point or file %s: %v", c.path, err)
		}
		if st.IsDir() != c.dir {
			t.Errorf("%s: directory %v, want %v", c.path, st.IsDir(), c.dir)
		}
	}
	if st, err := os.Stat(dir1); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("rootfs mode: %v %v, want 0755 (the agent walks it)", st.Mode(), err)
	}
	if link, err := os.Readlink(filepath.Join(dir1, "bin")); err != nil || link != "usr/bin" {
		t.Errorf("bin link: %q %v", link, err)
	}

	// Another layout (another project) gets another rootfs.
	mounts[2].Destination = "/home/alice/other"
	dir3, lock3, err := b.sharedRootfs(files, mounts)
	if err != nil {
		t.Fatal(err)
	}
	defer lock3.Close()
	if dir3 == dir1 {
		t.Fatal("a different layout shares the rootfs")
	}
}

func TestSharedRootfsRefusesMountPointsThroughLinks(t *testing.T) {
	b := &Backend{RunDir: t.TempDir()}
	files, mounts := testLayout(t)
	// bin is a link in the rootfs: a mount below it would make the runtime
	// resolve and create it inside the shared tree.
	mounts = append(mounts, specs.Mount{Destination: "/bin/tool", Type: "proc"})
	if _, _, err := b.sharedRootfs(files, mounts); !errors.Is(err, errNoShare) {
		t.Fatalf("mount point below a link: %v, want errNoShare", err)
	}
	entries, _ := os.ReadDir(b.rootfsRoot())
	if len(entries) != 0 {
		t.Fatalf("a refused build left %d entries behind", len(entries))
	}
}

func TestGCRootfsKeepsWhatIsInUse(t *testing.T) {
	b := &Backend{RunDir: t.TempDir()}
	files, mounts := testLayout(t)
	inUse, lock, err := b.sharedRootfs(files, mounts)
	if err != nil {
		t.Fatal(err)
	}
	mounts[2].Destination = "/home/alice/other"
	unused, lock2, err := b.sharedRootfs(files, mounts)
	if err != nil {
		t.Fatal(err)
	}
	lock2.Close()
	// A build in progress (locked) and a fresh leftover are kept; an old
	// unlocked leftover goes.
	building, err := os.MkdirTemp(b.rootfsRoot(), ".new-")
	if err != nil {
		t.Fatal(err)
	}
	bf, err := os.Open(building)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	if err := unix.Flock(int(bf.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(building, old, old); err != nil {
		t.Fatal(err)
	}
	fresh, _ := os.MkdirTemp(b.rootfsRoot(), ".new-")
	stale, _ := os.MkdirTemp(b.rootfsRoot(), ".old-")
	if err := os.WriteFile(filepath.Join(stale, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	// Used within the idle time, an unused rootfs stays.
	b.RootfsIdle = time.Hour
	if err := b.gcRootfs(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(unused); err != nil {
		t.Errorf("gc removed a rootfs used a moment ago: %v", err)
	}
	b.RootfsIdle = 0
	if err := b.gcRootfs(); err != nil {
		t.Fatal(err)
	}
	for _, keep := range []string{inUse, building, fresh} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("gc removed %s: %v", keep, err)
		}
	}
	for _, gone := range []string{unused, stale} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("gc kept %s: %v", gone, err)
		}
	}
	entries, _ := os.ReadDir(b.rootfsRoot())
	if len(entries) != 3 {
		t.Errorf("after gc: %d entries, want 3 (in use, building, fresh)", len(entries))
	}

	// Released, the rootfs goes too; a run that still held the directory
	// open finds it removed and builds a new one.
	held, err := os.Open(inUse)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	lock.Close()
	if err := b.gcRootfs(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inUse); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("released rootfs kept: %v", err)
	}
	again, lock3, err := b.sharedRootfs(files, []specs.Mount{mounts[0], mounts[1], {Destination: "/home/alice/proj", Type: "bind", Source: mounts[1].Source}, mounts[3]})
	if err != nil {
		t.Fatal(err)
	}
	defer lock3.Close()
	if again != inUse {
		t.Fatalf("rebuilt under another name: %s, want %s", again, inUse)
	}
	if _, err := os.Stat(filepath.Join(again, "etc/passwd")); err != nil {
		t.Fatalf("rebuilt rootfs incomplete: %v", err)
	}
}
