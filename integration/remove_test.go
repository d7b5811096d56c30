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
