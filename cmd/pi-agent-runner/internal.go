package main

import (
	"os"

	"github.com/m3ta/pi-agent/merge"
	"github.com/m3ta/pi-agent/reaper"
	"github.com/m3ta/pi-agent/sandbox"
)

// cmdResolve is the helper that resolves the caller's paths with the
// caller's rights (see sandbox.ResolveProject). It refuses to run as root.
func cmdResolve() int {
	if err := sandbox.ServeResolve(os.Stdin, os.NewFile(3, "sock")); err != nil {
		return fail("%v", err)
	}
	return 0
}

// cmdSyncRead is the helper that reads the caller's pi config with the
// caller's rights and streams it to the runner (see merge.Sync).
func cmdSyncRead() int {
	if err := merge.ServeRead(os.Stdin, os.Stdout); err != nil {
		return fail("%v", err)
	}
	return 0
}

// cmdReap is PID 1 inside the container.
func cmdReap(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	return reaper.Run(args)
}
