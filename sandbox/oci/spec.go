// Package oci runs a Plan as a container built with runc's libcontainer.
package oci

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/m3ta/pi-agent/rootfs"
	"github.com/m3ta/pi-agent/sandbox"
	"github.com/m3ta/pi-agent/seccomp"
)

// Options carries the host facts the spec needs besides the Plan.
type Options struct {
	// Rootfs is the directory populated with rootfs.Layout.Files.
	Rootfs string
	// ProjectSource is the host path of the prepared idmapped project mount.
	ProjectSource string
	// CgroupsPath is the container's cgroup, relative to each hierarchy.
	CgroupsPath string
	// Annotations are stored with the container state (gc reads them).
	Annotations map[string]string
}

// ReapArg is the argument that makes the runner binary act as the
// signal-forwarding PID 1 inside the container.
const ReapArg = "_reap"

// Layout returns the root filesystem layout for p.
func Layout(p *sandbox.Plan, o Options) *rootfs.Layout {
	return &rootfs.Layout{
		Hostname:      p.Hostname,
		ReadOnly:      p.ReadOnly,
		Home:          p.Agent.Home,
		AgentDir:      p.AgentDir,
		RuntimeDir:    p.RuntimeDir,
		ProjectPath:   p.Project,
		ProjectSource: o.ProjectSource,
		Agent:         rootfs.Owner{UID: uint32(p.Agent.UID), GID: uint32(p.Agent.GID)},
		TmpSize:       p.TmpSize,
		Init:          p.Init,
		AgentUser:     p.Agent.Name,
		AgentGroup:    p.AgentGroup,
	}
}

// Spec builds the OCI runtime spec for p. It is a pure function of its
// inputs: the same Plan gives the same spec, which `run --print-spec` writes
// out so that stock runc and crun can run the very same sandbox.
func Spec(p *sandbox.Plan, o Options) (*specs.Spec, error) {
	if err := validate(p, o); err != nil {
		return nil, err
	}
	mounts, err := Layout(p, o).Mounts()
	if err != nil {
		return nil, err
	}
	noCaps := &specs.LinuxCapabilities{
		Bounding: []string{}, Effective: []string{}, Inheritable: []string{},
		Permitted: []string{}, Ambient: []string{},
	}
	namespaces := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
		{Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
	}
	if p.Network == "none" {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	res := &specs.LinuxResources{
		// Deny every device; libcontainer then allows its default set
		// (null, zero, full, random, urandom, tty, ptmx, pts).
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if p.MemoryMax > 0 {
		limit := p.MemoryMax
		res.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
	}
	if p.PidsMax > 0 {
		pids := p.PidsMax
		res.Pids = &specs.LinuxPids{Limit: &pids}
	}
	args := append([]string{rootfs.InitPath, ReapArg, "--"}, p.Args...)
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: p.Hostname,
		Root:     &specs.Root{Path: o.Rootfs, Readonly: true},
		Process: &specs.Process{
			Terminal:        p.TTY,
			User:            specs.User{UID: uint32(p.Agent.UID), GID: uint32(p.Agent.GID), AdditionalGids: []uint32{}},
			Args:            args,
			Env:             p.Env,
			Cwd:             p.Cwd,
			Capabilities:    noCaps,
			NoNewPrivileges: true,
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
			},
		},
		Mounts:      mounts,
		Annotations: o.Annotations,
		Linux: &specs.Linux{
			Namespaces:        namespaces,
			Resources:         res,
			CgroupsPath:       o.CgroupsPath,
			Seccomp:           seccomp.OCI(),
			MaskedPaths:       rootfs.MaskedPaths,
			ReadonlyPaths:     rootfs.ReadonlyPaths,
			RootfsPropagation: "private",
		},
	}, nil
}

// validate checks the Plan for what the spec relies on; the policy and the
// config checks ran before, this guards the backend's own assumptions.
func validate(p *sandbox.Plan, o Options) error {
	var errs []error
	if p.Agent.UID <= 0 || p.Agent.GID <= 0 {
		errs = append(errs, fmt.Errorf("agent account %q has uid %d gid %d: the agent never runs as root", p.Agent.Name, p.Agent.UID, p.Agent.GID))
	}
	if p.Caller.UID <= 0 {
		errs = append(errs, fmt.Errorf("caller %q has uid %d: refusing to map root's files into the sandbox", p.Caller.Name, p.Caller.UID))
	}
	if len(p.Args) == 0 {
		errs = append(errs, errors.New("no command to run"))
	}
	if !sandbox.Within(p.Project, p.Cwd) {
		errs = append(errs, fmt.Errorf("working directory %s is outside the project %s", p.Cwd, p.Project))
	}
	if o.Rootfs == "" || o.ProjectSource == "" || p.Init == "" || p.RuntimeDir == "" {
		errs = append(errs, errors.New("incomplete plan: rootfs, init, runtime dir and project source are required"))
	}
	return errors.Join(errs...)
}
