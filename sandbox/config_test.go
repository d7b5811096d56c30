package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const minimal = `{"agent": {"command": ["/usr/bin/env"]}, "hostUsers": {"alice": {"projectRoots": ["~/projects"]}}}`

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir != DefaultStateDir || cfg.User != "pi-agent" || cfg.Group != "pi-agent" || cfg.Backend != "oci" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.Sandbox.Network != "host" || cfg.Sandbox.ProjectScope != "root" || cfg.Sandbox.PidsMax != DefaultPidsMax {
		t.Errorf("sandbox defaults not applied: %+v", cfg.Sandbox)
	}
	if got := cfg.HostUsers["alice"].ConfigDir(); got != ".pi/agent" {
		t.Errorf("configPath default = %q", got)
	}
	paths, skip := cfg.Sandbox.ReadOnly()
	if !skip || len(paths) != len(DefaultReadOnlyPaths) {
		t.Errorf("read-only defaults: %v %v", paths, skip)
	}
}

func TestParseConfigNixNulls(t *testing.T) {
	// builtins.toJSON renders unset nullable options as null.
	cfg, err := ParseConfig([]byte(`{"stateDir": null, "agent": {"command": ["/bin/pi"], "path": null},
		"hostUsers": {"alice": {"projectRoots": ["/srv/p"], "configPath": null}},
		"settings": null, "environment": null, "environmentFiles": null,
		"sandbox": {"readOnlyPaths": null, "network": null}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir != DefaultStateDir || cfg.Sandbox.Network != "host" {
		t.Errorf("nulls did not fall back to defaults: %+v", cfg)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       []string
	}{
		{"unknown top-level field", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}, "stateDri": "/x"}`, []string{`unknown field "stateDri"`, "README"}},
		{"unknown nested field", `{"agent": {"command": ["/x"], "cmd": 1}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}}`, []string{`unknown field "cmd"`}},
		{"syntax error position", "{\n  \"agent\": {\"command\": [\"/x\"]},\n  oops\n}", []string{"line 3"}},
		{"wrong type", `{"agent": {"command": "/x"}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}}`, []string{"agent.command", "expected"}},
		{"trailing data", minimal + `{}`, []string{"after the top-level"}},
		{"relative root", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["projects"]}}}`, []string{"hostUsers.a.projectRoots[0]", "relative"}},
		{"other user's home", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["~bob/p"]}}}`, []string{"only \"~\""}},
		{"dotdot root", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["~/p/../../etc"]}}}`, []string{"not a clean path"}},
		{"root of fs", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/"]}}}`, []string{"whole filesystem"}},
		{"empty roots", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": []}}}`, []string{"projectRoots: is empty"}},
		{"no users", `{"agent": {"command": ["/x"]}}`, []string{"hostUsers: no host user"}},
		{"root user", `{"agent": {"command": ["/x"]}, "hostUsers": {"root": {"projectRoots": ["/p/q"]}}}`, []string{"hostUsers.root"}},
		{"agent user as host user", `{"agent": {"command": ["/x"]}, "hostUsers": {"pi-agent": {"projectRoots": ["/p/q"]}}}`, []string{"hostUsers.pi-agent"}},
		{"relative command", `{"agent": {"command": ["pi"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}}`, []string{"agent.command[0]"}},
		{"no command", `{"hostUsers": {"a": {"projectRoots": ["/p/q"]}}}`, []string{"agent.command: is empty"}},
		{"bad backend", `{"backend": "docker", "agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}}`, []string{"backend", "docker"}},
		{"reserved env", `{"environment": {"PATH": "/evil"}, "agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}}`, []string{"environment.PATH"}},
		{"bad env name", `{"environment": {"A-B": "x"}, "agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}}`, []string{`"A-B"`}},
		{"relative env file", `{"environmentFiles": ["-secrets.env"], "agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}}`, []string{"environmentFiles[0]"}},
		{"configPath escapes", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"], "configPath": "../bob/.pi"}}}`, []string{"configPath"}},
		{"missing ro path", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}, "sandbox": {"readOnlyPaths": ["/does/not/exist"]}}`, []string{"sandbox.readOnlyPaths[0]", "does not exist"}},
		{"bad network", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}, "sandbox": {"network": "bridge"}}`, []string{"sandbox.network"}},
		{"bad memory", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}, "sandbox": {"memoryMax": "lots"}}`, []string{"sandbox.memoryMax"}},
		{"bad scope", `{"agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}, "sandbox": {"projectScope": "repo"}}`, []string{"sandbox.projectScope"}},
		{"relative stateDir", `{"stateDir": "var/lib/pi", "agent": {"command": ["/x"]}, "hostUsers": {"a": {"projectRoots": ["/p/q"]}}}`, []string{"stateDir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	_, err := ParseConfig([]byte(`{"backend": "x", "agent": {"command": ["rel"]}, "hostUsers": {"a": {"projectRoots": ["rel"]}}}`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"backend", "agent.command[0]", "projectRoots[0]"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "512M": 512 << 20, "8G": 8 << 30, "2k": 2048, "1T": 1 << 40, "infinity": 0} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1G", "0", "1.5G", "1GB", "99999999999T"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func writeConfig(t *testing.T, dir, data string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigTrust(t *testing.T) {
	me := os.Getuid()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	good := writeConfig(t, dir, minimal, 0o644)
	if _, err := LoadConfig(good, me); err != nil {
		t.Fatalf("trusted config refused: %v", err)
	}

	t.Run("world-writable file", func(t *testing.T) {
		p := writeConfig(t, t.TempDir(), minimal, 0o666)
		if _, err := LoadConfig(p, me); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("group-writable parent", func(t *testing.T) {
		d := t.TempDir()
		p := writeConfig(t, d, minimal, 0o644)
		if err := os.Chmod(d, 0o775); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(p, me); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not owned by root or the trusted uid", func(t *testing.T) {
		if _, err := LoadConfig(good, me+12345); err == nil || !strings.Contains(err.Error(), "owned by uid") {
			if me != 0 { // as root the file is owned by root, which is trusted
				t.Fatalf("got %v", err)
			}
		}
	})
	t.Run("symlink through a writable dir", func(t *testing.T) {
		d := t.TempDir()
		evil := filepath.Join(d, "evil")
		if err := os.Mkdir(evil, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(evil, 0o777); err != nil {
			t.Fatal(err)
		}
		target := writeConfig(t, evil, minimal, 0o644)
		link := filepath.Join(dir, "link.json")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(link, me); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("sticky world-writable parent is fine", func(t *testing.T) {
		d := t.TempDir()
		if err := os.Chmod(d, os.ModeSticky|0o777); err != nil {
			t.Fatal(err)
		}
		sub := filepath.Join(d, "etc")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		p := writeConfig(t, sub, minimal, 0o644)
		if _, err := LoadConfig(p, me); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
	t.Run("directory instead of file", func(t *testing.T) {
		if _, err := LoadConfig(dir, me); err == nil {
			t.Fatal("accepted a directory")
		}
	})
	t.Run("oversized", func(t *testing.T) {
		p := writeConfig(t, dir, `{"x":"`+strings.Repeat("a", maxConfigSize)+`"}`, 0o644)
		if _, err := LoadConfig(p, me); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("got %v", err)
		}
	})
}
