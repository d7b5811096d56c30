package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRemoveAllOneFSDoesNotFollowLinks(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	tree := filepath.Join(base, "run")
	for _, d := range []string{outside, filepath.Join(tree, "rootfs", "etc"), filepath.Join(tree, "empty")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	keep := filepath.Join(outside, "precious")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "rootfs", "etc", "passwd"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(tree, "rootfs", "link")); err != nil {
		t.Fatal(err)
	}
	if err := RemoveAllOneFS(tree); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(tree); !os.IsNotExist(err) {
		t.Errorf("tree still there: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file behind a symlink was removed: %v", err)
	}
	if err := RemoveAllOneFS(tree); err != nil {
		t.Errorf("removing a missing tree: %v", err)
	}
}
