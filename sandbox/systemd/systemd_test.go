package systemd

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/m3ta/pi-agent/sandbox"
)

func testPlan() *sandbox.Plan {
	return &sandbox.Plan{
		ID:         "pi-1000-0123456789abcdef",
		Caller:     sandbox.Account{Name: "alice", UID: 1000, GID: 1000},
		Agent:      sandbox.Account{Name: "pi-agent", UID: 990, GID: 980, Home: "/home/pi-agent"},
		Args:       []string{"/usr/bin/pi", "-p", "--property=User=root", "a b; $(id)"},
		Cwd:        "/home/alice/p/sub",
		Project:    "/home/alice/p",
		RuntimeDir: "/var/lib/pi-agent/users/alice/agent",
		AgentDir:   "/home/pi-agent/.pi/agent",
		Network:    "host",
		MemoryMax:  1 << 30,
		PidsMax:    100,
	}
}

var testOpts = Options{Unit: "pi-agent-pi-1000-0123456789abcdef.service", ProjectSource: "/run/pi-agent/units/x/project", EnvFile: "/run/pi-agent/units/x/env"}

func props(argv []string) map[string][]string {
	m := map[string][]string{}
	for _, a := range argv {
		if a == "--" {
			break
		}
		if p, ok := strings.CutPrefix(a, "--property="); ok {
			k, v, _ := strings.Cut(p, "=")
			m[k] = append(m[k], v)
		}
	}
	return m
}

func TestArgvHardening(t *testing.T) {
	argv, err := Argv(testPlan(), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--uid=990", "--gid=980", "--wait", "--collect", "--pipe", "--working-directory=/home/alice/p/sub", "--unit=" + testOpts.Unit} {
		if !slices.Contains(argv, want) {
			t.Errorf("argv lacks %s", want)
		}
	}
	p := props(argv)
	for k, v := range map[string]string{
		"ProtectSystem": "strict", "ProtectHome": "tmpfs", "PrivateTmp": "yes", "PrivateDevices": "yes", "NoNewPrivileges": "yes",
		"CapabilityBoundingSet": "", "AmbientCapabilities": "", "SystemCallErrorNumber": "EPERM", "SystemCallArchitectures": "native",
		"RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "RestrictRealtime": "yes",
		"ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
		"ProtectClock": "yes", "ProtectHostname": "yes", "ProtectProc": "invisible", "PrivateUsers": "yes", "PrivateIPC": "yes",
		"MemoryMax": "1073741824", "TasksMax": "100", "EnvironmentFile": testOpts.EnvFile,
	} {
		if len(p[k]) != 1 || p[k][0] != v {
			t.Errorf("%s = %q, want %q", k, p[k], v)
		}
	}
	for _, k := range []string{"MemoryDenyWriteExecute", "ProcSubset", "PrivateNetwork"} {
		if _, ok := p[k]; ok {
			t.Errorf("%s must not be set: node needs W+X pages and to see its CPUs; the network is shared by default", k)
		}
	}
	if !strings.Contains(p["SystemCallFilter"][0], "ptrace") || !strings.Contains(p["RestrictAddressFamilies"][0], "AF_NETLINK") {
		t.Errorf("filters: %v %v", p["SystemCallFilter"], p["RestrictAddressFamilies"])
	}
	wantBinds := []string{testOpts.ProjectSource + ":/home/alice/p:norbind", "/var/lib/pi-agent/users/alice/agent:/home/pi-agent/.pi/agent:norbind"}
	if !slices.Equal(p["BindPaths"], wantBinds) {
		t.Errorf("BindPaths %q, want %q", p["BindPaths"], wantBinds)
	}
	// The agent's arguments come after "--", each its own element: a
	// "--property=" among them stays an argument.
	i := slices.Index(argv, "--")
	if i < 0 || !slices.Equal(argv[i+1:], testPlan().Args) {
		t.Errorf("agent args %q", argv[i+1:])
	}
	for _, a := range argv[:i] {
		if strings.Contains(a, "User=root") || strings.Contains(a, "$(id)") {
			t.Errorf("caller input became a systemd-run option: %q", a)
		}
	}
}

func TestArgvTTYAndNetwork(t *testing.T) {
	p := testPlan()
	p.TTY, p.Network = true, "none"
	argv, err := Argv(p, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(argv, "--pty") || slices.Contains(argv, "--pipe") {
		t.Errorf("a terminal needs --pty: %q", argv)
	}
	if v := props(argv)["PrivateNetwork"]; len(v) != 1 || v[0] != "yes" {
		t.Errorf("network none: PrivateNetwork = %q", v)
	}
}

// Paths from the caller reach property values; those systemd would split
// or expand are refused.
func TestArgvRefusesInjectablePaths(t *testing.T) {
	for _, bad := range []string{
		"/home/alice/p:/etc:rbind",
		"/home/alice/p /etc",
		"/home/alice/%h",
		"/home/alice/p\nProtectSystem=no",
		"/home/alice/p\t",
	} {
		p := testPlan()
		p.Project, p.Cwd = bad, bad
		if _, err := Argv(p, testOpts); err == nil {
			t.Errorf("project %q accepted", bad)
		}
	}
	p := testPlan()
	p.Agent.UID = 0
	if _, err := Argv(p, testOpts); err == nil {
		t.Error("root agent accepted")
	}
}

func TestEnvFileEscapes(t *testing.T) {
	data, err := EnvFile([]string{"A=plain", `B=quo"te \ back $HOME ` + "`x`", "C="})
	if err != nil {
		t.Fatal(err)
	}
	want := "A=\"plain\"\nB=\"quo\\\"te \\\\ back \\$HOME \\`x\\`\"\nC=\"\"\n"
	if string(data) != want {
		t.Errorf("env file\n%s\nwant\n%s", data, want)
	}
	if _, err := EnvFile([]string{"K=multi\nline"}); err == nil {
		t.Error("a newline in a value was accepted")
	}
}

// systemd-run runs as root with the caller's TERM when there is a pty; a
// hostile TERM (a path, a control sequence, a huge value) must not reach it:
// only the value the plan's environment kept does.
func TestRunEnvTakesTERMFromThePlan(t *testing.T) {
	for _, term := range []string{"../../../../tmp/evil", "xterm\x1b]0;pwn\x07", strings.Repeat("x", 4096), "xterm-256color"} {
		p := &sandbox.Plan{TTY: true, Env: sandbox.AgentEnv("/usr/bin:/bin", "/home/pi-agent", "/home/pi-agent/.pi/agent", "pi-agent", []string{"TERM=" + term}, nil)}
		env := runEnv(p)
		if term == "xterm-256color" {
			if !slices.Contains(env, "TERM=xterm-256color") {
				t.Errorf("a plain TERM is lost: %q", env)
			}
			continue
		}
		for _, kv := range env {
			if strings.HasPrefix(kv, "TERM=") {
				t.Errorf("TERM %q reached systemd-run as %q", term, kv)
			}
		}
	}
	p := &sandbox.Plan{TTY: false, Env: []string{"TERM=xterm"}}
	if env := runEnv(p); len(env) != 1 || !strings.HasPrefix(env[0], "PATH=") {
		t.Errorf("without a pty systemd-run gets only PATH: %q", env)
	}
}

// safePath and validUnit are plain code; their patterns are the
// specification, checked here on the edges.
func TestPathAndUnitChecksMatchTheirPatterns(t *testing.T) {
	inputs := []string{"", "/", "a", "/a b", "/a:b", "/a%b", "/home/alice/p", "/x/../y", "/é", "/a\n", "/a=b,c@d+e",
		".service", "a.service", "pi-agent-pi-1-ab.service", "a.service.service", "a b.service", "a.servic", "/a.service", "a.service\n"}
	for _, c := range []struct {
		name string
		re   string
		fn   func(string) bool
	}{
		{"safePath", `^/[A-Za-z0-9._@+,=/-]*$`, safePath},
		{"validUnit", `^[A-Za-z0-9_.-]+\.service$`, validUnit},
	} {
		re := regexp.MustCompile(c.re)
		for _, in := range inputs {
			if got, want := c.fn(in), re.MatchString(in); got != want {
				t.Errorf("%s(%q) = %v, the pattern %s says %v", c.name, in, got, c.re, want)
			}
		}
	}
}
