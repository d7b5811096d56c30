package sandbox

import (
	"regexp"
	"strings"
	"testing"

	"github.com/m3ta/pi-agent/merge"
)

// The character checks are plain code; the patterns they implement are the
// specification, checked here on the edges.
func TestCharacterChecksMatchTheirPatterns(t *testing.T) {
	inputs := []string{"", "a", "_", "-", "0", "a0", "0a", "alice", "pi-agent", "Alice", "a b", "a.b", "a/b",
		"a\n", "\na", "é", "a\x00", "\xff", strings.Repeat("a", 32), strings.Repeat("a", 33), "_x-9", "LC_ALL",
		"xterm-256color", "en_US.UTF-8", "user@host:1+2", "a=b", "$x", "a%b", "C.UTF-8\n"}
	for _, c := range []struct {
		name string
		re   string
		fn   func(string) bool
	}{
		{"validName", `^[a-z_][a-z0-9_-]{0,31}$`, validName},
		{"safeValue", `^[A-Za-z0-9._@:+-]*$`, safeValue},
		{"merge.ValidKey", `^[A-Za-z_][A-Za-z0-9_]*$`, merge.ValidKey},
	} {
		re := regexp.MustCompile(c.re)
		for _, in := range inputs {
			if got, want := c.fn(in), re.MatchString(in); got != want {
				t.Errorf("%s(%q) = %v, the pattern %s says %v", c.name, in, got, c.re, want)
			}
		}
	}
}
