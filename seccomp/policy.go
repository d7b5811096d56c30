// Package seccomp holds the one syscall policy of the sandbox, as data, and
// renders it for each backend: an OCI LinuxSeccomp profile for the oci backend
// (libcontainer) and SystemCallFilter= lines for the systemd backend.
//
// The policy is a deny-list modelled on Docker's default profile: everything a
// coding agent needs (node, git, compilers, shells) stays allowed, and the
// calls that reach kernel attack surface or cross the sandbox boundary fail
// with EPERM instead of killing the process, so tools degrade with a clear
// error rather than crash.
package seccomp

import "golang.org/x/sys/unix"

// Arg is a condition on one syscall argument: (arg[Index] & Mask) == Value.
type Arg struct {
	Index uint
	Mask  uint64
	Value uint64
}

// Rule denies the syscalls in Names with Errno. When Args is not empty the
// rule applies only when every condition holds.
type Rule struct {
	Names []string
	Errno unix.Errno
	Args  []Arg
	// Why says what the rule prevents; it is documentation and appears in
	// `pi-agent-runner doctor` output.
	Why string
}

// nsFlags are the clone(2) flags that create namespaces. The kernel checks
// them in clone, clone3 and unshare; the agent must not build namespaces of
// its own (they are the first step of most container escapes).
var nsFlags = []uint64{
	unix.CLONE_NEWNS, unix.CLONE_NEWUTS, unix.CLONE_NEWIPC, unix.CLONE_NEWUSER,
	unix.CLONE_NEWPID, unix.CLONE_NEWNET, unix.CLONE_NEWCGROUP,
}

// Policy returns the sandbox's syscall rules. The slice is freshly allocated;
// callers may keep it.
func Policy() []Rule {
	rules := []Rule{
		{
			Why:   "mounts and the new mount API: the agent must not change its view of the filesystem",
			Names: []string{"mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr"},
		},
		{
			Why:   "namespaces: no user, mount or network namespaces of the agent's own",
			Names: []string{"unshare", "setns"},
		},
		{
			Why:   "process inspection across the boundary (ptrace and its relatives)",
			Names: []string{"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise"},
		},
		{
			Why:   "kernel keyrings are not namespaced",
			Names: []string{"keyctl", "add_key", "request_key"},
		},
		{
			Why:   "eBPF, perf and userfaultfd: large kernel attack surface",
			Names: []string{"bpf", "perf_event_open", "userfaultfd"},
		},
		{
			Why:   "io_uring bypasses seccomp for the operations it submits",
			Names: []string{"io_uring_setup", "io_uring_enter", "io_uring_register"},
		},
		{
			Why:   "kernel modules, kexec and reboot",
			Names: []string{"init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms", "kexec_load", "kexec_file_load", "reboot"},
		},
		{
			Why:   "file handles bypass path permission checks (the 'shocker' escape)",
			Names: []string{"open_by_handle_at", "name_to_handle_at"},
		},
		{
			Why:   "host-global state: clocks, hostname, swap, accounting, quotas, syslog",
			Names: []string{"settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime", "sethostname", "setdomainname", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "vhangup", "lookup_dcookie", "nfsservctl", "fanotify_init"},
		},
		{
			Why:   "obsolete or hardware-level calls",
			Names: []string{"uselib", "ustat", "sysfs", "_sysctl", "iopl", "ioperm", "vm86", "vm86old", "mbind", "set_mempolicy", "get_mempolicy", "move_pages"},
		},
		{
			// systemd's @obsolete and @cpu-emulation groups, whole: no
			// program of this century needs them.
			Why: "obsolete calls and CPU emulation (systemd's @obsolete, @cpu-emulation)",
			Names: []string{"afs_syscall", "bdflush", "break", "ftime", "getpmsg", "gtty", "idle", "lock", "mpx", "prof", "profil",
				"putpmsg", "security", "sgetmask", "ssetmask", "stty", "tuxcall", "ulimit", "vserver",
				"modify_ldt", "subpage_prot", "switch_endian"},
		},
		{
			Why:   "TIOCSTI and TIOCLINUX push input into a terminal (keystroke injection)",
			Names: []string{"ioctl"},
			Args:  []Arg{{Index: 1, Mask: 0xffffffff, Value: unix.TIOCSTI}},
		},
		{
			Why:   "TIOCSTI and TIOCLINUX push input into a terminal (keystroke injection)",
			Names: []string{"ioctl"},
			Args:  []Arg{{Index: 1, Mask: 0xffffffff, Value: unix.TIOCLINUX}},
		},
		{
			// clone3 passes its flags in memory, where seccomp cannot look;
			// ENOSYS makes libc fall back to clone, whose flags are checked.
			Why:   "clone3 flags cannot be inspected; libc falls back to clone",
			Names: []string{"clone3"},
			Errno: unix.ENOSYS,
		},
	}
	for _, f := range nsFlags {
		rules = append(rules, Rule{
			Why:   "namespaces: no user, mount or network namespaces of the agent's own",
			Names: []string{"clone"},
			Args:  []Arg{{Index: 0, Mask: f, Value: f}},
		})
	}
	for i := range rules {
		if rules[i].Errno == 0 {
			rules[i].Errno = unix.EPERM
		}
	}
	return rules
}

// Names returns every syscall name the policy mentions, once, in policy order.
func Names() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range Policy() {
		for _, n := range r.Names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}
