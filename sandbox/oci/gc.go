package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/m3ta/pi-agent/sandbox"
)

// GC removes what runs whose runner died (SIGKILL, power loss of the
// process) left behind: their containers, with every process in them, their
// cgroups and their run directories. Runs whose runner is alive are left
// alone. It returns the ids it removed.
func (b *Backend) GC() ([]string, error) {
	var removed []string
	var errs []error
	ids := map[string]bool{}
	for _, root := range []string{b.runRoot(), b.stateRoot()} {
		entries, err := os.ReadDir(root)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), sandbox.IDPrefix) {
				ids[e.Name()] = true
			}
		}
	}
	if err := sandbox.RemoveStaleNewDirs(b.runRoot()); err != nil {
		errs = append(errs, err)
	}
	for id := range ids {
		if b.ownerAlive(id) {
			continue
		}
		if err := b.remove(id); err != nil {
			errs = append(errs, fmt.Errorf("remove leftover %s: %w", id, err))
			continue
		}
		removed = append(removed, id)
	}
	if err := gcCgroups(ids, b); err != nil {
		errs = append(errs, err)
	}
	// Last: the containers of dead runs, which may have used a shared
	// rootfs, are gone now.
	if err := b.gcRootfs(); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// ownerAlive reads the owner from the run directory, or failing that from
// the container's state.
func (b *Backend) ownerAlive(id string) bool {
	if _, err := os.Stat(filepath.Join(b.runDir(id), "owner")); err == nil {
		return sandbox.RunDirOwnerAlive(b.runDir(id))
	}
	c, err := libcontainer.Load(b.stateRoot(), id)
	if err != nil {
		return false
	}
	for _, l := range c.Config().Labels {
		if v, ok := strings.CutPrefix(l, ownerLabel+"="); ok {
			return sandbox.OwnerAlive(v)
		}
	}
	return false
}

func (b *Backend) remove(id string) error {
	var errs []error
	if c, err := libcontainer.Load(b.stateRoot(), id); err == nil {
		if err := destroy(c); err != nil {
			errs = append(errs, err)
		}
	} else if err := os.RemoveAll(filepath.Join(b.stateRoot(), id)); err != nil {
		errs = append(errs, err)
	}
	if err := sandbox.RemoveRunDir(b.runDir(id)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// gcCgroups removes pi-agent cgroups that no live run owns: a runner killed
// while libcontainer was still creating the container can leave a cgroup
// without state. Processes in it are killed first.
func gcCgroups(known map[string]bool, b *Backend) error {
	mounts, _ := filepath.Glob("/sys/fs/cgroup/*/pi-agent")
	if st, err := os.Stat("/sys/fs/cgroup/pi-agent"); err == nil && st.IsDir() {
		mounts = append(mounts, "/sys/fs/cgroup/pi-agent")
	}
	var errs []error
	for _, parent := range mounts {
		entries, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range entries {
			id := e.Name()
			if !e.IsDir() || !strings.HasPrefix(id, sandbox.IDPrefix) {
				continue
			}
			if known[id] && b.ownerAlive(id) {
				continue
			}
			if _, err := os.Stat(b.runDir(id)); err == nil && b.ownerAlive(id) {
				continue
			}
			if err := removeCgroup(filepath.Join(parent, id)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func removeCgroup(dir string) error {
	for i := 0; i < 50; i++ {
		if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(procs)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("rmdir %s: %w", dir, err)
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 20e6}, nil)
	}
	return fmt.Errorf("cgroup %s stays busy", dir)
}
