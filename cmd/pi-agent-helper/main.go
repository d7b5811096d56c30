// Command pi-agent-helper is the small, static companion of pi-agent-runner,
// installed next to it. The runner starts it three ways, none as root:
//
//	_caller     as the caller, in the caller's working directory: resolves
//	            the caller's project paths and hands back descriptors (see
//	            sandbox.ResolveProject), then streams the caller's pi config
//	            (merge.Sync): one process for both, per run
//	_sync-read  as the caller: streams the caller's pi config (merge.Sync
//	            outside a run: config, doctor)
//	_reap       as PID 1 of a sandbox: starts the agent, forwards signals,
//	            reaps orphans (reaper.Run)
//
// It carries none of the runner's container code, so each start costs a
// fraction of the runner's. Run by hand it refuses: each mode checks that it
// runs where it belongs.
package main

import (
	"fmt"
	"os"

	"github.com/m3ta/pi-agent/merge"
	"github.com/m3ta/pi-agent/reaper"
	"github.com/m3ta/pi-agent/sandbox"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "pi-agent-helper: internal to pi-agent-runner; not for direct use")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "_reap":
		args := os.Args[2:]
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
		os.Exit(reaper.Run(args))
	case "_caller":
		sock := os.NewFile(3, "sock")
		if err = sandbox.ServeResolve(sock); err == nil {
			sock.Close()
			err = merge.ServeRead(os.Stdin, os.Stdout)
		}
	case "_sync-read":
		err = merge.ServeRead(os.Stdin, os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "pi-agent-helper: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pi-agent-helper: %v\n", err)
		os.Exit(125)
	}
}
