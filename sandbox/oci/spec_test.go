package oci

import (
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/m3ta/pi-agent/rootfs"
	"github.com/m3ta/pi-agent/sandbox"
)

func testPlan() *sandbox.Plan {
	return &sandbox.Plan{
		ID:         "pi-1000-0123456789abcdef",
		Caller:     sandbox.Account{Name: "alice", UID: 1000, GID: 1000, Home: "/home/alice"},
		Agent:      sandbox.Account{Name: "pi-agent", UID: 990, GID: 980, Home: "/home/pi-agent"},
		AgentGroup: "pi-agent",
		Args:       []string{"/usr/bin/pi", "-p", "hello; rm -rf /"},
		Env:        []string{"HOME=/home/pi-agent", "PATH=/usr/bin"},
		Cwd:        "/home/alice/p/sub",
		Project:    "/home/alice/p",
		RuntimeDir: "/var/lib/pi-agent/users/alice/agent",
		AgentDir:   "/home/pi-agent/.pi/agent",
		ReadOnly:   []rootfs.HostPath{{Path: "/usr", Source: "/usr"}},
		Network:    "host",
		MemoryMax:  1 << 30,
		PidsMax:    100,
		TmpSize:    1 << 20,
		Init:       "/usr/libexec/pi-agent/pi-agent-runner",
		Hostname:   "pi-agent",
	}
}

var testOpts = Options{Rootfs: "/run/pi-agent/runs/x/rootfs", ProjectSource: "/run/pi-agent/runs/x/project", CgroupsPath: "/pi-agent/x"}

func TestSpecIsolation(t *testing.T) {
	s, err := Spec(testPlan(), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Process
	if p.User.UID != 990 || p.User.GID != 980 || len(p.User.AdditionalGids) != 0 {
		t.Errorf("user %+v: must be the agent's ids and no supplementary groups", p.User)
	}
	c := p.Capabilities
	if c == nil || len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
		t.Errorf("capabilities %+v: every set must be empty", c)
	}
	if !p.NoNewPrivileges || !s.Root.Readonly {
		t.Error("no_new_privs and a read-only root are required")
	}
	// The caller's argv is passed as argv elements, behind the reaper.
	want := []string{rootfs.InitPath, ReapArg, "--", "/usr/bin/pi", "-p", "hello; rm -rf /"}
	if !slices.Equal(p.Args, want) {
		t.Errorf("args %q, want %q", p.Args, want)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	for _, w := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace} {
		if !slices.Contains(ns, w) {
			t.Errorf("namespace %s missing", w)
		}
	}
	if slices.Contains(ns, specs.NetworkNamespace) {
		t.Error("network is shared by default (the agent calls an LLM API)")
	}
	if slices.Contains(ns, specs.UserNamespace) {
		t.Error("no user namespace: the idmapped project mount does the mapping")
	}
	if s.Linux.Seccomp == nil || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Error("no seccomp profile")
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Error("runc's masked and read-only paths are missing")
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 1<<30 || *r.Pids.Limit != 100 {
		t.Errorf("limits %v %v", *r.Memory.Limit, *r.Pids.Limit)
	}
}

func TestSpecNetworkNone(t *testing.T) {
	p := testPlan()
	p.Network = "none"
	s, err := Spec(p, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace && n.Path == "" }) {
		t.Error("network none needs a new network namespace")
	}
}

func TestSpecRefusesUnsafePlans(t *testing.T) {
	for name, mutate := range map[string]func(*sandbox.Plan){
		"agent is root":       func(p *sandbox.Plan) { p.Agent.UID = 0 },
		"agent group is root": func(p *sandbox.Plan) { p.Agent.GID = 0 },
		"caller is root":      func(p *sandbox.Plan) { p.Caller.UID = 0 },
		"cwd outside project": func(p *sandbox.Plan) { p.Cwd = "/home/alice/other" },
		"cwd sibling prefix":  func(p *sandbox.Plan) { p.Cwd = "/home/alice/p2" },
		"no command":          func(p *sandbox.Plan) { p.Args = nil },
		"project over /etc":   func(p *sandbox.Plan) { p.Project, p.Cwd = "/etc", "/etc" },
	} {
		p := testPlan()
		mutate(p)
		if _, err := Spec(p, testOpts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The spec must survive libcontainer's own conversion, which runs on every
// start; this catches option typos without root.
func TestSpecConvertsForLibcontainer(t *testing.T) {
	s, err := Spec(testPlan(), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: "x", Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Seccomp == nil || !cfg.NoNewPrivileges || !cfg.Readonlyfs {
		t.Errorf("converted config lost isolation: seccomp=%v nnp=%v ro=%v", cfg.Seccomp != nil, cfg.NoNewPrivileges, cfg.Readonlyfs)
	}
	if cfg.Namespaces.Contains(configs.NEWUSER) || !cfg.Namespaces.Contains(configs.NEWPID) {
		t.Errorf("namespaces %v", cfg.Namespaces)
	}
	for _, m := range cfg.Mounts {
		if m.Destination == "/home/alice/p" && m.Flags&unix.MS_BIND == 0 {
			t.Errorf("project mount is not a bind: %+v", m)
		}
		if strings.HasPrefix(m.Destination, "/home/alice") && m.Destination != "/home/alice/p" {
			t.Errorf("unexpected mount of the caller's home: %s", m.Destination)
		}
	}
}
