//go:build seccomp && cgo

package seccomp

import (
	"fmt"

	libseccomp "github.com/seccomp/libseccomp-golang"
)

// Validate checks that libseccomp knows every syscall the policy names, so a
// typo cannot silently drop a rule (libcontainer skips unknown names).
func Validate() error {
	for _, n := range Names() {
		if _, err := libseccomp.GetSyscallFromName(n); err != nil {
			return fmt.Errorf("seccomp policy names syscall %q, which libseccomp does not know: %w", n, err)
		}
	}
	return nil
}
