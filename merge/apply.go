package merge

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// beneath confines a path resolution to a directory: no "..", no absolute
// names, no symlinks (the agent can plant them in its runtime dir), no magic
// links, no other mounts.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// tree is a directory the runner writes into as root on behalf of the agent:
// every path below it is resolved with openat2 beneath the root descriptor,
// and everything created gets the agent's ownership.
type tree struct {
	root     int // O_PATH descriptor of the directory
	uid, gid int
}

func openTree(dir string, uid, gid int) (*tree, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return &tree{root: fd, uid: uid, gid: gid}, nil
}

func (t *tree) Close() error { return unix.Close(t.root) }

// dir returns an O_PATH descriptor of the directory rel ("" = the root).
func (t *tree) dir(rel string) (int, error) {
	if rel == "" || rel == "." {
		return unix.Dup(t.root)
	}
	return unix.Openat2(t.root, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
}

// mkdirAll creates rel and its missing parents, owned by the agent.
func (t *tree) mkdirAll(rel string, mode uint32) error {
	parent := path.Dir(rel)
	if parent != "." {
		if err := t.mkdirAll(parent, 0o700); err != nil {
			return err
		}
	} else {
		parent = ""
	}
	pfd, err := t.dir(parent)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	name := path.Base(rel)
	err = unix.Mkdirat(pfd, name, 0o700)
	if err == nil {
		if err := unix.Fchownat(pfd, name, t.uid, t.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		return unix.Fchmodat(pfd, name, dirMode(mode), 0)
	}
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	// It exists: it must be a real directory, not a link or a file.
	fd, err := t.dir(rel)
	if err != nil {
		return fmt.Errorf("%s exists and is not a directory: %w", rel, err)
	}
	return unix.Close(fd)
}

// hashFile returns the sha256 of the regular file rel, or "" if there is
// none; at most limit bytes are read.
func (t *tree) hashFile(rel string, limit int64) (string, error) {
	fd, err := unix.Openat2(t.root, rel, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC, Resolve: beneath})
	if errors.Is(err, unix.ENOENT) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", fmt.Errorf("%s is not a regular file", rel)
	}
	if st.Size > limit {
		return "", fmt.Errorf("%s is larger than %d bytes", rel, limit)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, limit)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readFile reads the regular file rel, at most limit bytes; ok is false when
// it does not exist.
func (t *tree) readFile(rel string, limit int64) (data []byte, ok bool, err error) {
	fd, err := unix.Openat2(t.root, rel, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC, Resolve: beneath})
	if errors.Is(err, unix.ENOENT) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, false, fmt.Errorf("%s is not a regular file", rel)
	}
	data, err = io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(data)) > limit {
		return nil, false, fmt.Errorf("%s is larger than %d bytes", rel, limit)
	}
	return data, true, nil
}

// moveIn renames the staged file (in the root-only staging dir) to rel. The
// rename is atomic: a reader, or a sync killed half-way, sees the old file or
// the new one, never a mix.
func (t *tree) moveIn(staging int, staged, rel string) error {
	parent := path.Dir(rel)
	if parent == "." {
		parent = ""
	}
	pfd, err := t.dir(parent)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return unix.Renameat(staging, staged, pfd, path.Base(rel))
}

// remove deletes the file rel (flags 0) or the empty directory rel
// (unix.AT_REMOVEDIR); a missing entry is not an error.
func (t *tree) remove(rel string, flags int) error {
	parent := path.Dir(rel)
	if parent == "." {
		parent = ""
	}
	pfd, err := t.dir(parent)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Unlinkat(pfd, path.Base(rel), flags); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// fileMode keeps the owner's, group's and others' read and execute bits of
// a host file, adds owner read-write, and drops setuid, setgid, sticky and
// every write bit but the owner's.
func fileMode(m uint32) uint32 { return m&0o755 | 0o600 }

func dirMode(m uint32) uint32 { return m&0o755 | 0o700 }
