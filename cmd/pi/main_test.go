package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		backend string
		rest    []string
	}{
		{nil, "", []string{}},
		{[]string{"-p", "hi"}, "", []string{"-p", "hi"}},
		{[]string{"--backend=systemd", "-p", "x"}, "systemd", []string{"-p", "x"}},
		{[]string{"-p", "x", "--backend", "oci"}, "oci", []string{"-p", "x"}},
		// After "--" nothing is the wrapper's: "--" and the rest pass on.
		{[]string{"--", "--backend=systemd"}, "", []string{"--", "--backend=systemd"}},
		{[]string{"--backend=oci", "--", "id", "-u"}, "oci", []string{"--", "id", "-u"}},
		// Arguments that look like sudo or runner options stay arguments.
		{[]string{"-u", "root", "--config", "/tmp/evil", "--as-user=root", ""}, "", []string{"-u", "root", "--config", "/tmp/evil", "--as-user=root", ""}},
		{[]string{"--backends=x"}, "", []string{"--backends=x"}},
	} {
		b, rest, err := splitArgs(tc.in)
		if err != nil || b != tc.backend || !slices.Equal(rest, tc.rest) {
			t.Errorf("splitArgs(%q) = %q, %q, %v; want %q, %q", tc.in, b, rest, err, tc.backend, tc.rest)
		}
	}
	for _, bad := range [][]string{{"--backend"}, {"--backend="}, {"--backend=docker"}, {"--backend", "bwrap"}} {
		if _, _, err := splitArgs(bad); err == nil {
			t.Errorf("splitArgs(%q) accepted", bad)
		}
	}
}

func TestSudoArgsKeepTheRunnerFixed(t *testing.T) {
	got := sudoArgs("systemd", []string{"-p", "a b", "--", "-n"})
	want := []string{"-n", "--", runnerPath, "run", "--backend", "systemd", "--", "-p", "a b", "--", "-n"}
	if !slices.Equal(got, want) {
		t.Errorf("sudoArgs = %q, want %q", got, want)
	}
}

// buildWrapper builds the real wrapper with a fake sudo that records its argv
// one per line, and exits with the status in FAKE_SUDO_EXIT.
func buildWrapper(t *testing.T) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "argv")
	sudo := filepath.Join(dir, "sudo")
	script := "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> " + log + "\nexit ${FAKE_SUDO_EXIT:-0}\n"
	if err := os.WriteFile(sudo, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "pi")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "-ldflags", "-X main.runnerPath=/opt/pi-agent/runner -X main.sudoPath="+sudo, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin, log
}

func TestWrapperBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped in -short mode")
	}
	bin, log := buildWrapper(t)

	args := []string{"--backend=oci", "-p", "it's a $(test)\nwith newline", "--", "x"}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("wrapper: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(log)
	want := "-n\n--\n/opt/pi-agent/runner\nrun\n--backend\noci\n--\n-p\nit's a $(test)\nwith newline\n--\nx\n"
	if string(data) != want {
		t.Errorf("sudo saw\n%q\nwant\n%q", data, want)
	}

	// The agent's exit status comes back unchanged.
	os.Remove(log)
	cmd := exec.Command(bin, "-p", "x")
	cmd.Env = append(os.Environ(), "FAKE_SUDO_EXIT=42")
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 42 {
		t.Errorf("exit status: %v", err)
	}

	// When sudo refuses (exit 1, and `sudo -l` denies too) the wrapper
	// says what the administrator must configure.
	cmd = exec.Command(bin, "-p", "x")
	cmd.Env = append(os.Environ(), "FAKE_SUDO_EXIT=1", "USER=alice")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "alice ALL=(root) NOPASSWD: /opt/pi-agent/runner") {
		t.Errorf("refusal message: exit %d, %q", cmd.ProcessState.ExitCode(), out)
	}

	// A bad wrapper flag fails before sudo runs.
	os.Remove(log)
	cmd = exec.Command(bin, "--backend=docker")
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "not one of oci, systemd, auto") {
		t.Errorf("bad backend: exit %d %q", cmd.ProcessState.ExitCode(), out)
	}
	if _, err := os.Stat(log); err == nil {
		t.Error("sudo ran despite a bad wrapper flag")
	}
}
