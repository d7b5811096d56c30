package merge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvironmentLayers(t *testing.T) {
	dir := t.TempDir()
	f1 := filepath.Join(dir, "one.env")
	f2 := filepath.Join(dir, "two.env")
	os.WriteFile(f1, []byte("SHARED=from-file-1\nFILE1=x\n"), 0o600)
	os.WriteFile(f2, []byte("SHARED=from-file-2\n"), 0o600)
	host := []Var{{Key: "SHARED", Value: "host", Source: "h:1"}, {Key: "HOSTONLY", Value: "h", Source: "h:2"}, {Key: "PATH", Value: "/evil", Source: "h:3"}, {Key: "MANAGED", Value: "host-loses", Source: "h:4"}}
	vars, warnings, err := Environment(host, map[string]string{"MANAGED": "m", "SHARED": "managed"}, []string{f1, "-" + filepath.Join(dir, "missing.env"), f2})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var order []string
	for _, v := range vars {
		got[v.Key] = v.Value
		order = append(order, v.Key)
	}
	want := map[string]string{"SHARED": "from-file-2", "HOSTONLY": "h", "MANAGED": "m", "FILE1": "x"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["PATH"]; ok || len(warnings) != 1 || !strings.Contains(warnings[0], "PATH") {
		t.Errorf("reserved PATH from the host: vars %v warnings %v", got, warnings)
	}
	if strings.Join(order, ",") != "SHARED,HOSTONLY,MANAGED,FILE1" {
		t.Errorf("order %v", order)
	}
}

func TestEnvironmentFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Environment(nil, nil, []string{filepath.Join(dir, "missing.env")}); err == nil {
		t.Error("a missing required file was accepted")
	}
	bad := filepath.Join(dir, "bad.env")
	os.WriteFile(bad, []byte("OK=1\nHOME=/x\n"), 0o600)
	if _, _, err := Environment(nil, nil, []string{bad}); err == nil || !strings.Contains(err.Error(), "bad.env:2") {
		t.Errorf("reserved name in a file: %v", err)
	}
}
