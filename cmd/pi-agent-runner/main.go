// Command pi-agent-runner is the privileged half of pi-agent: invoked by root
// or through sudo by the `pi` wrapper, it checks who is calling and from
// where, prepares the agent's runtime, and starts the agent as the dedicated
// pi-agent user in a sandbox.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/opencontainers/runc/libcontainer"
	// nsenter's C constructor joins and sets up namespaces in the
	// container's init before the Go runtime starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

func init() {
	// libcontainer re-executes this binary as the container's init
	// ("init"); that process must not run any of our start-up code. sudo
	// strips the _LIBCONTAINER_* variables, so a caller cannot reach this
	// path with a pipe of their own.
	if len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("SUDO_UID") == "" {
		libcontainer.Init()
	}
	// Keep the main goroutine on the main thread. libcontainer moves a
	// locked thread into each new container's mount namespace and lets it
	// die afterwards; were that the main thread, which Go never ends, the
	// process would stay there half-way and /proc/self (the main thread's
	// view) would show the container's mounts instead of the host's.
	runtime.LockOSThread()
}

const usage = `pi-agent-runner runs the pi coding agent as the dedicated pi-agent user,
in a sandbox that sees only the current project and a synced copy of the
caller's pi config.

Usage:
  pi-agent-runner run [--backend oci|systemd] -- [AGENT ARGS...]
  pi-agent-runner config
  pi-agent-runner doctor [--prove]
  pi-agent-runner gc
  pi-agent-runner help

Users do not call it directly: the pi wrapper runs it through sudo.
Root may call it directly with --config and --as-user (tests, admins).

Exit status: the agent's own status (128+N when signal N ended it), or 125
when the runner refused or failed before the agent started.
`

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:])
	case "gc":
		return cmdGC(args[1:])
	case "config":
		return cmdConfig(args[1:])
	case "doctor":
		return cmdDoctor(args[1:])
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "pi-agent-runner: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// exitRefused is the status of every refusal and runner failure.
const exitRefused = 125

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "pi-agent-runner: "+format+"\n", args...)
	return exitRefused
}
