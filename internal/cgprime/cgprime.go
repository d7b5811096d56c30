// Package cgprime readies the kernel for a cgroup move that is about to
// come. It is small on purpose: the unprivileged wrapper uses it too.
package cgprime

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Prime readies the kernel for moving the sandbox's first process into its
// cgroups, and is meant to run in the background, first thing: in the
// runner while it checks the project and syncs the config, and, where the
// caller's cgroup is theirs to write (systemd gives desktop sessions and
// user services delegated cgroups), already in the wrapper, before sudo.
//
// Every move of a process between cgroups takes the kernel's global
// threadgroup lock for writing. Unless the cgroup file system is mounted
// with favordynmods, the first writer after a quiet spell waits for an RCU
// grace period (10 to 15 ms here) before it gets the lock; writers arriving
// within a grace period after the last one do not wait. Prime moves the
// calling process into the cgroup it is already in, which changes nothing
// but pays that wait early, off the start path; libcontainer's move of the
// container's init (or systemd's of the unit's process) a few milliseconds
// later then finds the lock ready. runc and crun pay the wait in line.
//
// Errors are returned for tests and tracing; callers ignore them: where
// this fails (a cgroup the caller may not write), the start is only slower.
func Prime() error {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	rel, ok := unifiedCgroup(string(data))
	if !ok {
		return errors.New("the runner is in no cgroup2 hierarchy")
	}
	for _, mnt := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		err := moveSelf(mnt, rel)
		if !errors.Is(err, errNotCgroup2) {
			return err
		}
	}
	return errors.New("no cgroup2 file system at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

var errNotCgroup2 = errors.New("not a cgroup2 file system")

// moveSelf writes "0" (the writer's own thread group) into cgroup.procs of
// rel below the cgroup2 mount mnt. The path comes from the kernel, and is
// still resolved beneath the mount without following links or crossing
// into another file system.
func moveSelf(mnt, rel string) error {
	root, err := unix.Open(mnt, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errNotCgroup2
	}
	defer unix.Close(root)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(root, &sfs); err != nil || sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		return errNotCgroup2
	}
	procs := path.Join(rel, "cgroup.procs")
	fd, err := unix.Openat2(root, procs, &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return fmt.Errorf("open %s/%s: %w", mnt, procs, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("0")); err != nil {
		return fmt.Errorf("write %s/%s: %w", mnt, procs, err)
	}
	return nil
}

// unifiedCgroup returns the cgroup2 path of a /proc/<pid>/cgroup file,
// relative to the hierarchy's root ("." for the root itself).
func unifiedCgroup(procCgroup string) (string, bool) {
	for _, line := range strings.Split(procCgroup, "\n") {
		p, ok := strings.CutPrefix(line, "0::/")
		if !ok {
			continue
		}
		if strings.HasSuffix(p, " (deleted)") {
			return "", false
		}
		if p == "" {
			p = "."
		}
		p = path.Clean(p)
		if p == ".." || strings.HasPrefix(p, "../") {
			return "", false
		}
		return p, true
	}
	return "", false
}
