package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ExpandRoot replaces a leading "~" of a configured project root with the
// caller's home from passwd. Roots are validated by Config.Validate.
func ExpandRoot(root, home string) string {
	if root == "~" {
		return filepath.Clean(home)
	}
	if strings.HasPrefix(root, "~/") {
		return filepath.Join(home, root[2:])
	}
	return filepath.Clean(root)
}

// Within reports whether p is base or lies beneath it, comparing whole path
// components ("/a/bc" is not within "/a/b"). A path that is not clean and
// absolute is within nothing.
func Within(base, p string) bool {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || filepath.Clean(base) != base {
		return false
	}
	if base == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == base || strings.HasPrefix(p, base+"/")
}

// Project is the outcome of the policy check: what the sandbox mounts and
// where the agent starts. Mount holds an O_PATH descriptor of the directory
// that was checked, so that the mount is made from the very inode the check
// saw; a rename or symlink swap afterwards cannot redirect it.
type Project struct {
	Root  string   // the allowlisted root (resolved) that contains Cwd
	Path  string   // resolved path of the directory to mount
	Cwd   string   // resolved working directory, within Path
	Mount *os.File // O_PATH descriptor of Path
}

// Close releases the descriptor.
func (p *Project) Close() error {
	if p == nil || p.Mount == nil {
		return nil
	}
	return p.Mount.Close()
}

// PolicyError is a refusal: the caller may not run the agent here. Its
// message lists the caller's allowed roots.
type PolicyError struct{ Msg string }

func (e *PolicyError) Error() string { return e.Msg }

type resolveRequest struct {
	Roots []string `json:"roots"`
	Scope string   `json:"scope"`
}

type resolveReply struct {
	// RootErr[i] is empty when root i was opened (its descriptor follows in
	// order), else why not.
	RootErr []string `json:"rootErr"`
	// MountRoot is the index of the root the mount descriptor belongs to,
	// -1 when no root contains the working directory.
	MountRoot int `json:"mountRoot"`
}

// ResolveProject decides, for caller and the runner's working directory,
// which directory the sandbox mounts. The caller's paths (~, symlinks in
// their home) are resolved by a helper process that runs as the caller, with
// the caller's groups and no capabilities, so root never follows a link the
// caller planted; the helper hands back O_PATH descriptors. Everything the
// helper says is then checked again here from those descriptors, because the
// caller can tamper with a process running as themselves.
//
// The helper (`pi-agent-helper _caller`, started in the runner's working
// directory with the other end of CallerSocket as fd 3, and as the caller:
// see HelperCredential) is on the other end of sock; it answers one request.
func ResolveProject(sock *os.File, caller Account, roots []string, scope string) (_ *Project, retErr error) {
	expanded := make([]string, len(roots))
	for i, r := range roots {
		expanded[i] = ExpandRoot(r, caller.Home)
	}
	refuse := func(format string, args ...any) error {
		return &PolicyError{Msg: fmt.Sprintf(format, args...) +
			fmt.Sprintf("\nallowed project roots for %s: %s\nhint: cd into one of them, or ask the administrator to add this directory to hostUsers.%s.projectRoots",
				caller.Name, strings.Join(expanded, ", "), caller.Name)}
	}

	cwdFile, err := os.OpenFile(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open working directory: %w", err)
	}
	defer cwdFile.Close()
	cwd, err := fdPath(cwdFile)
	if err != nil {
		return nil, fmt.Errorf("working directory: %w", err)
	}

	reply, files, err := askResolveHelper(sock, resolveRequest{Roots: expanded, Scope: scope})
	if err != nil {
		return nil, err
	}
	// The last descriptor is the mount directory, which the returned
	// Project owns; every other one is closed here.
	defer func() {
		for i, f := range files {
			if retErr == nil && i == len(files)-1 {
				continue
			}
			f.Close()
		}
	}()

	// Pair the descriptors with the roots they stand for.
	if len(reply.RootErr) != len(expanded) {
		return nil, errors.New("resolve helper: malformed reply")
	}
	rootPaths := make([]string, len(expanded))
	next := 0
	for i, e := range reply.RootErr {
		if e != "" {
			continue
		}
		if next >= len(files) {
			return nil, errors.New("resolve helper: too few descriptors")
		}
		p, err := fdPath(files[next])
		if err != nil {
			return nil, fmt.Errorf("project root %s: %w", expanded[i], err)
		}
		rootPaths[i] = p
		next++
	}
	if reply.MountRoot < 0 || reply.MountRoot >= len(expanded) || rootPaths[reply.MountRoot] == "" || next != len(files)-1 {
		return nil, refuse("%s is not inside an allowed project root", cwd)
	}
	mountFile := files[len(files)-1]
	mountPath, err := fdPath(mountFile)
	if err != nil {
		return nil, fmt.Errorf("project directory: %w", err)
	}
	root := rootPaths[reply.MountRoot]
	switch {
	case !Within(root, cwd):
		return nil, refuse("%s is not inside an allowed project root", cwd)
	case !Within(root, mountPath) || !Within(mountPath, cwd):
		return nil, errors.New("resolve helper: chose a directory that does not contain the working directory")
	case scope == "root" && mountPath != root:
		return nil, errors.New("resolve helper: chose a directory other than the root")
	}
	if err := checkIsDir(mountFile); err != nil {
		return nil, fmt.Errorf("project directory %s: %w", mountPath, err)
	}
	return &Project{Root: root, Path: mountPath, Cwd: cwd, Mount: mountFile}, nil
}

func checkIsDir(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return errors.New("not a directory")
	}
	return nil
}

// CallerSocket returns a connected pair of sockets for ResolveProject: the
// runner keeps the first, the helper gets the second as fd 3.
func CallerSocket() (runner, helper *os.File, err error) {
	runner, helper, err = seqpacketPair()
	if err != nil {
		return nil, nil, err
	}
	// A helper that neither answers nor exits cannot hold the runner.
	tv := unix.NsecToTimeval((30 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(int(runner.Fd()), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		runner.Close()
		helper.Close()
		return nil, nil, err
	}
	return runner, helper, nil
}

// askResolveHelper sends req to the helper and returns its reply and the
// descriptors that came with it.
func askResolveHelper(sock *os.File, req resolveRequest) (*resolveReply, []*os.File, error) {
	in, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	if err := sendMsg(sock, in, nil); err != nil {
		return nil, nil, fmt.Errorf("resolve helper: %w", err)
	}
	payload, files, err := recvMsg(sock, len(req.Roots)+1)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve helper: %w", err)
	}
	if len(payload) == 0 {
		closeAll(files)
		return nil, nil, errors.New("resolve helper ended without an answer")
	}
	var reply resolveReply
	if err := json.Unmarshal(payload, &reply); err != nil {
		closeAll(files)
		return nil, nil, fmt.Errorf("resolve helper: %w", err)
	}
	return &reply, files, nil
}

// HelperCredential is what the caller-side helper runs with: the caller's
// uid, gid and groups. A change of every uid away from 0 clears all
// capabilities; no_new_privs is set by the helper itself before it touches
// anything.
func HelperCredential(caller Account) *syscall.Credential {
	groups := make([]uint32, len(caller.Groups))
	for i, g := range caller.Groups {
		groups[i] = uint32(g)
	}
	return &syscall.Credential{Uid: uint32(caller.UID), Gid: uint32(caller.GID), Groups: groups}
}

// ServeResolve is the helper side of ResolveProject (first part of
// `pi-agent-helper _caller`): it runs as the caller, reads one request from
// sock (fd 3) and answers on it.
func ServeResolve(sock *os.File) error {
	if os.Geteuid() == 0 || os.Getuid() == 0 {
		return errors.New("_caller is internal and never runs as root")
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	payload, files, err := recvMsg(sock, 0)
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	closeAll(files)
	var req resolveRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	reply := resolveReply{RootErr: make([]string, len(req.Roots)), MountRoot: -1}
	var fds []int
	best, bestPath := -1, ""
	for i, r := range req.Roots {
		fd, err := unix.Open(r, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			reply.RootErr[i] = err.Error()
			continue
		}
		fds = append(fds, fd)
		p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if err == nil && Within(p, cwd) && len(p) > len(bestPath) {
			best, bestPath = i, p
		}
	}
	if best >= 0 {
		mount := bestPath
		if req.Scope == "project" {
			mount = projectDir(bestPath, cwd)
		}
		fd, err := unix.Open(mount, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", mount, err)
		}
		fds = append(fds, fd)
		reply.MountRoot = best
	}
	out, err := json.Marshal(reply)
	if err != nil {
		return err
	}
	return sendMsg(sock, out, fds)
}

// projectDir returns the nearest directory from cwd up to root that holds a
// .git entry (a git work tree), or cwd itself when there is none.
func projectDir(root, cwd string) string {
	for d := cwd; Within(root, d); d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		if d == root {
			break
		}
	}
	return cwd
}
