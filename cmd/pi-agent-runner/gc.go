package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/m3ta/pi-agent/sandbox"
	"github.com/m3ta/pi-agent/sandbox/oci"
	"github.com/m3ta/pi-agent/sandbox/systemd"
)

// runDir holds the runs' state, root filesystems and project mounts; it is
// apart from the binary's directory (see sandbox/oci.Backend).
const runDir = "/run/pi-agent"

// rootfsIdle is how long a run's gc keeps a shared rootfs no run uses: a
// caller coming back within it starts without building one.
const rootfsIdle = time.Hour

func ociBackend() *oci.Backend { return &oci.Backend{RunDir: runDir} }

func systemdBackend() *systemd.Backend {
	return &systemd.Backend{RunDir: filepath.Join(runDir, "units"), SystemdRun: lookTool("systemd-run"), Systemctl: lookTool("systemctl")}
}

// lookTool finds a system tool in root's usual places, never through the
// caller's PATH.
func lookTool(name string) string {
	for _, dir := range []string{"/run/current-system/sw/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

// newBackend returns the backend called name; "auto" picks oci when the
// kernel offers what it needs, else systemd when it runs the host.
func newBackend(name string) (sandbox.Backend, error) {
	switch name {
	case sandbox.BackendOCI:
		return ociBackend(), nil
	case sandbox.BackendSystemd:
		if err := systemd.Available(); err != nil {
			return nil, err
		}
		return systemdBackend(), nil
	case sandbox.BackendAuto:
		ociErr := oci.Supported()
		if ociErr == nil {
			return autoBackend{ociBackend()}, nil
		}
		if systemd.Available() == nil {
			return autoBackend{systemdBackend()}, nil
		}
		return nil, fmt.Errorf("backend auto: neither backend works here: oci: %v; systemd: not the init system", ociErr)
	}
	return nil, fmt.Errorf("backend %q is not one of oci, systemd, auto", name)
}

// autoBackend marks a backend chosen by "auto" in the audit line.
type autoBackend struct{ sandbox.Backend }

func (a autoBackend) Name() string { return a.Backend.Name() + "(auto)" }

// collectGarbage removes what dead runners of either backend left behind,
// and shared root filesystems no run has used for keepRootfs.
func collectGarbage(keepRootfs time.Duration) ([]string, error) {
	ob := ociBackend()
	ob.RootfsIdle = keepRootfs
	a, errA := ob.GC()
	b, errB := systemdBackend().GC()
	return append(a, b...), errors.Join(errA, errB)
}

func cmdGC(args []string) int {
	fs := pflag.NewFlagSet("gc", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, "Usage: pi-agent-runner gc\n\nRemoves containers, cgroups and run directories left by runners that died,\nand every shared root filesystem no run uses. Every run does this too, beside\nthe agent, keeping root filesystems used within the last hour.\n")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Geteuid() != 0 {
		return fail("gc must run as root")
	}
	removed, err := collectGarbage(0)
	for _, id := range removed {
		fmt.Printf("removed %s\n", id)
	}
	if err != nil {
		return fail("gc: %v", err)
	}
	return 0
}
