package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m3ta/pi-agent/merge"
)

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		base, p string
		want    bool
	}{
		{"/a/b", "/a/b", true},
		{"/a/b", "/a/b/c", true},
		{"/a/b", "/a/bc", false},
		{"/a/b", "/a", false},
		{"/a/b", "/a/b-other/x", false},
		{"/", "/anything", true},
		{"/home/alice/p", "/home/alice/p/../q", false}, // callers pass clean paths; a dirty one never matches by accident
	} {
		if got := Within(tc.base, tc.p); got != tc.want {
			t.Errorf("Within(%q, %q) = %v", tc.base, tc.p, got)
		}
	}
}

func TestExpandRoot(t *testing.T) {
	for in, want := range map[string]string{
		"~":            "/home/alice",
		"~/projects":   "/home/alice/projects",
		"~/a/b/":       "/home/alice/a/b",
		"/srv/code":    "/srv/code",
		"/srv/code///": "/srv/code",
	} {
		if got := ExpandRoot(in, "/home/alice"); got != want {
			t.Errorf("ExpandRoot(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProjectDir(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	deep := filepath.Join(repo, "src", "pkg")
	plain := filepath.Join(root, "plain", "x")
	for _, d := range []string{filepath.Join(repo, ".git"), deep, plain} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if got := projectDir(root, deep); got != repo {
		t.Errorf("in a work tree: got %s, want %s", got, repo)
	}
	if got := projectDir(root, plain); got != plain {
		t.Errorf("outside any work tree: got %s, want cwd %s", got, plain)
	}
	// A .git above the allowlisted root must not widen the project beyond it.
	if err := os.Mkdir(filepath.Join(root, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := projectDir(filepath.Join(root, "plain"), plain); got != plain {
		t.Errorf("walked above the root: got %s", got)
	}
}

func TestTerminalEnvPassesOnlyTerminalVariables(t *testing.T) {
	got := terminalEnv([]string{
		"TERM=xterm-256color", "COLORTERM=truecolor", "LANG=en_US.UTF-8", "LC_ALL=C",
		"LD_PRELOAD=/tmp/evil.so", "HOME=/root", "SSH_AUTH_SOCK=/tmp/agent", "PATH=/evil",
		"AWS_SECRET_ACCESS_KEY=x", "LC_EVIL-NAME=x", "TERM2=x",
		"LC_CTYPE=$(touch /tmp/pwned)", // values must be plain words
	})
	want := []string{"TERM=xterm-256color", "COLORTERM=truecolor", "LANG=en_US.UTF-8", "LC_ALL=C"}
	if !slices.Equal(got, want) {
		t.Errorf("terminalEnv = %q, want %q", got, want)
	}
}

func TestAgentEnvRunnerVariablesComeFirstAndWin(t *testing.T) {
	layered := []merge.Var{{Key: "ANTHROPIC_BASE_URL", Value: "http://127.0.0.1:1"}, {Key: "PI_MODEL", Value: "m"}, {Key: "LANG", Value: "de_DE.UTF-8"}}
	env := AgentEnv("/opt/bin:/usr/bin", "/home/pi-agent", "/home/pi-agent/.pi/agent", "pi-agent", []string{"TERM=dumb", "LANG=C", "HOME=/home/alice", "PATH=/evil"}, layered)
	want := []string{
		"HOME=/home/pi-agent", "USER=pi-agent", "LOGNAME=pi-agent", "PATH=/opt/bin:/usr/bin",
		"PI_CODING_AGENT_DIR=/home/pi-agent/.pi/agent", "TERM=dumb",
		"NODE_COMPILE_CACHE=/home/pi-agent/.pi/agent/.cache/node-compile-cache",
		"ANTHROPIC_BASE_URL=http://127.0.0.1:1", "PI_MODEL=m", "LANG=de_DE.UTF-8",
	}
	if !slices.Equal(env, want) {
		t.Errorf("AgentEnv =\n%q\nwant\n%q", env, want)
	}
}

func TestAuditLineCannotBeForged(t *testing.T) {
	p := &Plan{ID: "pi-1-x", Caller: Account{Name: "alice", UID: 1000}, Project: "/p/evil\nuser=root", Cwd: "/p/evil\nuser=root"}
	line := AuditLine(p, "oci", 0, nil, 1500*time.Millisecond)
	if strings.Contains(line, "\n") {
		t.Fatalf("audit line holds a newline: %q", line)
	}
	for _, w := range []string{"user=alice", "uid=1000", "backend=oci", "id=pi-1-x", "exit=0", "duration=1.5s"} {
		if !strings.Contains(line, w) {
			t.Errorf("audit line %q lacks %q", line, w)
		}
	}
	if l := AuditLine(p, "oci", -1, errors.New("boom\nx"), 0); !strings.Contains(l, `exit=error "boom\nx"`) {
		t.Errorf("error not quoted: %q", l)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:   "/a b",
		`/tab\011x`: "/tab\tx",
		`/back\134`: `/back\`,
		`/plain`:    "/plain",
		`/bad\09`:   `/bad\09`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewIDIsUniqueAndValid(t *testing.T) {
	a, b := NewID(1000), NewID(1000)
	if a == b || !strings.HasPrefix(a, "pi-1000-") || len(a) != len("pi-1000-")+16 {
		t.Errorf("ids %q %q", a, b)
	}
}
