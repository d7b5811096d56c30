//go:build integration

package integration

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func requireTmux(t *testing.T) {
	t.Helper()
	requireTool(t, "tmux", "the terminal tests need a real terminal")
}

type tmux struct {
	t      *testing.T
	socket string
}

func (m tmux) cmd(args ...string) string {
	m.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", m.socket}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (m tmux) screen() string {
	m.t.Helper()
	return m.cmd("capture-pane", "-p", "-t", "s")
}

func (m tmux) waitFor(want string) string {
	m.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := m.screen()
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("screen never showed %q:\n%s", want, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startTmux runs the runner in a detached tmux session of size 100x30 on a
// socket of its own. The pane prints RUNNER_EXIT=<status> when it ends.
func (f *fixture) startTmux(t *testing.T, name string, argv []string) tmux {
	t.Helper()
	m := tmux{t: t, socket: "pi-agent-it-" + name}
	line := "cd " + f.project + " && " + f.runner + " run --config " + f.config + " --as-user " + aliceName + " --"
	for _, a := range argv {
		line += " '" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	// After the run, report the terminal's modes: raw mode must be undone.
	line += "; echo RUNNER_EXIT=$?; echo MODES: $(stty -a | tr -s ' ;' '\\n' | grep -xE -- '-?(icanon|echo|isig)'); sleep 60"
	m.cmd("new-session", "-d", "-s", "s", "-x", "100", "-y", "30", line)
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", m.socket, "kill-server").Run() })
	return m
}

// tmuxRun runs argv under a terminal and returns the screen once it ended.
func (f *fixture) tmuxRun(t *testing.T, name string, argv []string) string {
	t.Helper()
	m := f.startTmux(t, name, argv)
	return m.waitFor("RUNNER_EXIT=")
}

// 7. Under a real terminal the agent gets a new pty of its own, sees the
// window size and its changes, Ctrl+C reaches the foreground job, the exit
// status comes back, and the caller's terminal is restored.
func TestInteractiveTerminal(t *testing.T) {
	f := setup(t)
	requireTmux(t)
	m := f.startTmux(t, "interactive", []string{"bash", "--norc", "--noprofile", "-i"})
	m.waitFor("bash-")
	// Each command ends with a marker whose value only the shell's output
	// shows (the typed line shows the expression).
	m.cmd("send-keys", "-t", "s", "stty size; tty; echo M$((40+1))", "Enter")
	s := m.waitFor("M41")
	if !slices.Contains(strings.Split(s, "\n"), "30 100") {
		t.Errorf("initial size not 30 100:\n%s", s)
	}
	if !slices.Contains(strings.Split(s, "\n"), "/dev/pts/0") {
		t.Errorf("the agent does not have a pty of its own:\n%s", s)
	}
	m.cmd("resize-window", "-t", "s", "-x", "120", "-y", "40")
	time.Sleep(300 * time.Millisecond)
	m.cmd("send-keys", "-t", "s", "clear; stty size; echo M$((41+1))", "Enter")
	if s := m.waitFor("M42"); !slices.Contains(strings.Split(s, "\n"), "40 120") {
		t.Errorf("resize not seen:\n%s", s)
	}
	m.cmd("send-keys", "-t", "s", "sleep 100", "Enter")
	time.Sleep(500 * time.Millisecond)
	m.cmd("send-keys", "-t", "s", "C-c")
	m.cmd("send-keys", "-t", "s", "echo rc=$? M$((42+1))", "Enter")
	if s := m.waitFor("M43"); !strings.Contains(s, "rc=130 M43") {
		t.Errorf("Ctrl+C did not interrupt the foreground job:\n%s", s)
	}
	m.cmd("send-keys", "-t", "s", "exit 3", "Enter")
	s = m.waitFor("RUNNER_EXIT=")
	if !strings.Contains(s, "RUNNER_EXIT=3") {
		t.Errorf("exit status not propagated:\n%s", s)
	}
	// The caller's terminal is back in cooked mode.
	s = m.waitFor("MODES:")
	_, modes, _ := strings.Cut(s, "MODES:")
	modes, _, _ = strings.Cut(modes, "\n")
	for _, want := range []string{"icanon", "isig", "echo"} {
		if !strings.Contains(" "+modes+" ", " "+want+" ") {
			t.Errorf("terminal not restored after the run: %q lacks %s", modes, want)
		}
	}
}
