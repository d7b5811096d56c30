// Command pi is the host-side wrapper of pi-agent. It takes one flag of its
// own, --backend, and hands every other argument, untouched and in order, to
// the privileged runner through sudo. It needs no privileges and parses none
// of pi's own flags.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/m3ta/pi-agent/internal/cgprime"
)

// runnerPath is the absolute path of pi-agent-runner, fixed at build time
// (-ldflags "-X main.runnerPath=...") so that the sudoers rule can name it.
var runnerPath = "/run/current-system/sw/libexec/pi-agent/pi-agent-runner"

// sudoPath is the sudo binary; on NixOS the setuid wrapper.
var sudoPath = "sudo"

const help = `pi runs the pi coding agent as the dedicated pi-agent user, sandboxed in the
current project. Every argument is passed to pi unchanged, except:

  --backend oci|systemd|auto  choose the sandbox backend (default: the system's)
  --show-config           print the settings and environment names the agent
                          would get here (values are never printed)
  --wrapper-help          show this help (pi --help shows pi's own)

The runner is called through sudo as: sudo -n -- %s run [--backend B] -- ARGS
`

// splitArgs takes the wrapper's own --backend flag out of args. Scanning stops
// at the first "--", which is passed on with everything after it.
func splitArgs(args []string) (backend string, rest []string, err error) {
	rest = []string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return backend, append(rest, args[i:]...), nil
		case a == "--backend":
			if i+1 >= len(args) {
				return "", nil, errors.New("--backend needs a value: oci, systemd or auto")
			}
			i++
			backend = args[i]
		case len(a) > len("--backend=") && a[:len("--backend=")] == "--backend=":
			backend = a[len("--backend="):]
		case a == "--backend=":
			return "", nil, errors.New("--backend needs a value: oci, systemd or auto")
		default:
			rest = append(rest, a)
		}
	}
	if backend != "" && backend != "oci" && backend != "systemd" && backend != "auto" {
		return "", nil, fmt.Errorf("--backend %q is not one of oci, systemd, auto", backend)
	}
	return backend, rest, nil
}

// sudoArgs is the argv of the sudo call; every element stays one argument.
func sudoArgs(backend string, rest []string) []string {
	argv := []string{"-n", "--", runnerPath, "run"}
	if backend != "" {
		argv = append(argv, "--backend", backend)
	}
	return append(append(argv, "--"), rest...)
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--wrapper-help" {
		fmt.Printf(help, runnerPath)
		return
	}
	if len(os.Args) == 2 && os.Args[1] == "--show-config" {
		os.Exit(runSudo([]string{"-n", "--", runnerPath, "config"}))
	}
	backend, rest, err := splitArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "pi: %v\n", err)
		os.Exit(2)
	}
	// Where the caller's cgroup is theirs (systemd's desktop and user
	// service scopes), the sandbox's cgroup move can be readied before sudo
	// even starts; elsewhere this fails, unseen, and the runner does it.
	go func() { _ = cgprime.Prime() }()
	os.Exit(runSudo(sudoArgs(backend, rest)))
}

func runSudo(argv []string) int {
	cmd := exec.Command(sudoBinary(), argv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The runner puts the terminal in raw mode and restores it; if it is
	// killed (SIGKILL), nobody else would. The wrapper remembers the modes
	// and puts them back whatever happened.
	if saved, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS); err == nil {
		defer unix.IoctlSetTermios(int(os.Stdin.Fd()), unix.TCSETS, saved)
	}
	// sudo is in our process group and gets terminal signals itself; it
	// relays them to the runner. Signals sent to us alone are passed on.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "pi: cannot start sudo: %v\nhint: install sudo; pi runs the agent through it\n", err)
		return 127
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			fmt.Fprintf(os.Stderr, "pi: %v\n", err)
			return 127
		}
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		} else {
			code = ws.ExitStatus()
		}
	}
	// sudo exits 1 when it refuses. Only then (the agent may exit 1 too)
	// ask sudo, without running anything, whether the rule exists.
	if code == 1 && !sudoAllows() {
		fmt.Fprintf(os.Stderr, `pi: sudo does not let you run the agent runner.
hint: the administrator must allow it without a password, for this command only:
  %s ALL=(root) NOPASSWD: %s
(on NixOS, add this user to m3ta.pi-agent.hostUsers; never grant ALL)
`, currentUser(), runnerPath)
	}
	return code
}

// sudoBinary is sudoPath, or sudo from PATH when a build for NixOS
// (/run/wrappers/bin/sudo) runs on a host without that wrapper.
func sudoBinary() string {
	if filepath.IsAbs(sudoPath) {
		if _, err := os.Stat(sudoPath); err != nil {
			return "sudo"
		}
	}
	return sudoPath
}

func sudoAllows() bool {
	c := exec.Command(sudoBinary(), "-n", "-l", "--", runnerPath, "run")
	c.Stdout, c.Stderr = nil, nil
	return c.Run() == nil
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" && !containsSpace(u) {
		return u
	}
	return fmt.Sprintf("#%d", unix.Getuid())
}

func containsSpace(s string) bool {
	for _, r := range s {
		if r == ' ' || r == '\t' || r == '\n' {
			return true
		}
	}
	return false
}
