package rootfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestProbeRecreatesLinksIntoOtherReadOnlyPaths(t *testing.T) {
	host := t.TempDir()
	usr := filepath.Join(host, "usr")
	if err := os.MkdirAll(filepath.Join(usr, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	// merged-usr: bin -> usr/bin; a link whose target is outside every
	// read-only path is bound (followed) instead.
	if err := os.Symlink("usr/bin", filepath.Join(host, "bin")); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(host, "run", "resolv.conf")
	if err := os.MkdirAll(filepath.Dir(outside), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outside, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(host, "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	got, err := Probe([]string{usr, filepath.Join(host, "bin"), filepath.Join(host, "resolv.conf"), filepath.Join(host, "missing")}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []HostPath{
		{Path: usr, Source: usr},
		{Path: filepath.Join(host, "bin"), Link: filepath.Join(usr, "bin")},
		{Path: filepath.Join(host, "resolv.conf"), Source: outside},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Probe =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := Probe([]string{filepath.Join(host, "missing")}, false); err == nil {
		t.Error("an explicit missing path was accepted")
	}
}

func testLayout() *Layout {
	return &Layout{
		Hostname:      "pi-agent",
		ReadOnly:      []HostPath{{Path: "/usr", Source: "/usr"}, {Path: "/bin", Link: "/usr/bin"}, {Path: "/etc/ssl", Source: "/etc/ssl"}},
		Home:          "/home/pi-agent",
		AgentDir:      "/home/pi-agent/.pi/agent",
		RuntimeDir:    "/var/lib/pi-agent/users/alice/agent",
		ProjectPath:   "/tmp/work/proj",
		ProjectSource: "/run/pi-agent/runs/x/project",
		Agent:         Owner{UID: 990, GID: 980},
		TmpSize:       1 << 30,
		Init:          "/usr/libexec/pi-agent/pi-agent-runner",
		AgentUser:     "pi-agent",
		AgentGroup:    "pi-agent",
	}
}

func TestMountsOrderAndOptions(t *testing.T) {
	ms, err := testLayout().Mounts()
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	byDest := map[string]specs.Mount{}
	for i, m := range ms {
		if _, dup := idx[m.Destination]; dup {
			t.Errorf("duplicate mount at %s", m.Destination)
		}
		idx[m.Destination] = i
		byDest[m.Destination] = m
	}
	// Parents before children: the project below /tmp lands on the tmpfs,
	// the runtime dir on the home tmpfs.
	for _, pair := range [][2]string{{"/tmp", "/tmp/work/proj"}, {"/home/pi-agent", "/home/pi-agent/.pi/agent"}, {"/dev", "/dev/pts"}} {
		if idx[pair[0]] > idx[pair[1]] {
			t.Errorf("%s is mounted after %s", pair[0], pair[1])
		}
	}
	if _, ok := byDest["/bin"]; ok {
		t.Error("/bin is a link inside, it must not be mounted")
	}
	mustHave := map[string][]string{
		"/usr":                     {"ro", "nosuid", "nodev"},
		"/etc/ssl":                 {"ro"},
		"/sys":                     {"ro"},
		"/tmp/work/proj":           {"rw", "nosuid", "nodev"},
		"/home/pi-agent/.pi/agent": {"rw", "nosuid", "nodev"},
		"/home/pi-agent":           {"uid=990", "gid=980", "mode=700"},
		"/tmp":                     {"size=1073741824", "nosuid", "nodev"},
		InitPath:                   {"ro", "nosuid"},
	}
	for dest, opts := range mustHave {
		m, ok := byDest[dest]
		if !ok {
			t.Errorf("no mount at %s", dest)
			continue
		}
		for _, o := range opts {
			if !slices.Contains(m.Options, o) {
				t.Errorf("mount %s lacks %q: %v", dest, o, m.Options)
			}
		}
	}
	if s := byDest["/tmp/work/proj"].Source; s != "/run/pi-agent/runs/x/project" {
		t.Errorf("project source = %s", s)
	}
	if slices.Contains(byDest["/tmp/work/proj"].Options, "rbind") {
		t.Error("the project must not be bound recursively")
	}
}

func TestCheckProjectPathRefusesSandboxPaths(t *testing.T) {
	for _, p := range []string{"/", "/proc", "/proc/1", "/dev", "/sys/fs", "/etc", "/etc/ssl", "/home", "/home/pi-agent", "/home/pi-agent/x", "/.pi-agent", "relative", "/a/../b"} {
		if err := CheckProjectPath(p, "/home/pi-agent"); err == nil {
			t.Errorf("project path %q accepted", p)
		}
	}
	for _, p := range []string{"/home/alice/p", "/srv/code", "/tmp/x", "/usr/src/linux"} {
		if err := CheckProjectPath(p, "/home/pi-agent"); err != nil {
			t.Errorf("project path %q refused: %v", p, err)
		}
	}
}

func TestFilesAndPopulate(t *testing.T) {
	l := testLayout()
	files := l.Files()
	dir := t.TempDir()
	if err := Populate(dir, files); err != nil {
		t.Fatal(err)
	}
	passwd, err := os.ReadFile(filepath.Join(dir, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(passwd), "pi-agent:x:990:980:pi coding agent:/home/pi-agent:/bin/sh\n") {
		t.Errorf("passwd:\n%s", passwd)
	}
	// Only the sandbox's accounts: no host user leaks into the sandbox.
	if n := strings.Count(string(passwd), "\n"); n != 3 {
		t.Errorf("passwd has %d entries", n)
	}
	group, _ := os.ReadFile(filepath.Join(dir, "etc/group"))
	if !strings.Contains(string(group), "pi-agent:x:980:\n") {
		t.Errorf("group:\n%s", group)
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin")); err != nil || target != "/usr/bin" {
		t.Errorf("bin link = %q, %v", target, err)
	}
	if err := Populate(t.TempDir(), []File{{Path: "../escape", Data: "x"}}); err == nil {
		t.Error("an entry outside the rootfs was written")
	}
}
