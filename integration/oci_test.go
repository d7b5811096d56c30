//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// 1. Identity: the agent runs as pi-agent, no capabilities, no_new_privs,
// seccomp filtering, and sees only the sandbox's processes.
func TestAgentIdentity(t *testing.T) {
	f := setup(t)
	r := f.run(t, aliceName, f.project, "", "sh", "-c", `id -u; id -g; id -G; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; ps -e -o pid=,user=,comm=`)
	if r.code != 0 {
		t.Fatalf("run failed: %s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	agentUID, agentGID := strconv.Itoa(f.agent.UID), strconv.Itoa(f.agent.GID)
	if lines[0] != agentUID || lines[1] != agentGID || lines[2] != agentGID {
		t.Errorf("uid/gid/groups = %q, want %s/%s/%s (no supplementary groups)", lines[:3], agentUID, agentGID, agentGID)
	}
	for _, want := range []string{"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	// ps: PID 1 is the reaper, then sh, ps; nothing of the host.
	var procs []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 3 {
			if _, err := strconv.Atoi(f[0]); err == nil {
				procs = append(procs, l)
				if f[1] != "pi-agent" {
					t.Errorf("process of another user visible: %q", l)
				}
			}
		}
	}
	if len(procs) == 0 || len(procs) > 4 || !strings.HasPrefix(strings.TrimSpace(procs[0]), "1 ") {
		t.Errorf("process list is not the sandbox's own:\n%s", strings.Join(procs, "\n"))
	}
}

// The environment is exactly the runner's variables, the caller's terminal
// variables and the managed environment: nothing else of the caller's.
func TestAgentEnvironment(t *testing.T) {
	f := setup(t)
	cmd := f.runnerCmd("env")
	cmd.Env = []string{"TERM=xterm-256color", "LANG=C.UTF-8", "SSH_AUTH_SOCK=/tmp/ssh-x/agent.1", "AWS_SECRET_ACCESS_KEY=" + secret, "LD_PRELOAD=/tmp/evil.so", "HOME=/root", "PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		env[k] = v
	}
	want := map[string]string{
		"HOME": "/home/pi-agent", "USER": "pi-agent", "LOGNAME": "pi-agent", "TERM": "xterm-256color", "LANG": "C.UTF-8",
		"PI_CODING_AGENT_DIR": "/home/pi-agent/.pi/agent", "PI_AGENT_IT": "managed",
		"NODE_COMPILE_CACHE": "/home/pi-agent/.pi/agent/.cache/node-compile-cache",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"SSH_AUTH_SOCK", "AWS_SECRET_ACCESS_KEY", "LD_PRELOAD"} {
		if _, ok := env[k]; ok {
			t.Errorf("caller's %s reached the agent", k)
		}
	}
	if len(env) != len(want)+1 { // + PATH
		t.Errorf("unexpected variables: %v", env)
	}
}

// 2. What the agent creates in the project is owned on disk by the caller.
func TestProjectWritesOwnedByCaller(t *testing.T) {
	f := setup(t)
	r := f.run(t, aliceName, f.project, "", "sh", "-c", "mkdir -p made/by && echo hi > made/by/agent.txt && stat -c '%u:%g' made/by/agent.txt README")
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join(f.project, "made")) })
	// Inside, the caller's files are the agent's own.
	inside := fmt.Sprintf("%d:%d", f.agent.UID, f.agent.GID)
	if got := strings.Fields(r.stdout); len(got) != 2 || got[0] != inside || got[1] != inside {
		t.Errorf("inside, ownership is %q, want %s for both", got, inside)
	}
	for _, p := range []string{"made", "made/by", "made/by/agent.txt"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(f.project, p), &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Uid) != f.alice.UID || int(st.Gid) != f.alice.GID {
			t.Errorf("%s is owned by %d:%d on disk, want the caller's %d:%d", p, st.Uid, st.Gid, f.alice.UID, f.alice.GID)
		}
	}
}

// Files in the project owned by someone else show as nobody and stay
// read-only to the agent, whatever their mode.
func TestForeignFilesInProjectStayReadOnly(t *testing.T) {
	f := setup(t)
	p := filepath.Join(f.project, "rootfile")
	if err := os.WriteFile(p, []byte("root's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p) })
	probe := f.probeInProject(t)
	r := f.run(t, aliceName, f.project, "", "sh", "-c", "stat -c %u rootfile; echo x >> rootfile && echo WROTE; "+probe+" chown-root README")
	if strings.Contains(r.stdout, "WROTE") {
		t.Error("the agent wrote to a root-owned file in the project")
	}
	if !strings.HasPrefix(r.stdout, "65534\n") {
		t.Errorf("root-owned file should show as 65534 inside: %s", r)
	}
	// Root is not mapped in the project's idmap: the kernel refuses with
	// EOVERFLOW before any permission check (EPERM would do as well).
	if !strings.Contains(r.stdout, "EOVERFLOW") && !strings.Contains(r.stdout, "EPERM") {
		t.Errorf("giving a file to root should fail: %s", r)
	}
	if data, _ := os.ReadFile(p); string(data) != "root's\n" {
		t.Errorf("rootfile changed: %q", data)
	}
}

// 3. Writes outside the project and the runtime dir fail; the caller's home
// outside the project and other users' homes are not there at all.
func TestConfinement(t *testing.T) {
	f := setup(t)
	script := strings.Join([]string{
		"for p in /usr/x /etc/x /x /var/x /home/x /home/pit-alice/x; do touch $p 2>/dev/null && echo WROTE $p; done",
		"cat /home/pit-alice/.ssh/id_ed25519 /home/pit-alice/proj2/notes /home/pit-bob/open-but-hidden /etc/shadow /root/.bashrc 2>/dev/null",
		"ls -A /home/pit-alice; echo --; ls -A /home; echo --",
		"echo persisted > ~/.pi/agent/canary && echo RUNTIME-OK",
		"echo scratch > /tmp/x && echo TMP-OK",
	}, "; ")
	r := f.run(t, aliceName, f.project, "", "sh", "-c", script)
	if strings.Contains(r.stdout, "WROTE") {
		t.Errorf("a write outside the project succeeded:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, secret) || strings.Contains(r.stdout, "root:") {
		t.Errorf("a secret leaked into the sandbox:\n%s", r.stdout)
	}
	parts := strings.Split(r.stdout, "--\n")
	if len(parts) < 2 || strings.TrimSpace(parts[0]) != "proj" {
		t.Errorf("alice's home inside should hold only the project, got %q", parts[0])
	}
	if len(parts) >= 2 && strings.Contains(parts[1], bobName) {
		t.Errorf("bob's home is visible: %q", parts[1])
	}
	if !strings.Contains(r.stdout, "RUNTIME-OK") || !strings.Contains(r.stdout, "TMP-OK") {
		t.Errorf("runtime dir or /tmp not writable: %s", r)
	}
	canary := filepath.Join(f.stateDir, "users", aliceName, "agent", "canary")
	if data, err := os.ReadFile(canary); err != nil || string(data) != "persisted\n" {
		t.Errorf("runtime dir write did not persist: %q %v", data, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(f.stateDir, "users", aliceName), &st); err != nil || st.Uid != 0 || st.Mode&0o077 != 0 {
		t.Errorf("users/<name> must be root's, mode 0700: uid %d mode %o %v", st.Uid, st.Mode&0o7777, err)
	}
}

// 4. Denied syscalls return EPERM inside (ENOSYS for clone3-style probes).
func TestDeniedSyscalls(t *testing.T) {
	f := setup(t)
	probe := f.probeInProject(t)
	ops := []string{"mount", "umount", "unshare-user", "unshare-mount", "clone-newuser", "setns", "ptrace", "keyctl", "bpf",
		"perf_event_open", "open_by_handle_at", "pivot_root", "kexec_load", "init_module", "io_uring_setup"}
	var script []string
	for _, op := range ops {
		script = append(script, fmt.Sprintf("printf '%s '; %s %s", op, probe, op))
	}
	r := f.run(t, aliceName, f.project, "", "sh", "-c", strings.Join(script, "; "))
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if op, res, ok := strings.Cut(l, " "); ok {
			got[op] = res
		}
	}
	for _, op := range ops {
		if got[op] != "EPERM" {
			t.Errorf("%s: got %q, want EPERM", op, got[op])
		}
	}
	// The unshare(1) tool, as a user would try it.
	r = f.run(t, aliceName, f.project, "", "unshare", "-U", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "Operation not permitted") {
		t.Errorf("unshare -U: %s", r)
	}
}

// TIOCSTI: the agent cannot push keystrokes into a terminal, not even its
// own pseudo-terminal.
func TestTIOCSTIBlockedOnTheAgentsTerminal(t *testing.T) {
	f := setup(t)
	requireTmux(t)
	probe := f.probeInProject(t)
	out := f.tmuxRun(t, "tiocsti", []string{"sh", "-c", probe + " tiocsti; echo DONE"})
	if !strings.Contains(out, "EPERM") {
		t.Errorf("TIOCSTI on the agent's terminal: %q", out)
	}
}

// 5. Refusals: outside every root, a sibling whose name extends the root,
// the home above the root, an unlisted user, a root symlinked to a place the
// caller cannot read. Nothing starts.
func TestRefusals(t *testing.T) {
	f := setup(t)
	before := leftovers(t)
	link := filepath.Join(f.alice.Home, "to-bob")
	_ = os.Remove(link)
	if err := os.Symlink(f.bob.Home, link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	for _, tc := range []struct {
		name, user, dir, want string
	}{
		{"outside every root", aliceName, "/tmp", "not inside an allowed project root"},
		{"sibling with the root's name as prefix", aliceName, filepath.Join(f.alice.Home, "proj2"), "not inside an allowed project root"},
		{"home above the root", aliceName, f.alice.Home, "not inside an allowed project root"},
		{"unlisted user", bobName, f.bob.Home, "not allowed to run the agent"},
		{"unknown user", "pit-nobody-here", "/", "look up user"},
		{"root as caller", "root", "/root", "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.run(t, tc.user, tc.dir, "", "sh", "-c", "echo STARTED")
			if r.code != 125 || strings.Contains(r.stdout, "STARTED") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want refusal (125, %q): %s", tc.want, r)
			}
		})
	}
	if r := f.run(t, aliceName, f.alice.Home, "", "true"); !strings.Contains(r.stderr, "allowed project roots for pit-alice: "+f.project) {
		t.Errorf("refusal does not list the allowed roots: %s", r.stderr)
	}

	// A project root that is a symlink into bob's private home: the helper
	// resolves it with alice's rights and cannot open it.
	t.Run("root symlinked into another user's home", func(t *testing.T) {
		if err := f.writeConfig(`{"stateDir": %q, "agent": {"command": ["/usr/bin/env"]}, "hostUsers": {%q: {"projectRoots": ["~/to-bob"]}}}`, f.stateDir, aliceName); err != nil {
			t.Fatal(err)
		}
		defer f.restoreConfig(t)
		// Root itself can cd there; the runner must still refuse.
		r := f.run(t, aliceName, f.bob.Home, "", "sh", "-c", "echo STARTED; cat open-but-hidden")
		if r.code != 125 || strings.Contains(r.stdout, "STARTED") || strings.Contains(r.stdout, secret) {
			t.Errorf("want refusal: %s", r)
		}
	})
	for _, l := range leftovers(t) {
		if !slices.Contains(before, l) {
			t.Errorf("a refused run left state behind: %s", l)
		}
	}
}

func (f *fixture) restoreConfig(t *testing.T) {
	t.Helper()
	if err := f.writeDefaultConfig(); err != nil {
		t.Fatal(err)
	}
}

// An untrusted config file is refused before anything happens.
func TestUntrustedConfigRefused(t *testing.T) {
	f := setup(t)
	if err := os.Chmod(f.config, 0o666); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(f.config, 0o644)
	r := f.run(t, aliceName, f.project, "", "sh", "-c", "echo STARTED")
	if r.code != 125 || strings.Contains(r.stdout, "STARTED") || !strings.Contains(r.stderr, "writable by group or others") {
		t.Errorf("want refusal of a world-writable config: %s", r)
	}
	if err := os.Chmod(f.config, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f.config, f.alice.UID, f.alice.GID); err != nil {
		t.Fatal(err)
	}
	defer os.Chown(f.config, 0, 0)
	r = f.run(t, aliceName, f.project, "", "sh", "-c", "echo STARTED")
	if r.code != 125 || !strings.Contains(r.stderr, "not root") {
		t.Errorf("want refusal of a config owned by a user: %s", r)
	}
}

// The working directory may be reached through a symlink; what counts is
// where it resolves.
func TestSymlinkedWorkingDirectoryResolves(t *testing.T) {
	f := setup(t)
	link := filepath.Join(f.alice.Home, "proj-link")
	_ = os.Remove(link)
	if err := os.Symlink("proj", link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	r := f.run(t, aliceName, link, "", "pwd")
	if r.code != 0 || strings.TrimSpace(r.stdout) != f.project {
		t.Errorf("pwd inside = %s", r)
	}
}

// project scope mounts only the git work tree that contains the cwd.
func TestProjectScope(t *testing.T) {
	f := setup(t)
	repo := filepath.Join(f.project, "repo")
	if err := writeOwned(filepath.Join(repo, ".git", "HEAD"), "ref: refs/heads/main\n", 0o644, f.alice); err != nil {
		t.Fatal(err)
	}
	if err := writeOwned(filepath.Join(repo, "src", "main.go"), "package main\n", 0o644, f.alice); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(repo) })
	if err := f.writeConfig(`{"stateDir": %q, "agent": {"command": ["/usr/bin/env"]}, "hostUsers": {%q: {"projectRoots": ["~/proj"]}}, "sandbox": {"projectScope": "project"}}`, f.stateDir, aliceName); err != nil {
		t.Fatal(err)
	}
	defer f.restoreConfig(t)
	r := f.run(t, aliceName, filepath.Join(repo, "src"), "", "sh", "-c", "pwd; ls -A "+f.project+"; ls -A "+repo)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || lines[0] != filepath.Join(repo, "src") {
		t.Fatalf("run: %s", r)
	}
	if strings.Contains(r.stdout, "README") {
		t.Errorf("project scope exposed the whole root:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, ".git") {
		t.Errorf("the work tree is not visible:\n%s", r.stdout)
	}
}

// network none: only loopback inside.
func TestNetworkNone(t *testing.T) {
	f := setup(t)
	if err := f.writeConfig(`{"stateDir": %q, "agent": {"command": ["/usr/bin/env"]}, "hostUsers": {%q: {"projectRoots": ["~/proj"]}}, "sandbox": {"network": "none"}}`, f.stateDir, aliceName); err != nil {
		t.Fatal(err)
	}
	defer f.restoreConfig(t)
	r := f.run(t, aliceName, f.project, "", "cat", "/proc/net/dev")
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	var ifaces []string
	for _, l := range strings.Split(r.stdout, "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			ifaces = append(ifaces, name)
		}
	}
	if len(ifaces) != 1 || ifaces[0] != "lo" {
		t.Errorf("interfaces with network none: %v", ifaces)
	}
}

// 6. Exit status, stdin EOF and signals propagate.
func TestExitStatusAndStdin(t *testing.T) {
	f := setup(t)
	if r := f.run(t, aliceName, f.project, "", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("exit 7: %s", r)
	}
	if r := f.run(t, aliceName, f.project, "", "sh", "-c", "kill -KILL $$"); r.code != 128+9 {
		t.Errorf("killed by SIGKILL: %s", r)
	}
	if r := f.run(t, aliceName, f.project, "", "/nonexistent"); r.code != 127 {
		t.Errorf("missing command: %s", r)
	}
	r := f.run(t, aliceName, f.project, "line one\nline two\n", "sh", "-c", "cat; echo EOF-SEEN")
	if r.code != 0 || r.stdout != "line one\nline two\nEOF-SEEN\n" {
		t.Errorf("stdin did not pass through with EOF: %s", r)
	}
}

func TestSignalsAreForwarded(t *testing.T) {
	f := setup(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := f.runnerCmd("sleep", "60")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the agent to start", func() bool { return agentRunning(f, "sleep") })
			start := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			if got := cmd.ProcessState.ExitCode(); got != 128+int(sig) {
				t.Errorf("exit %d, want %d", got, 128+int(sig))
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %v to stop", time.Since(start))
			}
			if l := leftovers(t); len(l) != 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

// agentRunning reports whether a process named comm runs as pi-agent.
func agentRunning(f *fixture, comm string) bool {
	out, _ := exec.Command("pgrep", "-u", strconv.Itoa(f.agent.UID), "-x", comm).Output()
	return len(strings.TrimSpace(string(out))) > 0
}

// After SIGKILL of the runner the container keeps running (libcontainer's
// parent-death signal does not reach it); gc, and the next run, remove it
// with its processes, cgroups, mounts and state.
func TestSIGKILLedRunnerIsCleanedUp(t *testing.T) {
	f := setup(t)
	for _, cleaner := range []string{"gc", "next run"} {
		t.Run(cleaner, func(t *testing.T) {
			cmd := f.runnerCmd("sleep", "300")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the agent to start", func() bool { return agentRunning(f, "sleep") })
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if l := leftovers(t); len(l) == 0 {
				t.Fatal("expected the killed run to leave a container behind")
			}
			if !agentRunning(f, "sleep") {
				t.Fatal("expected the orphaned agent to still run")
			}
			var r result
			if cleaner == "gc" {
				r = f.exec(t, "/", "", f.runner, "gc")
				if !strings.Contains(r.stdout, "removed pi-") {
					t.Errorf("gc did not report the removal: %s", r)
				}
			} else {
				r = f.run(t, aliceName, f.project, "", "true")
			}
			if r.code != 0 {
				t.Fatalf("%s: %s", cleaner, r)
			}
			if l := leftovers(t); len(l) != 0 {
				t.Errorf("left behind after %s: %v", cleaner, l)
			}
			if agentRunning(f, "sleep") {
				t.Errorf("orphaned agent still runs after %s", cleaner)
			}
			// The project mount was detached, never removed through.
			if _, err := os.Stat(filepath.Join(f.project, "README")); err != nil {
				t.Fatalf("the project lost files: %v", err)
			}
		})
	}
}

// Limits: the pids limit stops a fork bomb inside, the host is unaffected.
func TestPidsLimitContainsForkBomb(t *testing.T) {
	f := setup(t)
	r := f.run(t, aliceName, f.project, "", "sh", "-c",
		// Count with a glob: with the limit reached, nothing can fork.
		"(n=0; while [ $n -lt 400 ]; do sleep 3 & n=$((n+1)); done) 2>/dev/null; echo started; set -- /proc/[0-9]*; echo $#")
	if !strings.Contains(r.stdout, "started") {
		t.Fatalf("run: %s", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	n, err := strconv.Atoi(lines[len(lines)-1])
	if err != nil || n > 256 {
		t.Errorf("processes inside = %q, want at most the pids limit 256", lines[len(lines)-1])
	}
}

// Every run leaves one audit line: who, where, backend, id, exit status.
func TestAuditLine(t *testing.T) {
	f := setup(t)
	if _, err := os.Stat("/dev/log"); err == nil {
		t.Skip("not supported here: a syslog socket exists, so the line goes to syslog, which this test cannot read")
	}
	before, _ := os.ReadFile("/run/pi-agent/audit.log")
	r := f.run(t, aliceName, f.project, "", "sh", "-c", "exit 3")
	if r.code != 3 {
		t.Fatalf("run: %s", r)
	}
	after, err := os.ReadFile("/run/pi-agent/audit.log")
	if err != nil {
		t.Fatal(err)
	}
	added := strings.TrimPrefix(string(after), string(before))
	if strings.Count(added, "\n") != 1 {
		t.Fatalf("want exactly one new audit line, got %q", added)
	}
	for _, want := range []string{"user=" + aliceName, "uid=" + strconv.Itoa(f.alice.UID), "project=\"" + f.project + "\"", "backend=oci", "id=pi-", "exit=3", "duration="} {
		if !strings.Contains(added, want) {
			t.Errorf("audit line %q lacks %q", added, want)
		}
	}
	if st, err := os.Stat("/run/pi-agent/audit.log"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("audit log must be root-only: %v %v", st.Mode(), err)
	}
}

// Where systemd is not the init system, the systemd backend says so and
// starts nothing.
func TestSystemdBackendNeedsSystemd(t *testing.T) {
	f := setup(t)
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("not supported here: systemd runs this host; the VM suite tests the systemd backend")
	}
	r := f.exec(t, f.project, "", f.runner, "run", "--config", f.config, "--as-user", aliceName, "--backend", "systemd", "--", "sh", "-c", "echo STARTED")
	if r.code != 125 || strings.Contains(r.stdout, "STARTED") || !strings.Contains(r.stderr, "needs systemd as the init system") {
		t.Errorf("want a clear refusal: %s", r)
	}
	// auto picks oci here, and the audit line says so.
	r = f.exec(t, f.project, "", f.runner, "run", "--config", f.config, "--as-user", aliceName, "--backend", "auto", "--", "true")
	if r.code != 0 {
		t.Errorf("--backend auto: %s", r)
	}
	if log, _ := os.ReadFile("/run/pi-agent/audit.log"); !strings.Contains(string(log), "backend=oci(auto)") {
		t.Errorf("audit line does not say auto chose oci")
	}
}
