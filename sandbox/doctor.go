package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Check is one line of `pi-agent-runner doctor`.
type Check struct {
	Name   string
	OK     bool
	Info   bool   // informational: never fails the doctor
	Detail string // what was found
	Remedy string // what to do when it is not OK
}

func (c Check) String() string {
	status := "ok  "
	switch {
	case c.Info && !c.OK:
		status = "note"
	case !c.OK:
		status = "FAIL"
	}
	s := status + "  " + c.Name
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	if !c.OK && !c.Info && c.Remedy != "" {
		s += "\n      remedy: " + c.Remedy
	}
	return s
}

// Pass and Fail build checks.
func Pass(name, detail string) Check { return Check{Name: name, OK: true, Detail: detail} }

func Fail(name string, err error, remedy string) Check {
	return Check{Name: name, Detail: err.Error(), Remedy: remedy}
}

// CheckIDMap tells whether the filesystem of dir supports idmapped mounts:
// it clones dir as a detached mount and idmaps it, without attaching it
// anywhere.
func CheckIDMap(dir string) error {
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	tree, err := unix.OpenTree(int(f.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	ns, err := userNamespace(IDMap{DiskUID: 0, DiskGID: 0, AgentUID: 65533, AgentGID: 65533})
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}); err != nil {
		return fmt.Errorf("mount_setattr(MOUNT_ATTR_IDMAP): %w", err)
	}
	return nil
}

// SudoRule checks, with `sudo -l`, that user may run runner through sudo
// without a password, and notes a rule that grants more than the runner.
func SudoRule(sudo, user, runner string) []Check {
	name := "sudo rule for " + user
	if err := exec.Command(sudo, "-n", "-l", "-U", user, "--", runner, "run").Run(); err != nil {
		return []Check{{Name: name, Detail: "sudo does not let " + user + " run the runner",
			Remedy: fmt.Sprintf("add to /etc/sudoers.d/pi-agent: %s ALL=(root) NOPASSWD: %s (NixOS: m3ta.pi-agent.hostUsers does it)", user, runner)}}
	}
	out, _ := exec.Command(sudo, "-n", "-l", "-U", user).Output()
	scoped, broad := false, ""
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "NOPASSWD") && strings.Contains(l, runner) {
			scoped = true
		}
		if strings.HasSuffix(l, ") ALL") || strings.HasSuffix(l, ": ALL") {
			broad = l
		}
	}
	if !scoped {
		return []Check{{Name: name, Detail: user + " reaches the runner only through a broad rule (" + broad + ")",
			Remedy: fmt.Sprintf("add the scoped rule: %s ALL=(root) NOPASSWD: %s", user, runner)}}
	}
	checks := []Check{Pass(name, "NOPASSWD for "+runner+" only")}
	if broad != "" {
		checks = append(checks, Check{Name: "sudo scope for " + user, Info: true,
			Detail: "another rule grants " + user + " everything (" + broad + "); the sandbox protects " + user + " from the agent, not from themselves"})
	}
	return checks
}

// Executable checks that the agent command exists, is executable, and lies
// in a path the sandbox shows.
func Executable(cmd string, readOnly []string) error {
	resolved, err := filepath.EvalSymlinks(cmd)
	if err != nil {
		return err
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", resolved)
	}
	for _, p := range readOnly {
		if r, err := filepath.EvalSymlinks(p); err == nil && Within(r, resolved) {
			return nil
		}
	}
	return errors.New(resolved + " lies outside every sandbox.readOnlyPaths entry, so the sandbox cannot see it")
}
