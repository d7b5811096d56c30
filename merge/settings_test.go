package merge

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func obj(t testing.TB, s string) map[string]any {
	t.Helper()
	if s == "" {
		return nil
	}
	m, err := ParseSettings([]byte(s), "test")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDeepMerge(t *testing.T) {
	got := DeepMerge(obj(t, `{"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"k": 1}}`), obj(t, `{"a": {"y": [3], "z": true}, "b": {"now": "object"}, "c": null}`))
	want := obj(t, `{"a": {"x": 1, "y": [3], "z": true}, "b": {"now": "object"}, "c": null}`)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// Each layer's precedence, as the README documents it.
func TestMergeSettingsLayers(t *testing.T) {
	for _, tc := range []struct {
		name                         string
		host, managed, runtime, base string
		want                         string
	}{
		{"first sync: host then managed", `{"theme": "dark", "defaultModel": "host-model"}`, `{"defaultModel": "managed"}`, `{}`, ``,
			`{"theme": "dark", "defaultModel": "managed"}`},
		{"managed always wins, even over pi", `{}`, `{"defaultProvider": "corp"}`, `{"defaultProvider": "pi-chose"}`, `{"defaultProvider": "corp"}`,
			`{"defaultProvider": "corp"}`},
		{"host edit reaches the runtime", `{"theme": "light"}`, `{}`, `{"theme": "dark"}`, `{"theme": "dark"}`,
			`{"theme": "light"}`},
		{"pi's own key survives", `{"theme": "dark"}`, `{}`, `{"theme": "dark", "lastChangelog": "1.6"}`, `{"theme": "dark"}`,
			`{"theme": "dark", "lastChangelog": "1.6"}`},
		{"pi's change survives until the host changes", `{"theme": "dark"}`, `{}`, `{"theme": "solarized"}`, `{"theme": "dark"}`,
			`{"theme": "solarized"}`},
		{"key removed on the host is removed", `{}`, `{}`, `{"theme": "dark", "x": 1}`, `{"theme": "dark"}`,
			`{"x": 1}`},
		{"key dropped from managed falls back to the host", `{"model": "host"}`, `{}`, `{"model": "managed"}`, `{"model": "managed"}`,
			`{"model": "host"}`},
		{"nested objects merge per key", `{"tools": {"bash": true, "grep": false}}`, `{"tools": {"web": false}}`, `{"tools": {"bash": true, "grep": true, "web": false}, "pi": 1}`, `{"tools": {"bash": true, "grep": false, "web": false}}`,
			`{"tools": {"bash": true, "grep": true, "web": false}, "pi": 1}`},
		{"arrays replace", `{"list": [1, 2]}`, `{}`, `{"list": [9]}`, `{"list": [1]}`,
			`{"list": [1, 2]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := MergeSettings(obj(t, tc.host), obj(t, tc.managed), obj(t, tc.runtime), obj(t, tc.base))
			if want := obj(t, tc.want); !reflect.DeepEqual(s.Runtime, want) {
				t.Errorf("runtime = %v, want %v", s.Runtime, want)
			}
			if want := DeepMerge(obj(t, tc.host), obj(t, tc.managed)); !reflect.DeepEqual(s.Base, want) {
				t.Errorf("base = %v, want %v", s.Base, want)
			}
		})
	}
}

func TestParseSettingsErrorsNamePosition(t *testing.T) {
	_, err := ParseSettings([]byte("{\n  \"a\": 1,\n  oops\n}"), "/home/alice/.pi/agent/settings.json")
	if err == nil || !strings.Contains(err.Error(), "settings.json: invalid JSON at line 3") {
		t.Errorf("got %v", err)
	}
	for _, bad := range []string{`[1]`, `"s"`, `{} {}`} {
		if _, err := ParseSettings([]byte(bad), "x"); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func FuzzMerge3(f *testing.F) {
	f.Add(`{"a":1}`, `{"a":2,"b":{"c":1}}`, `{"a":1,"b":{"c":2}}`)
	f.Add(`{}`, `{"x":[1]}`, `{"y":{"z":null}}`)
	f.Fuzz(func(t *testing.T, bs, rs, us string) {
		var b, r, u map[string]any
		if json.Unmarshal([]byte(bs), &b) != nil || json.Unmarshal([]byte(rs), &r) != nil || json.Unmarshal([]byte(us), &u) != nil {
			return
		}
		if b == nil || r == nil || u == nil {
			return
		}
		// Nothing changed upstream: the runtime stays as pi left it.
		if got := Merge3(b, r, b); !reflect.DeepEqual(got, r) {
			t.Fatalf("upstream unchanged: got %v, want runtime %v", got, r)
		}
		// pi changed nothing: the runtime becomes upstream.
		if got := Merge3(b, b, u); !reflect.DeepEqual(got, u) {
			t.Fatalf("runtime unchanged: got %v, want upstream %v", got, u)
		}
		// Managed keys always win.
		s := MergeSettings(u, b, r, nil)
		for k, v := range b {
			if _, isMap := v.(map[string]any); !isMap && !reflect.DeepEqual(s.Runtime[k], v) {
				t.Fatalf("managed %q = %v lost: %v", k, v, s.Runtime[k])
			}
		}
	})
}
