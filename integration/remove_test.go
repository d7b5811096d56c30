//go:build integration

package integration

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/m3ta/pi-agent/sandbox"
)

// A run directory holds the project's mount. Removing the run directory must
// never delete the project's files through that mount, even when the mount
// table was misread (as happened when a thread sat in another namespace).
func TestRunDirRemovalNeverCrossesTheProjectMount(t *testing.T) {
	setup(t)
	base := t.TempDir()
	project := filepath.Join(base, "project")
	run := filepath.Join(base, "run")
	for _, d := range []string{project, filepath.Join(run, "project"), filepath.Join(run, "rootfs", "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	precious := filepath.Join(project, "precious.txt")
	if err := os.WriteFile(precious, []byte("work"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(project, filepath.Join(run, "project"), "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(run, "project"), unix.MNT_DETACH)

	// The low-level walk alone, with the mount still attached: it refuses.
	if err := sandbox.RemoveAllOneFS(run); !errors.Is(err, sandbox.ErrCrossesMount) {
		t.Errorf("RemoveAllOneFS across a mount: %v", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Fatalf("the project lost a file: %v", err)
	}
	// The real path: detach, then remove.
	if err := sandbox.RemoveRunDir(run); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(run); !os.IsNotExist(err) {
		t.Errorf("run dir still there: %v", err)
	}
	if data, err := os.ReadFile(precious); err != nil || string(data) != "work" {
		t.Fatalf("the project lost a file: %q %v", data, err)
	}
}

// The project is mounted from the descriptor the policy check opened: a
// directory renamed away and replaced by a link to /etc between the check
// and the mount still mounts the checked directory.
func TestProjectMountFollowsTheCheckedDirectory(t *testing.T) {
	setup(t)
	base := t.TempDir()
	checked := filepath.Join(base, "proj")
	if err := os.MkdirAll(checked, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(checked, "the-checked-one"), nil, 0o644)
	fd, err := os.OpenFile(checked, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	// The swap: the checked directory moves away, a link takes its name.
	if err := os.Rename(checked, filepath.Join(base, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", checked); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(base, "mnt")
	os.Mkdir(target, 0o700)
	if err := sandbox.IDMapMount(fd, target, sandbox.IDMap{DiskUID: 1000, DiskGID: 1000, AgentUID: 1001, AgentGID: 1001}, nil); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	if _, err := os.Stat(filepath.Join(target, "the-checked-one")); err != nil {
		t.Errorf("the mount is not the checked directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "passwd")); err == nil {
		t.Error("the swap redirected the mount to /etc")
	}
}
