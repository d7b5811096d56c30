package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/m3ta/pi-agent/internal/trace"
)

// IDMap maps one on-disk owner to the ids the agent runs with.
type IDMap struct {
	DiskUID, DiskGID   int // the caller's ids, as stored on disk
	AgentUID, AgentGID int // the agent's ids
}

// IDMapMount attaches at target (an empty directory in a root-only
// directory) an idmapped clone of the directory src refers to. The clone is
// made from the descriptor, so it is the very directory the policy checked,
// whatever has been renamed or swapped since; it is not recursive (mounts
// below the project stay hidden), and nosuid, nodev.
//
// Through it, files owned by the caller appear owned by the agent, and what
// the agent creates lands on disk owned by the caller. Files of anyone else
// appear owned by the overflow id (nobody) and keep only their "other"
// permissions. This works without a user namespace for the agent: the
// namespace below only describes the mapping.
//
// ns, when not nil, is a namespace made ahead for m (MakeUserNS); it stays
// open. Otherwise one is made here.
func IDMapMount(src *os.File, target string, m IDMap, ns *UserNS) (retErr error) {
	tree, err := unix.OpenTree(int(src.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("clone project mount: %w", os.NewSyscallError("open_tree", err))
	}
	defer unix.Close(tree)
	if ns == nil {
		ns = MakeUserNS(m)
		defer ns.Close()
	}
	nsFile, err := ns.file(m)
	if err != nil {
		return err
	}
	attr := &unix.MountAttr{
		Attr_set:  unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV,
		Userns_fd: uint64(nsFile.Fd()),
	}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr); err != nil {
		hint := ""
		if errors.Is(err, unix.EINVAL) {
			hint = " (the project's filesystem may not support idmapped mounts on this kernel; see pi-agent-runner doctor)"
		}
		return fmt.Errorf("idmap project mount: %w%s", os.NewSyscallError("mount_setattr", err), hint)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach project mount at %s: %w", target, os.NewSyscallError("move_mount", err))
	}
	return nil
}

// MountProject attaches the idmapped project of p at target (see
// IDMapMount), with the namespace the runner made ahead, if any.
func MountProject(p *Plan, target string) error {
	return IDMapMount(p.ProjectDir, target, p.ProjectIDMap(), p.UserNS)
}

// ProjectIDMap is the mapping of p's project: the caller's files appear as
// the agent's.
func (p *Plan) ProjectIDMap() IDMap {
	return IDMap{DiskUID: p.Caller.UID, DiskGID: p.Caller.GID, AgentUID: p.Agent.UID, AgentGID: p.Agent.GID}
}

// UserNS is a user namespace for an idmapped mount, being made in the
// background from the moment MakeUserNS returns: the runner starts it as
// soon as it knows both accounts, and the mount later finds it ready.
type UserNS struct {
	m    IDMap
	done chan struct{}
	f    *os.File
	err  error
}

// MakeUserNS starts making the user namespace for m.
func MakeUserNS(m IDMap) *UserNS {
	ns := &UserNS{m: m, done: make(chan struct{})}
	go func() {
		ns.f, ns.err = userNamespace(m)
		close(ns.done)
	}()
	return ns
}

// file waits for the namespace, which must have been made for m.
func (ns *UserNS) file(m IDMap) (*os.File, error) {
	<-ns.done
	if ns.err != nil {
		return nil, ns.err
	}
	if ns.m != m {
		return nil, fmt.Errorf("user namespace made for %+v, needed for %+v", ns.m, m)
	}
	return ns.f, nil
}

// Close waits for the namespace and releases it. A nil UserNS is fine.
func (ns *UserNS) Close() {
	if ns == nil {
		return
	}
	<-ns.done
	if ns.f != nil {
		ns.f.Close()
	}
}

// userNamespace returns a user namespace whose maps are m: on-disk id inside,
// agent id outside. A child is cloned into a new namespace with those maps and
// held stopped by ptrace before it runs any code; its namespace outlives it
// through the returned descriptor.
func userNamespace(m IDMap) (*os.File, error) {
	proc, err := os.StartProcess("/proc/self/exe", []string{"pi-agent-userns"}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: m.DiskUID, HostID: m.AgentUID, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: m.DiskGID, HostID: m.AgentGID, Size: 1}},
			Ptrace:      true, // stops at exec: the binary never runs
			Pdeathsig:   syscall.SIGKILL,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create user namespace for the idmap: %w", err)
	}
	defer func() {
		_ = proc.Kill()
		_, _ = proc.Wait()
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", proc.Pid))
	if err != nil {
		return nil, fmt.Errorf("open user namespace: %w", err)
	}
	return f, nil
}

// MakePrivateMount makes dir a mount point of its own with private
// propagation, so that mounts attached below it do not propagate to other
// mount namespaces of the host (services, other containers).
func MakePrivateMount(dir string) error {
	isMount, err := isMountPoint(dir)
	if err != nil {
		return err
	}
	if !isMount {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", dir, err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	return nil
}

func isMountPoint(dir string) (bool, error) {
	var a, b unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &a); err != nil {
		return false, fmt.Errorf("statx %s: %w", dir, err)
	}
	if err := unix.Statx(unix.AT_FDCWD, filepath.Dir(dir), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &b); err != nil {
		return false, fmt.Errorf("statx %s: %w", filepath.Dir(dir), err)
	}
	return a.Mnt_id != b.Mnt_id, nil
}

// MountsBelow lists the mount points at or below dir in the calling
// thread's mount namespace, deepest first. (Threads may differ: libcontainer
// moves a thread into each new container's namespace while it sets it up.)
func MountsBelow(dir string) ([]string, error) {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if Within(dir, mp) {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 and friends) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, ok := octal(s[i+1 : i+4]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	var v int
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	return byte(v), v < 256
}

// RemoveRunDir removes a run directory that may have mounts below it. The
// project is mounted below a run directory, so a removal that followed that
// mount would delete the caller's files: mounts are detached first, deepest
// first, and the removal itself never crosses into another mount (see
// RemoveAllOneFS), whatever the mount table said.
func RemoveRunDir(dir string) error {
	mounts, err := MountsBelow(dir)
	if err != nil {
		return err
	}
	for _, mp := range mounts {
		if err := unix.Unmount(mp, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", mp, err)
		}
	}
	// A container's mount namespace holds copies of these mounts until the
	// kernel frees it, shortly after its last process; meanwhile the mount
	// point is busy (EBUSY) in every namespace. Wait that out.
	for delay := time.Millisecond; ; delay *= 2 {
		err = RemoveAllOneFS(dir)
		if err == nil || !errors.Is(err, unix.EBUSY) || delay > time.Second {
			return err
		}
		trace.Mark("run dir busy")
		time.Sleep(delay)
	}
}

// ErrCrossesMount is returned by RemoveAllOneFS for a directory that is a
// mount point below the tree being removed.
var ErrCrossesMount = errors.New("refusing to remove across a mount point")

// RemoveAllOneFS removes dir and everything below it without ever descending
// into a directory that belongs to another mount (as rm --one-file-system).
// Traversal is by descriptor (openat with O_NOFOLLOW), so a path renamed
// during the walk cannot redirect it. dir not existing is not an error.
func RemoveAllOneFS(dir string) error {
	parent, err := unix.Open(filepath.Dir(dir), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Dir(dir), err)
	}
	defer unix.Close(parent)
	var st unix.Statx_t
	if err := unix.Statx(parent, filepath.Base(dir), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID|unix.STATX_TYPE, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("statx %s: %w", dir, err)
	}
	return removeAt(parent, filepath.Base(dir), dir, st.Mnt_id)
}

func removeAt(parent int, name, path string, mnt uint64) error {
	var st unix.Statx_t
	if err := unix.Statx(parent, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID|unix.STATX_TYPE, &st); err != nil {
		return fmt.Errorf("statx %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unlinkat(parent, name, 0, path)
	}
	if st.Mnt_id != mnt || st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		// Not even rmdir: a mount point's own directory goes only once
		// it is detached, and then this walk is retried.
		return fmt.Errorf("%s: %w", path, ErrCrossesMount)
	}
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	d := os.NewFile(uintptr(fd), path)
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return fmt.Errorf("read %s: %w", path, err)
	}
	for _, n := range names {
		if err := removeAt(fd, n, filepath.Join(path, n), mnt); err != nil {
			d.Close()
			return err
		}
	}
	d.Close()
	return unlinkat(parent, name, unix.AT_REMOVEDIR, path)
}

func unlinkat(dirfd int, name string, flags int, path string) error {
	if err := unix.Unlinkat(dirfd, name, flags); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}
