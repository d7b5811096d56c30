package seccomp

import (
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Systemd renders the policy for systemd's SystemCallFilter=: a deny-list
// ("~name …") of every syscall the policy refuses outright. The rules that
// depend on arguments have no SystemCallFilter= form; their systemd
// equivalents are properties the systemd backend always sets:
//   - clone with namespace flags, and clone3: RestrictNamespaces=yes (systemd
//     filters the flags, and answers clone3 with ENOSYS);
//   - TIOCSTI/TIOCLINUX: the unit gets a pty of systemd-run's, never the
//     caller's terminal, so there is no host terminal to inject into.
//
// The errno (EPERM) is SystemCallErrorNumber=, set alongside.
func Systemd() string {
	var names []string
	for _, r := range Policy() {
		if len(r.Args) > 0 || r.Errno != unix.EPERM {
			continue
		}
		names = append(names, r.Names...)
	}
	sort.Strings(names)
	return "~" + strings.Join(names, " ")
}
