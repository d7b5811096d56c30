//go:build integration

package integration

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/m3ta/pi-agent/internal/cgprime"
)

const sharedRootfs = "/run/pi-agent/rootfs"

// snapshotTree lists every entry below dir with its type, mode, owner,
// mtime and content hash.
func snapshotTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mtime := fi.ModTime().UnixNano()
		if p == dir {
			mtime = 0 // the root's mtime marks its last use
		}
		line := fmt.Sprintf("%s %v %d %d %d", strings.TrimPrefix(p, dir), fi.Mode(), statUID(fi), mtime, fi.Size())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// Runs of one project share one read-only rootfs. Sharing is only sound if
// no run leaves a trace in it: neither the runtime (mount points, device
// nodes) nor the agent, however it tries. Concurrent runs included.
func TestSharedRootfsStaysUntouched(t *testing.T) {
	f := setup(t)
	// Only this test's rootfs: gc removes every unused one first (others'
	// would go at some run's gc while this test looks at them).
	if r := f.exec(t, "/", "", f.runner, "gc"); r.code != 0 {
		t.Fatalf("gc: %s", r)
	}
	if r := f.run(t, aliceName, f.project, "", "true"); r.code != 0 {
		t.Fatalf("first run: %s", r)
	}
	entries, err := os.ReadDir(sharedRootfs)
	if err != nil || len(entries) != 1 {
		t.Fatalf("want one shared rootfs after a run: %d, %v", len(entries), err)
	}
	before := map[string][]string{}
	for _, e := range entries {
		before[e.Name()] = snapshotTree(t, filepath.Join(sharedRootfs, e.Name()))
	}

	attempts := `for p in / /etc /home /usr /tmp/../ /.pi-agent /proc/1/root/ /proc/self/root/etc; do
		touch "$p/x" 2>/dev/null && echo "WROTE $p"; mkdir "$p/d" 2>/dev/null && echo "MKDIR $p"; done
		echo hacked >> /etc/passwd 2>/dev/null && echo WROTE passwd
		ln -s /tmp /home/link 2>/dev/null && echo LINKED
		true`
	var wg sync.WaitGroup
	results := make([]result, 4)
	for i := range results {
		wg.Go(func() { results[i] = f.run(t, aliceName, f.project, "", "sh", "-c", attempts) })
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || strings.Contains(r.stdout, "WROTE") || strings.Contains(r.stdout, "MKDIR") || strings.Contains(r.stdout, "LINKED") {
			t.Errorf("run %d: %s", i, r)
		}
	}
	for name, snap := range before {
		after := snapshotTree(t, filepath.Join(sharedRootfs, name))
		if strings.Join(after, "\n") != strings.Join(snap, "\n") {
			t.Errorf("shared rootfs %s changed:\nbefore:\n%s\nafter:\n%s", name, strings.Join(snap, "\n"), strings.Join(after, "\n"))
		}
	}
	if st, err := os.Stat(sharedRootfs); err != nil || st.Mode().Perm() != 0o700 || statUID(st) != 0 {
		t.Errorf("%s must be root's, 0700: %v %v", sharedRootfs, st.Mode(), err)
	}
}

// gc removes a shared rootfs once no run holds it, and never one in use.
func TestSharedRootfsGC(t *testing.T) {
	f := setup(t)
	names := func() []string {
		var n []string
		entries, _ := os.ReadDir(sharedRootfs)
		for _, e := range entries {
			n = append(n, e.Name())
		}
		return n
	}
	cmd := f.runnerCmd("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent to start", func() bool { return agentRunning(f, "sleep") })
	inUse := names()
	if len(inUse) == 0 {
		t.Fatal("no shared rootfs while a run is alive")
	}
	if r := f.exec(t, "/", "", f.runner, "gc"); r.code != 0 {
		t.Fatalf("gc: %s", r)
	}
	if got := names(); !slices.Equal(got, inUse) {
		t.Errorf("gc touched the rootfs of a live run: %v, was %v", got, inUse)
	}
	if r := f.run(t, aliceName, f.project, "", "sh", "-c", "test -e /etc/passwd && test -d /usr/bin"); r.code != 0 {
		t.Errorf("a second run beside the first: %s", r)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	if r := f.exec(t, "/", "", f.runner, "gc"); r.code != 0 {
		t.Fatalf("gc: %s", r)
	}
	if left := names(); len(left) != 0 {
		t.Errorf("rootfs left after gc with no run alive: %v", left)
	}
	if r := f.run(t, aliceName, f.project, "", "true"); r.code != 0 {
		t.Errorf("run after gc: %s", r)
	}
}

// run --print-spec writes the very sandbox a run starts, so that stock runc
// runs it (the benchmarks compare on it): the agent's identity, the
// project writable and idmapped, the caller's ~/.ssh absent, the rootfs
// read-only. Through sudo it is refused (sudo_test.go).
func TestPrintSpecBundleRunsWithRunc(t *testing.T) {
	f := setup(t)
	requireTool(t, "runc", "runs the printed bundle")
	bundle := filepath.Join(t.TempDir(), "bundle")
	probe := fmt.Sprintf(`test "$(id -u)" = %d && touch %s/from-runc && test ! -e %s/.ssh && ! touch /etc/x 2>/dev/null && echo BUNDLE-OK`, f.agent.UID, f.project, f.alice.Home)
	r := f.exec(t, f.project, "", f.runner, "run", "--config", f.config, "--as-user", aliceName, "--print-spec", bundle, "--", "sh", "-c", probe)
	if r.code != 0 {
		t.Fatalf("print-spec: %s", r)
	}
	defer func() {
		_ = exec.Command("umount", filepath.Join(bundle, "project")).Run()
		_ = exec.Command("runc", "delete", "-f", "pit-print-spec").Run()
	}()
	if st, err := os.Stat(filepath.Join(bundle, "config.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config.json: %v %v", st, err)
	}
	r = f.exec(t, f.project, "", "runc", "run", "--bundle", bundle, "pit-print-spec")
	if r.code != 0 || !strings.Contains(r.stdout, "BUNDLE-OK") {
		t.Fatalf("runc run of the printed bundle: %s", r)
	}
	created := filepath.Join(f.project, "from-runc")
	defer os.Remove(created)
	if st, err := os.Stat(created); err != nil || statUID(st) != f.alice.UID {
		t.Errorf("a file the agent made under runc: %v, want it owned by the caller (%d)", err, f.alice.UID)
	}
}

// The runner's cgroup priming is a move into the cgroup it is already in:
// it works here (a cgroup2 hierarchy, hybrid or unified) and changes
// nothing.
func TestPrimeCgroupMoveChangesNothing(t *testing.T) {
	setup(t)
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if err := cgprime.Prime(); err != nil {
		t.Fatalf("prime: %v", err)
	}
	after, _ := os.ReadFile("/proc/self/cgroup")
	if string(after) != string(before) {
		t.Errorf("the prime moved the process:\n%s\nnow:\n%s", before, after)
	}
}
