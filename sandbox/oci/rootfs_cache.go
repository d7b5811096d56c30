package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/m3ta/pi-agent/rootfs"
	"github.com/m3ta/pi-agent/sandbox"
)

// The root filesystem of a sandbox is a small directory: the generated /etc
// files, a few links, and the points the mounts attach to. It is the same
// for every run of one caller's project under one config, and the container
// only ever sees it read-only, so runs share it instead of building and
// removing it each time: <RunDir>/rootfs/<hash of its contents>.
//
// A run holds a shared flock on the directory while it uses it; gc removes
// only directories it can lock exclusively, after renaming them out of
// reach. Every mount point is created up front, so that no container
// writes into a shared directory; a layout where that cannot be done
// without following a link gets a private rootfs in the run dir instead.

func (b *Backend) rootfsRoot() string { return filepath.Join(b.RunDir, "rootfs") }

// errNoShare is returned for a layout whose mount points cannot all be
// created beneath the rootfs without following a link.
var errNoShare = errors.New("layout cannot be shared")

// rootfsKey names the rootfs for files and the mount points of mounts.
func rootfsKey(files []rootfs.File, points []mountPoint) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "f\x00%s\x00%s\x00%s\n", f.Path, f.Data, f.Link)
	}
	for _, p := range points {
		fmt.Fprintf(h, "m\x00%s\x00%t\n", p.path, p.file)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// mountPoint is where a mount attaches: a directory, or a file for a bind
// mount of a file.
type mountPoint struct {
	path string // relative to the rootfs
	file bool
}

// mountPoints lists the attach points of mounts, telling bind mounts of
// files by their source, as libcontainer does.
func mountPoints(mounts []specs.Mount) ([]mountPoint, error) {
	var points []mountPoint
	for _, m := range mounts {
		p := mountPoint{path: strings.TrimPrefix(m.Destination, "/")}
		if m.Type == "bind" {
			st, err := os.Stat(m.Source)
			if err != nil {
				return nil, fmt.Errorf("mount source %s: %w", m.Source, err)
			}
			p.file = !st.IsDir()
		}
		points = append(points, p)
	}
	return points, nil
}

// sharedRootfs returns the path of the shared rootfs for files and mounts,
// creating it if needed, and the open directory that holds this run's
// shared lock on it: close it when the container is gone.
func (b *Backend) sharedRootfs(files []rootfs.File, mounts []specs.Mount) (string, *os.File, error) {
	points, err := mountPoints(mounts)
	if err != nil {
		return "", nil, err
	}
	root := b.rootfsRoot()
	if err := os.Mkdir(root, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", nil, err
	}
	dir := filepath.Join(root, rootfsKey(files, points))
	for try := 0; try < 5; try++ {
		if lock, err := lockRootfs(dir); err == nil {
			// Its mtime says when it was last used (see gcRootfs).
			now := time.Now()
			_ = os.Chtimes(dir, now, now)
			return dir, lock, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", nil, err
		}
		if err := buildRootfs(root, dir, files, points); err != nil {
			return "", nil, err
		}
	}
	return "", nil, fmt.Errorf("rootfs %s: removed by gc as fast as it is built", dir)
}

// lockRootfs opens dir and takes a shared lock on it; a directory gc removed
// meanwhile counts as not existing.
func lockRootfs(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Nlink == 0 {
		f.Close()
		return nil, os.ErrNotExist
	}
	return f, nil
}

// buildRootfs populates a new directory and renames it to dir. Losing the
// race to another run is fine: theirs is the same.
func buildRootfs(root, dir string, files []rootfs.File, points []mountPoint) (retErr error) {
	tmp, err := os.MkdirTemp(root, ".new-")
	if err != nil {
		return err
	}
	// Held exclusively while it is built: gc leaves it alone.
	f, err := os.Open(tmp)
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	defer func() {
		if retErr != nil {
			_ = sandbox.RemoveAllOneFS(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := rootfs.Populate(tmp, files); err != nil {
		return fmt.Errorf("populate rootfs: %w", err)
	}
	for _, p := range points {
		if err := createBeneath(int(f.Fd()), p); err != nil {
			return err
		}
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.EEXIST) {
			_ = sandbox.RemoveAllOneFS(tmp)
			return nil
		}
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// createBeneath creates the mount point p below the directory root, one
// component at a time, never following a link.
func createBeneath(root int, p mountPoint) error {
	if p.path == "" {
		return errNoShare
	}
	parts := strings.Split(p.path, "/")
	dir := root
	for i, name := range parts {
		last := i == len(parts)-1
		var err error
		if last && p.file {
			var fd int
			fd, err = unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
			if err == nil {
				unix.Close(fd)
			}
		} else {
			err = unix.Mkdirat(dir, name, 0o755)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create mount point /%s: %w", p.path, err)
		}
		how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV}
		if !(last && p.file) {
			how.Flags |= unix.O_DIRECTORY
		}
		next, err := unix.Openat2(dir, name, how)
		if dir != root {
			unix.Close(dir)
		}
		if err != nil {
			// A link or a file of the wrong kind on the way.
			return fmt.Errorf("mount point /%s: %w: %w", p.path, errNoShare, err)
		}
		dir = next
	}
	if dir != root {
		unix.Close(dir)
	}
	return nil
}

// gcRootfs removes shared rootfs directories no run holds and none used
// within b.RootfsIdle, and the leftovers of builds and removals whose
// runner died (given a minute, so that one just begun is not taken for a
// leftover).
func (b *Backend) gcRootfs() error {
	root := b.rootfsRoot()
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		temp := strings.HasPrefix(e.Name(), ".new-") || strings.HasPrefix(e.Name(), ".old-")
		keep := b.RootfsIdle
		if temp {
			keep = time.Minute
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < keep {
			continue
		}
		if err := removeUnused(root, dir, temp); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeUnused removes dir if no run holds it. A shared rootfs is first
// renamed out of reach, so that no run finds it half removed.
func removeUnused(root, dir string, temp bool) error {
	f, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil // gone meanwhile
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return nil // in use, or being built
	}
	if !temp {
		old, err := os.MkdirTemp(root, ".old-")
		if err != nil {
			return err
		}
		// Renaming onto the empty directory replaces it.
		if err := unix.Rename(dir, old); err != nil {
			_ = os.Remove(old)
			return fmt.Errorf("remove rootfs %s: %w", dir, err)
		}
		dir = old
	}
	if err := sandbox.RemoveAllOneFS(dir); err != nil {
		return fmt.Errorf("remove rootfs %s: %w", dir, err)
	}
	return nil
}
