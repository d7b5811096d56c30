//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/m3ta/pi-agent/sandbox"
)

// fixture is the world the root tests run in: a runner and a wrapper built
// for this run (with this run's config path baked in, as a packager would),
// a pi-agent user, an allowed human (pit-alice) and an unlisted one
// (pit-bob), and secrets in their homes that must never reach the sandbox.
type fixture struct {
	base     string // root-owned scratch dir
	runner   string // built runner, its config path baked in
	wrapper  string // built pi wrapper, the runner's path baked in
	config   string
	stateDir string
	probe    string // static probe binary, copied into projects as needed
	agent    sandbox.Account
	alice    sandbox.Account
	bob      sandbox.Account
	project  string // alice's allowlisted project root
	created  []string
}

var (
	fx       *fixture
	fxErr    error
	fxOnce   sync.Once
	repoRoot string
)

const (
	aliceName = "pit-alice"
	bobName   = "pit-bob"
	secret    = "SECRET-do-not-leak-7f3a"
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	code := m.Run()
	if fx != nil {
		fx.teardown()
	}
	os.Exit(code)
}

// setup returns the shared fixture, building it on first use. Without root
// the test is skipped with that reason; a broken setup fails every test.
func setup(t *testing.T) *fixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: real containers, users and sudo (run `sudo make test-integration`)")
	}
	fxOnce.Do(func() { fx, fxErr = newFixture() })
	if fxErr != nil {
		t.Fatalf("integration setup: %v", fxErr)
	}
	return fx
}

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func newFixture() (*fixture, error) {
	f := &fixture{}
	base, err := os.MkdirTemp("", "pi-agent-it-")
	if err != nil {
		return nil, err
	}
	f.base = base
	for _, d := range []string{"libexec", "bin", "etc"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return nil, err
	}
	f.config = filepath.Join(base, "etc", "config.json")
	f.stateDir = filepath.Join(base, "state")
	f.runner = filepath.Join(base, "libexec", "pi-agent-runner")
	f.wrapper = filepath.Join(base, "bin", "pi")
	f.probe = filepath.Join(base, "probe")

	builds := [][]string{
		{"build", "-buildvcs=false", "-tags", "seccomp", "-o", f.runner, "-ldflags", "-X github.com/m3ta/pi-agent/sandbox.DefaultConfigPath=" + f.config, "./cmd/pi-agent-runner"},
		{"build", "-buildvcs=false", "-o", f.wrapper, "-ldflags", "-X main.runnerPath=" + f.runner, "./cmd/pi"},
		{"build", "-buildvcs=false", "-o", filepath.Join(base, "libexec", "pi-agent-helper"), "./cmd/pi-agent-helper"},
	}
	for _, b := range builds {
		cmd := exec.Command("go", b...)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(b, " "), err, out)
		}
	}
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", f.probe, "./integration/testdata/probe")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build probe: %v\n%s", err, out)
	}

	if _, err := sandbox.Lookup("pi-agent"); err != nil {
		if err := sh("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "pi-agent"); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{aliceName, bobName} {
		if _, err := sandbox.Lookup(name); err != nil {
			if err := sh("useradd", "--create-home", "--shell", "/bin/sh", name); err != nil {
				return nil, err
			}
			f.created = append(f.created, name)
		}
	}
	if f.agent, err = sandbox.Lookup("pi-agent"); err != nil {
		return nil, err
	}
	if f.alice, err = sandbox.Lookup(aliceName); err != nil {
		return nil, err
	}
	if f.bob, err = sandbox.Lookup(bobName); err != nil {
		return nil, err
	}
	f.project = filepath.Join(f.alice.Home, "proj")
	// Homes: alice's with a project, a sibling whose name extends the
	// project's, and an SSH key; bob's private, with a world-readable file
	// that only the 0700 home protects.
	for _, w := range []struct {
		path string
		data string
		mode os.FileMode
		acct sandbox.Account
	}{
		{filepath.Join(f.project, "README"), "alice's project\n", 0o644, f.alice},
		{filepath.Join(f.alice.Home, "proj2", "notes"), secret, 0o644, f.alice},
		{filepath.Join(f.alice.Home, ".ssh", "id_ed25519"), secret, 0o600, f.alice},
		{filepath.Join(f.bob.Home, "open-but-hidden"), secret, 0o644, f.bob},
	} {
		if err := writeOwned(w.path, w.data, w.mode, w.acct); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(f.bob.Home, 0o700); err != nil {
		return nil, err
	}
	if err := f.writeDefaultConfig(); err != nil {
		return nil, err
	}
	return f, nil
}

// writeDefaultConfig writes the config most tests run with: alice may use
// ~/proj, the agent command is env, small limits.
func (f *fixture) writeDefaultConfig() error {
	return f.writeConfig(`{
  "stateDir": %q,
  "agent": {"command": ["/usr/bin/env"]},
  "hostUsers": {%q: {"projectRoots": ["~/proj"]}},
  "environment": {"PI_AGENT_IT": "managed"},
  "sandbox": {"memoryMax": "1G", "pidsMax": 256, "tmpSize": "64M"}
}`, f.stateDir, aliceName)
}

// requireTool skips a test when a tool it drives is missing, except in CI,
// where .ci/run installs every tool and a missing one is a failure.
func requireTool(t *testing.T, tool, why string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI (.ci/run installs it): %s", tool, why)
		}
		t.Skipf("not supported on this host: %s is not installed (%s)", tool, why)
	}
}

func (f *fixture) writeConfig(format string, args ...any) error {
	return os.WriteFile(f.config, []byte(fmt.Sprintf(format, args...)), 0o644)
}

func writeOwned(path, data string, mode os.FileMode, a sandbox.Account) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		return err
	}
	for p := path; p != a.Home && p != "/"; p = filepath.Dir(p) {
		if err := os.Lchown(p, a.UID, a.GID); err != nil {
			return err
		}
	}
	return nil
}

func (f *fixture) teardown() {
	for _, name := range f.created {
		_ = exec.Command("userdel", "--remove", name).Run()
	}
	_ = os.RemoveAll(f.base)
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// run calls the runner as root directly, the test interface of the runner:
// run --config FILE --as-user NAME -- ARGS, from dir.
func (f *fixture) run(t *testing.T, user, dir, stdin string, args ...string) result {
	t.Helper()
	argv := append([]string{"run", "--config", f.config, "--as-user", user, "--"}, args...)
	return f.exec(t, dir, stdin, f.runner, argv...)
}

// runnerCmd is a run of the runner for alice in her project, not started:
// for tests that signal it, kill it or set its environment.
func (f *fixture) runnerCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(f.runner, append([]string{"run", "--config", f.config, "--as-user", aliceName, "--"}, args...)...)
	cmd.Dir = f.project
	return cmd
}

func (f *fixture) exec(t *testing.T, dir, stdin, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %q timed out\n%s", name, args, errb.String())
	}
	return result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// inProject copies the probe into alice's project and returns its path.
func (f *fixture) probeInProject(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(f.probe)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.project, ".probe")
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, f.alice.UID, f.alice.GID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p) })
	return p
}

// leftovers lists what runs leave on the host while they are alive: run
// directories, container state, cgroups and mounts.
func leftovers(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, pattern := range []string{"/run/pi-agent/runs/pi-*", "/run/pi-agent/oci/pi-*", "/sys/fs/cgroup/*/pi-agent/pi-*", "/sys/fs/cgroup/pi-agent/pi-*"} {
		m, _ := filepath.Glob(pattern)
		out = append(out, m...)
	}
	mounts, err := sandbox.MountsBelow("/run/pi-agent/runs")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if m != "/run/pi-agent/runs" {
			out = append(out, "mount "+m)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statUID(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
