package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/m3ta/pi-agent/sandbox/oci"
)

// runDir holds containers' state and root filesystems; it is apart from the
// binary's directory (see sandbox/oci.Backend).
const runDir = "/run/pi-agent"

func cmdGC(args []string) int {
	fs := pflag.NewFlagSet("gc", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, "Usage: pi-agent-runner gc\n\nRemoves containers, cgroups and run directories left by runners that died.\nEvery run does this too before it starts.\n")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		return fail("gc must run as root")
	}
	removed, err := (&oci.Backend{RunDir: runDir}).GC()
	for _, id := range removed {
		fmt.Printf("removed %s\n", id)
	}
	if err != nil {
		return fail("gc: %v", err)
	}
	return 0
}
