//go:build integration

package integration

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// attack is one escape attempt, made from inside the sandbox. The script
// runs under sh; $P is the probe (testdata/probe), which prints "OK" when
// the operation it attempts succeeded and the errno name otherwise.
type attack struct {
	name   string
	script string
	// want must appear in the output; deny must not (secrets, "OK").
	want, deny []string
	// host, if set, checks that nothing changed on the host.
	host func(t *testing.T, f *fixture)
}

var errnoRE = regexp.MustCompile(`\bE[A-Z0-9]+\b`)

func fileHash(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

func noHostFile(p string) func(*testing.T, *fixture) {
	return func(t *testing.T, _ *fixture) {
		t.Helper()
		if _, err := os.Lstat(p); err == nil {
			os.Remove(p)
			t.Errorf("the attack created %s on the host", p)
		}
	}
}

// TestAttacks: each case attempts an escape or a privilege for real and
// asserts that it failed and that the host did not change.
func TestAttacks(t *testing.T) {
	f := setup(t)
	probe := f.probeInProject(t)
	runnerHash := fileHash(t, f.runner)
	envHash := fileHash(t, "/usr/bin/env")
	shadow, _ := os.ReadFile("/etc/shadow")
	shadowLine := strings.SplitN(string(shadow), "\n", 2)[0]
	runtime := filepath.Join(f.stateDir, "users", aliceName)
	// A secret in another user's runtime dir and in alice's root-only state.
	otherRuntime := filepath.Join(f.stateDir, "users", bobName, "agent")
	os.MkdirAll(otherRuntime, 0o700)
	os.WriteFile(filepath.Join(otherRuntime, "auth.json"), []byte(secret), 0o600)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(otherRuntime)) })
	binaryIntact := func(t *testing.T, f *fixture) {
		if fileHash(t, f.runner) != runnerHash || fileHash(t, "/usr/bin/env") != envHash {
			t.Error("a host binary changed")
		}
	}
	denied := []string{"OK", secret}

	attacks := []attack{
		// Reading what the sandbox must not show.
		{name: "read the caller's SSH key", script: "$P read /home/pit-alice/.ssh/id_ed25519; cat /home/pit-alice/.ssh/id_ed25519", deny: denied},
		{name: "read another project of the caller", script: "$P read /home/pit-alice/proj2/notes; cat /home/pit-alice/proj2/notes", deny: denied},
		{name: "read another user's home", script: "$P read /home/pit-bob/open-but-hidden; ls /home/pit-bob", deny: denied},
		{name: "read /etc/shadow", script: "$P read /etc/shadow; cat /etc/shadow", deny: append(denied, shadowLine)},
		{name: "read /root", script: "$P read /root/.bashrc; ls -a /root", deny: denied},
		{name: "read the sudoers", script: "$P read /etc/sudoers", deny: denied},
		{name: "read the runner config", script: "$P read " + f.config, deny: denied},
		{name: "read another user's runtime", script: "$P read " + filepath.Join(otherRuntime, "auth.json"), deny: denied},
		{name: "read the sync manifest (root-only state)", script: "$P read " + filepath.Join(runtime, "manifest.json"), deny: denied},
		// PID 1 inside is the sandbox's own reaper: its environment is the
		// agent's, with nothing of the caller's or of sudo's.
		{name: "read the caller's environment through /proc", script: "cat /proc/1/environ | tr '\\0' '\\n' | grep -c -e SUDO_ -e SSH_AUTH_SOCK", want: []string{"0"}},

		// Writing outside the project and the runtime dir.
		{name: "write /usr", script: "$P write /usr/bin/pwned", want: []string{"EROFS"}, host: noHostFile("/usr/bin/pwned")},
		{name: "write /etc/passwd", script: "$P write /etc/passwd", deny: []string{"OK"}},
		{name: "write the root directory", script: "$P write /pwned", want: []string{"EROFS"}, host: noHostFile("/pwned")},
		{name: "write the caller's home outside the project", script: "$P write /home/pit-alice/.bashrc", deny: []string{"OK"}},
		{name: "overwrite the runner binary via /.pi-agent/init", script: "$P write /.pi-agent/init", deny: []string{"OK"}, host: binaryIntact},
		{name: "overwrite the runtime via /proc/1/exe (CVE-2019-5736)", script: "$P write /proc/1/exe", deny: []string{"OK"}, host: binaryIntact},
		{name: "overwrite a host binary via /proc/self/exe", script: "$P write /proc/self/exe; /usr/bin/env sh -c '" + probe + " write /proc/$$/exe'", deny: []string{"OK"}, host: binaryIntact},
		{name: "write /proc/sys", script: "$P write /proc/sys/kernel/hostname", deny: []string{"OK"}},
		{name: "write /proc/sysrq-trigger", script: "$P write /proc/sysrq-trigger", deny: []string{"OK"}},
		{name: "write /sys", script: "$P write /sys/kernel/uevent_helper", deny: []string{"OK"}},
		{name: "cgroup escape through release_agent", script: "ls /sys/fs/cgroup; $P write /sys/fs/cgroup/release_agent; $P write /sys/fs/cgroup/memory/release_agent", deny: []string{"OK"}},
		{name: "hard link a host file into the project", script: "ln /etc/hostname pwned-link 2>&1; ln /.pi-agent/init pwned-link2 2>&1; ls pwned-link pwned-link2 2>&1", want: []string{"No such file"}, host: noHostFile("/home/pit-alice/proj/pwned-link2")},

		// Devices.
		{name: "create a block device", script: "$P mknod", want: []string{"EPERM"}},
		{name: "read physical memory", script: "$P read /dev/mem", want: []string{"ENOENT"}},
		{name: "read the kernel log", script: "$P read /dev/kmsg", want: []string{"ENOENT"}},
		{name: "open a disk", script: "$P read /dev/vda; $P read /dev/sda", deny: []string{"OK"}},

		// Privileges.
		{name: "setuid(0)", script: "$P setuid0", want: []string{"EPERM"}},
		{name: "sudo inside", script: "sudo -n id -u 2>&1; echo exit=$?", deny: []string{"\n0\n"}, want: []string{"exit=1"}},
		{name: "su inside", script: "su -c 'id -u' root </dev/null 2>&1; echo exit=$?", deny: []string{"\n0\n"}},
		{name: "chroot", script: "$P chroot", want: []string{"EPERM"}},
		{name: "sethostname", script: "$P sethostname; hostname", want: []string{"EPERM", "pi-agent"}},
		{name: "raw packet socket", script: "$P rawsocket", want: []string{"EPERM"}},
		{name: "reboot", script: "$P reboot", want: []string{"EPERM"}},
		{name: "iopl", script: "$P iopl", want: []string{"EPERM"}},

		// Processes and descriptors.
		{name: "see host processes", script: "set -- /proc/[0-9]*; echo procs=$#", want: []string{"procs="}, host: nil},
		{name: "signal a host process", script: "$P kill " + strconv.Itoa(os.Getpid()), want: []string{"ESRCH"}},
		{name: "leaked descriptors (CVE-2024-21626 class)", script: "$P fds; ls -l /proc/self/cwd", want: []string{"extra fds: 0", "/home/pit-alice/proj"}},
		{name: "TIOCSTI without a terminal", script: "$P tiocsti", deny: []string{"OK"}},

		// Resource exhaustion, contained by the limits (1G memory, 256
		// tasks, 64M /tmp in the test config).
		{name: "memory bomb", script: "$P alloc 2048; echo exit=$?", want: []string{"exit=137"}},
		{name: "fill /tmp", script: "dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>&1; echo exit=$?", want: []string{"No space left"}},
	}
	for _, op := range []string{"mount", "umount", "unshare-user", "unshare-mount", "clone-newuser", "setns", "ptrace", "keyctl", "bpf",
		"perf_event_open", "open_by_handle_at", "pivot_root", "kexec_load", "init_module", "io_uring_setup", "userfaultfd"} {
		attacks = append(attacks, attack{name: "syscall " + op, script: "$P " + op, want: []string{"EPERM"}})
	}
	if len(attacks) < 40 {
		t.Fatalf("the suite has %d cases; it promises at least 40", len(attacks))
	}

	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			script := strings.ReplaceAll(a.script, "$P", probe)
			r := f.run(t, aliceName, f.project, "", "sh", "-c", script)
			out := r.stdout + r.stderr
			for _, w := range a.want {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in the outcome:\n%s", w, out)
				}
			}
			for _, d := range a.deny {
				if d != "" && strings.Contains("\n"+out, d) {
					t.Errorf("the attack worked (%q in the outcome):\n%s", d, out)
				}
			}
			// A probe that did not run at all must not pass as a refusal.
			if strings.Contains(a.script, "$P") && len(a.want) == 0 && !errnoRE.MatchString(out) {
				t.Errorf("the probe reported no errno; did it run?\n%s", out)
			}
			if a.host != nil {
				a.host(t, f)
			}
		})
	}
	// "see host processes": the count must be the sandbox's handful.
	r := f.run(t, aliceName, f.project, "", "sh", "-c", "set -- /proc/[0-9]*; echo $#")
	if n, err := strconv.Atoi(strings.TrimSpace(r.stdout)); err != nil || n > 4 {
		t.Errorf("the sandbox sees %q processes", r.stdout)
	}
}
