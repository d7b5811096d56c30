// Package reaper is PID 1 inside a sandbox: it starts the agent, forwards
// signals to it and reaps orphans. It imports nothing beyond the standard
// library and x/sys, so that the small helper binary that carries it starts
// fast.
package reaper

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Run is PID 1 inside the container (`/.pi-agent/init _reap -- ARGS…`). A
// process that is PID 1 of a pid namespace ignores every signal it has no
// handler for, so the agent itself must not be PID 1: Reap starts it as its
// child in a process group of its own (the foreground group of the terminal,
// when there is one), forwards the signals it receives to that group, reaps
// orphans, and exits with the agent's status (128+N for signal N). When Reap
// exits, the kernel kills whatever is left in the namespace.
func Run(args []string) int {
	if os.Getpid() != 1 || os.Geteuid() == 0 {
		fmt.Fprintln(os.Stderr, "pi-agent: _reap is internal: it runs only as PID 1 of a sandbox, never as root")
		return 125
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "pi-agent: _reap: no command")
		return 125
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)

	_, ttyErr := unix.IoctlGetTermios(0, unix.TCGETS)
	attr := &syscall.SysProcAttr{Setpgid: true}
	if ttyErr == nil {
		attr.Foreground, attr.Ctty = true, 0
	}
	path := args[0]
	proc, err := os.StartProcess(path, args, &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   attr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pi-agent: start %s: %v\n", path, err)
		if errors.Is(err, os.ErrNotExist) {
			return 127
		}
		return 126
	}
	child := proc.Pid
	for s := range sigs {
		sig := s.(syscall.Signal)
		switch sig {
		case unix.SIGCHLD:
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if err != nil || pid <= 0 {
					break
				}
				if pid == child {
					if ws.Signaled() {
						return 128 + int(ws.Signal())
					}
					return ws.ExitStatus()
				}
			}
		case unix.SIGURG, unix.SIGWINCH, unix.SIGTTIN, unix.SIGTTOU, unix.SIGPIPE:
			// Go runtime preemption, and terminal signals the kernel
			// already delivers to the foreground group.
		default:
			_ = unix.Kill(-child, sig)
		}
	}
	return 125
}
