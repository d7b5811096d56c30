package sandbox

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The resolve helper runs as the caller, who can ptrace it and make it say
// anything. A helper that lies is played here on the other end of the
// socket: whatever it answers, the runner decides from its own working
// directory and from what the descriptors really are.
func TestResolveProjectDistrustsTheHelper(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "proj")
	cwd := filepath.Join(root, "sub")
	other := filepath.Join(base, "other")
	file := filepath.Join(root, "file")
	for _, d := range []string{cwd, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(cwd)
	caller := Account{Name: "alice", UID: 1000, GID: 1000, Home: base}

	for _, tc := range []struct {
		name   string
		scope  string
		reply  string
		fds    []string // paths the lying helper opens and sends
		policy bool     // a refusal (PolicyError) rather than a helper error
		want   string
	}{
		{"root swapped for a directory without the cwd", "root", `{"rootErr":[""],"mountRoot":0}`, []string{other, other}, true, "not inside an allowed project root"},
		{"mount outside the root", "project", `{"rootErr":[""],"mountRoot":0}`, []string{root, other}, false, "does not contain the working directory"},
		{"mount above the cwd's root", "project", `{"rootErr":[""],"mountRoot":0}`, []string{cwd, root}, false, "does not contain the working directory"},
		{"scope root, mount below it", "root", `{"rootErr":[""],"mountRoot":0}`, []string{root, cwd}, false, "other than the root"},
		{"mount is a file", "project", `{"rootErr":[""],"mountRoot":0}`, []string{root, file}, false, "does not contain the working directory"},
		{"mount root out of range", "root", `{"rootErr":[""],"mountRoot":7}`, []string{root, root}, true, "not inside an allowed project root"},
		{"negative mount root", "root", `{"rootErr":[""],"mountRoot":-5}`, []string{root, root}, true, "not inside an allowed project root"},
		{"more descriptors than roots", "root", `{"rootErr":[""],"mountRoot":0}`, []string{root, root, root}, false, "too many descriptors"},
		{"fewer descriptors than it claims", "root", `{"rootErr":["",""],"mountRoot":0}`, []string{root}, false, "too few descriptors"},
		{"not JSON", "root", `{"rootErr":`, []string{root, root}, false, "resolve helper"},
		{"no answer", "root", ``, nil, false, "without an answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runner, helper, err := CallerSocket()
			if err != nil {
				t.Fatal(err)
			}
			defer runner.Close()
			done := make(chan error, 1)
			go func() {
				defer helper.Close()
				if _, _, err := recvMsg(helper, 0); err != nil {
					done <- err
					return
				}
				var fds []int
				for _, p := range tc.fds {
					f, err := os.Open(p)
					if err != nil {
						done <- err
						return
					}
					defer f.Close()
					fds = append(fds, int(f.Fd()))
				}
				if tc.reply == "" {
					done <- nil // hang up
					return
				}
				done <- sendMsg(helper, []byte(tc.reply), fds)
			}()
			roots := []string{root}
			if strings.Contains(tc.reply, `["",""]`) {
				roots = []string{root, other}
			}
			project, err := ResolveProject(runner, caller, roots, tc.scope)
			if herr := <-done; herr != nil {
				t.Fatalf("the lying helper itself failed: %v", herr)
			}
			if err == nil {
				project.Close()
				t.Fatalf("accepted: mounts %s", project.Path)
			}
			var pe *PolicyError
			if errors.As(err, &pe) != tc.policy || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v (refusal: %v), want %q (refusal: %v)", err, errors.As(err, &pe), tc.want, tc.policy)
			}
		})
	}

	// An honest answer is taken, from the descriptors: the mount is the
	// directory sent, whatever name it has by now.
	t.Run("honest", func(t *testing.T) {
		runner, helper, err := CallerSocket()
		if err != nil {
			t.Fatal(err)
		}
		defer runner.Close()
		go func() {
			defer helper.Close()
			recvMsg(helper, 0)
			r, _ := os.Open(root)
			defer r.Close()
			reply, _ := json.Marshal(resolveReply{RootErr: []string{""}, MountRoot: 0})
			sendMsg(helper, reply, []int{int(r.Fd()), int(r.Fd())})
		}()
		project, err := ResolveProject(runner, caller, []string{root}, "root")
		if err != nil {
			t.Fatal(err)
		}
		defer project.Close()
		if project.Path != root || project.Cwd != cwd || project.Root != root {
			t.Errorf("project %+v, want root and mount %s, cwd %s", project, root, cwd)
		}
	})
}
