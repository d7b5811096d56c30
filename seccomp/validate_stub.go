//go:build !seccomp || !cgo

package seccomp

import "errors"

// Validate reports that this binary was built without libseccomp; such a
// binary cannot install the policy either, so the runner refuses to start.
func Validate() error {
	return errors.New("this binary was built without seccomp support: rebuild with cgo and -tags seccomp (make build does)")
}
