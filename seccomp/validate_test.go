//go:build seccomp && cgo

package seccomp

import "testing"

// Every name must be one libseccomp knows; libcontainer would skip an unknown
// one silently, leaving a hole in the policy.
func TestValidateKnowsEveryName(t *testing.T) {
	if err := Validate(); err != nil {
		t.Fatal(err)
	}
}
