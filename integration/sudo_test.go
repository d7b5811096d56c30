//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// withSudoRule installs the sudoers drop-in exactly as the product documents
// it, NOPASSWD for the runner's absolute path only, checked with visudo.
func withSudoRule(t *testing.T, f *fixture) {
	t.Helper()
	for _, tool := range []string{"sudo", "visudo", "runuser"} {
		requireTool(t, tool, "the sudo tests need real sudo")
	}
	rule := aliceName + " ALL=(root) NOPASSWD: " + f.runner + "\n"
	p := "/etc/sudoers.d/pi-agent-it"
	if err := os.WriteFile(p, []byte(rule), 0o440); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p) })
	if out, err := exec.Command("visudo", "-c", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("visudo rejects the documented rule: %v\n%s", err, out)
	}
}

// asUser runs argv as an unprivileged user from dir with a clean login-like
// environment plus extra.
func (f *fixture) asUser(t *testing.T, user, dir string, extra []string, argv ...string) result {
	t.Helper()
	a, err := lookupFixtureUser(f, user)
	if err != nil {
		t.Fatal(err)
	}
	env := append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + a, "USER=" + user, "LOGNAME=" + user, "TERM=dumb"}, extra...)
	args := append([]string{"-u", user, "--", "env", "-i"}, env...)
	args = append(args, "sh", "-c", `cd "$0" && exec "$@"`, dir)
	args = append(args, argv...)
	return f.exec(t, "/", "", "runuser", args...)
}

func lookupFixtureUser(f *fixture, user string) (string, error) {
	switch user {
	case aliceName:
		return f.alice.Home, nil
	case bobName:
		return f.bob.Home, nil
	}
	return "/", nil
}

// 8. Through the real wrapper and real sudo, as an unprivileged user.
func TestWrapperThroughSudo(t *testing.T) {
	f := setup(t)
	withSudoRule(t, f)
	r := f.asUser(t, aliceName, f.project, nil, f.wrapper, "--", "id", "-u")
	if r.code != 0 || strings.TrimSpace(r.stdout) != strconv.Itoa(f.agent.UID) {
		t.Fatalf("pi -- id -u: want pi-agent's uid %d: %s", f.agent.UID, r)
	}
	// --backend is the wrapper's; everything else reaches the agent as is.
	r = f.asUser(t, aliceName, f.project, nil, f.wrapper, "--backend=oci", "sh", "-c", `printf '[%s]' "$@"`, "x", "a b", "--config", "$(id)", "")
	if r.code != 0 || r.stdout != "[a b][--config][$(id)][]" {
		t.Errorf("arguments were not passed untouched: %s", r)
	}
	// A file written through the whole chain is the caller's.
	r = f.asUser(t, aliceName, f.project, nil, f.wrapper, "sh", "-c", "echo via-sudo > via-sudo.txt")
	t.Cleanup(func() { os.Remove(filepath.Join(f.project, "via-sudo.txt")) })
	if st, err := os.Stat(filepath.Join(f.project, "via-sudo.txt")); r.code != 0 || err != nil || st.Sys() == nil {
		t.Fatalf("write through sudo: %s %v", r, err)
	} else if uid := statUID(st); uid != f.alice.UID {
		t.Errorf("file written through sudo is owned by %d, want %d", uid, f.alice.UID)
	}
}

// Hostile input through sudo: trust flags, identity variables, loader
// variables, internal commands.
func TestSudoCallerCannotSteer(t *testing.T) {
	f := setup(t)
	withSudoRule(t, f)
	evil := filepath.Join(f.alice.Home, "evil.json")
	if err := writeOwned(evil, `{"agent": {"command": ["/bin/sh"]}, "hostUsers": {"pit-alice": {"projectRoots": ["/"]}}}`, 0o644, f.alice); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(evil) })
	for _, tc := range []struct {
		name string
		argv []string
		want string
	}{
		{"own config", []string{"sudo", "-n", f.runner, "run", "--config", evil, "--", "id"}, "refused through sudo"},
		{"other user", []string{"sudo", "-n", f.runner, "run", "--as-user", bobName, "--", "id"}, "refused through sudo"},
		{"bundle written anywhere as root", []string{"sudo", "-n", f.runner, "run", "--print-spec", "/etc/pi-agent-pwned", "--", "true"}, "refused through sudo"},
		{"config of the caller's choosing", []string{"sudo", "-n", f.runner, "config", "--config", evil}, "refused through sudo"},
		{"doctor with the caller's config", []string{"sudo", "-n", f.runner, "doctor", "--config", evil}, "refused through sudo"},
		{"config for another user", []string{"sudo", "-n", f.runner, "config", "--as-user", bobName}, "refused through sudo"},
		// The helper modes live in pi-agent-helper, which sudo does not run.
		{"reaper through the runner", []string{"sudo", "-n", f.runner, "_reap", "--", "id", "-u"}, "unknown command"},
		{"caller helper through the runner", []string{"sudo", "-n", f.runner, "_caller"}, "unknown command"},
		{"libcontainer init", []string{"sudo", "-n", f.runner, "init"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.asUser(t, aliceName, f.project, nil, tc.argv...)
			if r.code == 0 || strings.Contains(r.stdout, "uid=0") || r.stdout == "0\n" || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want refusal mentioning %q: %s", tc.want, r)
			}
		})
	}
	if _, err := os.Stat("/etc/pi-agent-pwned"); err == nil {
		os.RemoveAll("/etc/pi-agent-pwned")
		t.Error("a caller had root write a bundle into /etc")
	}
	// Variables a caller might set to confuse the runner or the loader.
	r := f.asUser(t, aliceName, f.project, []string{"SUDO_UID=0", "SUDO_USER=root", "LD_PRELOAD=/nonexistent/evil.so", "LD_LIBRARY_PATH=/tmp", "PI_CODING_AGENT_DIR=/etc", "GODEBUG=x"},
		f.wrapper, "sh", "-c", "id -u; env")
	if r.code != 0 {
		t.Fatalf("run with hostile environment: %s", r)
	}
	if !strings.HasPrefix(r.stdout, strconv.Itoa(f.agent.UID)+"\n") {
		t.Errorf("identity changed by the environment: %s", r.stdout)
	}
	for _, bad := range []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "GODEBUG", "SUDO_", "PI_CODING_AGENT_DIR=/etc"} {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("%s reached the agent:\n%s", bad, r.stdout)
		}
	}
}

// An unlisted user has no sudo rule: the wrapper says what to configure.
func TestWrapperExplainsMissingSudoRule(t *testing.T) {
	f := setup(t)
	withSudoRule(t, f)
	r := f.asUser(t, bobName, f.bob.Home, nil, f.wrapper, "--", "id", "-u")
	if r.code == 0 || strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("bob ran the agent: %s", r)
	}
	if !strings.Contains(r.stderr, bobName+" ALL=(root) NOPASSWD: "+f.runner) {
		t.Errorf("no hint for the administrator: %s", r.stderr)
	}
}

// A runner killed with SIGKILL while the agent has the terminal in raw mode
// cannot restore it; the wrapper does.
func TestWrapperRestoresTheTerminalAfterSIGKILL(t *testing.T) {
	f := setup(t)
	withSudoRule(t, f)
	requireTmux(t)
	m := tmux{t: t, socket: "pi-agent-it-killed"}
	line := "runuser -u " + aliceName + " -- env -i PATH=/usr/bin:/bin HOME=" + f.alice.Home + " TERM=xterm sh -c 'cd " + f.project + " && " + f.wrapper + " -- sleep 300; echo WRAPPER_EXIT=$?'" +
		"; echo MODES: $(stty -a | tr -s ' ;' '\\n' | grep -xE -- '-?(icanon|echo|isig)'); sleep 60"
	m.cmd("new-session", "-d", "-s", "s", "-x", "100", "-y", "30", line)
	t.Cleanup(func() { exec.Command("tmux", "-L", m.socket, "kill-server").Run() })
	waitFor(t, "the agent to start", func() bool { return agentRunning(f, "sleep") })
	if out, err := exec.Command("pkill", "-KILL", "-f", f.runner+" run").CombinedOutput(); err != nil {
		t.Fatalf("pkill: %v %s", err, out)
	}
	s := m.waitFor("MODES:")
	_, modes, _ := strings.Cut(s, "MODES:")
	modes, _, _ = strings.Cut(modes, "\n")
	for _, want := range []string{"icanon", "isig", "echo"} {
		if !strings.Contains(" "+modes+" ", " "+want+" ") {
			t.Errorf("terminal left raw after the runner was killed: %q lacks %s", modes, want)
		}
	}
	// The orphaned container is the next run's to clean up.
	f.exec(t, "/", "", f.runner, "gc")
}

// doctor: all green on a correct setup, with every canary of --prove
// blocked; a missing sudo rule and an untrusted config are named with a
// remedy and fail it.
func TestDoctor(t *testing.T) {
	f := setup(t)
	withSudoRule(t, f)
	r := f.exec(t, f.project, "", f.runner, "doctor", "--config", f.config, "--as-user", aliceName, "--prove")
	if r.code != 0 || !strings.Contains(r.stdout, "all checks passed") {
		t.Fatalf("doctor on a correct setup: %s", r)
	}
	if n := strings.Count(r.stdout, "canary: "); n < 8 || strings.Count(r.stdout, ": blocked") != n {
		t.Errorf("canaries: %d, not all blocked:\n%s", n, r.stdout)
	}
	for _, want := range []string{"ok    sudo rule for " + aliceName, "ok    idmapped mounts on " + f.project, "ok    agent user pi-agent"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, r.stdout)
		}
	}
	// A rule that grants everything instead of the scoped one.
	if err := os.WriteFile("/etc/sudoers.d/pi-agent-it", []byte(aliceName+" ALL=(ALL) ALL\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	r = f.exec(t, f.project, "", f.runner, "doctor", "--config", f.config)
	if r.code != 1 || !strings.Contains(r.stdout, "only through a broad rule") {
		t.Errorf("doctor with an ALL rule instead of the scoped one: %s", r)
	}
	os.Remove("/etc/sudoers.d/pi-agent-it")
	r = f.exec(t, f.project, "", f.runner, "doctor", "--config", f.config)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  sudo rule for "+aliceName) || !strings.Contains(r.stdout, "NOPASSWD: "+f.runner) {
		t.Errorf("doctor without the sudo rule: %s", r)
	}
	os.Chmod(f.config, 0o666)
	defer os.Chmod(f.config, 0o644)
	r = f.exec(t, f.project, "", f.runner, "doctor", "--config", f.config)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  config") || !strings.Contains(r.stdout, "writable by group or others") {
		t.Errorf("doctor with a world-writable config: %s", r)
	}
}

// asUserPlain runs a command as a user from dir, without the wrapper.
func (f *fixture) asUserPlain(t *testing.T, user, dir string, argv ...string) result {
	t.Helper()
	return f.asUser(t, user, dir, nil, argv...)
}

// pi-agent-helper refuses every mode where it does not belong: as root (the
// caller-side modes), or outside a sandbox's PID 1 (the reaper).
func TestHelperRefusesMisuse(t *testing.T) {
	f := setup(t)
	helperBin := filepath.Join(filepath.Dir(f.runner), "pi-agent-helper")
	for _, tc := range []struct {
		name string
		argv []string
		want string
	}{
		{"reaper outside a sandbox", []string{"_reap", "--", "id", "-u"}, "runs only as PID 1"},
		{"caller helper as root", []string{"_caller"}, "never runs as root"},
		{"the old resolve mode", []string{"_resolve"}, "unknown mode"},
		{"sync reader as root", []string{"_sync-read"}, "never runs as root"},
		{"unknown mode", []string{"run"}, "unknown mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.exec(t, "/", "", helperBin, tc.argv...)
			if r.code == 0 || r.stdout == "0\n" || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want a refusal mentioning %q: %s", tc.want, r)
			}
		})
	}
	// As a user, the reaper still refuses outside a sandbox.
	r := f.asUser(t, aliceName, f.project, nil, helperBin, "_reap", "--", "id", "-u")
	if r.code == 0 || !strings.Contains(r.stderr, "runs only as PID 1") {
		t.Errorf("reaper as a user: %s", r)
	}
}
