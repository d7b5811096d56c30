package seccomp

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestPolicyCoversTheEscapes(t *testing.T) {
	names := Names()
	for _, n := range []string{"mount", "umount2", "pivot_root", "unshare", "setns", "ptrace", "keyctl", "add_key",
		"bpf", "perf_event_open", "kexec_load", "init_module", "finit_module", "open_by_handle_at",
		"io_uring_setup", "userfaultfd", "process_vm_readv", "fsopen", "open_tree", "move_mount"} {
		if !slices.Contains(names, n) {
			t.Errorf("policy does not deny %s", n)
		}
	}
	for _, n := range []string{"read", "write", "execve", "clone", "openat", "socket", "connect", "mknodat"} {
		var unconditional bool
		for _, r := range Policy() {
			if slices.Contains(r.Names, n) && len(r.Args) == 0 {
				unconditional = true
			}
		}
		if unconditional {
			t.Errorf("policy denies %s outright; the agent needs it", n)
		}
	}
}

func TestOCIProfile(t *testing.T) {
	p := OCI()
	if p.DefaultAction != specs.ActAllow {
		t.Errorf("default action %s", p.DefaultAction)
	}
	if len(p.Architectures) != 1 {
		t.Errorf("architectures %v: only the native one belongs in a deny-list", p.Architectures)
	}
	var tiocsti, cloneUser, clone3 bool
	for _, sc := range p.Syscalls {
		if sc.Action != specs.ActErrno || sc.ErrnoRet == nil {
			t.Fatalf("rule %v is not an errno rule", sc.Names)
		}
		if slices.Contains(sc.Names, "ioctl") && len(sc.Args) == 1 && sc.Args[0].ValueTwo == unix.TIOCSTI && sc.Args[0].Op == specs.OpMaskedEqual {
			tiocsti = *sc.ErrnoRet == uint(unix.EPERM)
		}
		if slices.Contains(sc.Names, "clone") && len(sc.Args) == 1 && sc.Args[0].Value == unix.CLONE_NEWUSER && sc.Args[0].ValueTwo == unix.CLONE_NEWUSER {
			cloneUser = true
		}
		if slices.Contains(sc.Names, "clone3") {
			clone3 = *sc.ErrnoRet == uint(unix.ENOSYS)
		}
	}
	if !tiocsti || !cloneUser || !clone3 {
		t.Errorf("TIOCSTI rule %v, clone(CLONE_NEWUSER) rule %v, clone3 ENOSYS %v", tiocsti, cloneUser, clone3)
	}
}

func TestSystemdFilter(t *testing.T) {
	f := Systemd()
	if !strings.HasPrefix(f, "~") {
		t.Fatalf("not a deny-list: %q", f)
	}
	names := strings.Fields(strings.TrimPrefix(f, "~"))
	for _, n := range []string{"mount", "unshare", "setns", "ptrace", "keyctl", "bpf", "io_uring_setup", "open_by_handle_at", "kexec_load"} {
		if !slices.Contains(names, n) {
			t.Errorf("systemd filter lacks %s", n)
		}
	}
	for _, n := range []string{"clone", "ioctl", "clone3"} {
		if slices.Contains(names, n) {
			t.Errorf("systemd filter denies %s outright; the agent needs it (its arguments are filtered otherwise)", n)
		}
	}
	// One policy: every unconditional EPERM rule of the OCI profile is here.
	for _, sc := range OCI().Syscalls {
		if len(sc.Args) == 0 && *sc.ErrnoRet == uint(unix.EPERM) {
			for _, n := range sc.Names {
				if !slices.Contains(names, n) {
					t.Errorf("%s is denied by the OCI profile but not by the systemd filter", n)
				}
			}
		}
	}
}
