package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// OpenTrusted opens path for reading after checking that nobody but root (or
// trustedUID) can have changed it: the file, every directory above it and
// every symlink on the way, before and after resolution, must be owned by
// root or trustedUID and not writable by group or others. A world- or
// group-writable directory is accepted only with the sticky bit set (as /tmp
// and /nix/store are): there only an entry's owner may rename or remove it,
// and the next component is checked in turn. This is the rule sudo applies to
// sudoers.
func OpenTrusted(path string, trustedUID int) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%s: a trusted file must be named by an absolute path", path)
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	for _, p := range []string{path, resolved} {
		if err := checkTrustedChain(p, trustedUID); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(resolved, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if err := checkTrustedMode(path, &st, trustedUID); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return f, nil
}

// CheckTrustedDir checks a directory the runner writes into (the state dir)
// with the same rule as OpenTrusted.
func CheckTrustedDir(path string, trustedUID int) error {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	for _, p := range []string{path, resolved} {
		if err := checkTrustedChain(p, trustedUID); err != nil {
			return err
		}
	}
	return nil
}

func checkTrustedChain(path string, trustedUID int) error {
	p := "/"
	comps := strings.Split(strings.Trim(filepath.Clean(path), "/"), "/")
	for i := -1; i < len(comps); i++ {
		if i >= 0 {
			if comps[i] == "" {
				continue
			}
			p = filepath.Join(p, comps[i])
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("check %s: %w", p, err)
		}
		if err := checkTrustedMode(p, &st, trustedUID); err != nil {
			if p != path {
				return fmt.Errorf("%w (while checking %s)", err, path)
			}
			return err
		}
	}
	return nil
}

func checkTrustedMode(p string, st *unix.Stat_t, trustedUID int) error {
	if st.Uid != 0 && int(st.Uid) != trustedUID {
		return fmt.Errorf("%s is owned by uid %d, not root: only root may control the runner's configuration (chown root %s)", p, st.Uid, p)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return nil // a symlink's own mode means nothing; its target is checked too
	case unix.S_IFDIR:
		if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
			return fmt.Errorf("%s is writable by group or others (mode %#o): chmod go-w %s", p, st.Mode&0o7777, p)
		}
	default:
		if st.Mode&0o022 != 0 {
			return fmt.Errorf("%s is writable by group or others (mode %#o): chmod go-w %s", p, st.Mode&0o7777, p)
		}
	}
	return nil
}
