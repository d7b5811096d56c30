package cgprime

import "testing"

func TestUnifiedCgroup(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"0::/\n", ".", true},
		{"12:pids:/user.slice\n0::/user.slice/user-1000.slice/session-3.scope\n", "user.slice/user-1000.slice/session-3.scope", true},
		{"9:name=systemd:/\n8:pids:/\n", "", false},
		{"0::/gone (deleted)\n", "", false},
		{"0::/../../etc\n", "", false},
		{"0::/a/../../b\n", "", false},
		{"0::/a/./b//\n", "a/b", true},
		{"", "", false},
	} {
		got, ok := unifiedCgroup(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("unifiedCgroup(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
