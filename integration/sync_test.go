//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hostConfig returns alice's pi config dir, emptied, and clears her runtime
// state, so that each test starts from a first sync.
func (f *fixture) freshConfig(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(f.alice.Home, ".pi", "agent")
	if err := os.RemoveAll(filepath.Join(f.alice.Home, ".pi")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(f.stateDir, "users", aliceName)); err != nil {
		t.Fatal(err)
	}
	if err := writeOwned(filepath.Join(dir, ".keep"), "", 0o644, f.alice); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, ".keep"))
	return dir
}

func (f *fixture) runtimeDir() string { return filepath.Join(f.stateDir, "users", aliceName, "agent") }

func (f *fixture) put(t *testing.T, dir, rel, data string) {
	t.Helper()
	if err := writeOwned(filepath.Join(dir, rel), data, 0o644, f.alice); err != nil {
		t.Fatal(err)
	}
}

func readRuntime(t *testing.T, f *fixture, rel string) (string, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(f.runtimeDir(), rel))
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(data), true
}

// runtimeLeaks walks the runtime and reports any file holding marker, and
// any symlink (the sync only ever creates files and directories).
func runtimeLeaks(t *testing.T, f *fixture, markers ...string) []string {
	t.Helper()
	var bad []string
	filepath.Walk(f.runtimeDir(), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			bad = append(bad, "symlink "+p)
		}
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			for _, m := range markers {
				if strings.Contains(string(data), m) {
					bad = append(bad, p+" holds "+m)
				}
			}
		}
		return nil
	})
	return bad
}

// Links in the host config are followed with the caller's rights: links to
// files the caller cannot read leak nothing, and the runner's own
// environment never appears.
func TestSyncLinksCannotLeak(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	f.put(t, dir, "AGENTS.md", "ok\n")
	for name, target := range map[string]string{
		"shadow":  "/etc/shadow",
		"bob":     filepath.Join(f.bob.Home, "open-but-hidden"),
		"environ": "/proc/self/environ",
		"rootdir": "/root",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		os.Lchown(filepath.Join(dir, name), f.alice.UID, f.alice.GID)
	}
	cmd := f.runnerCmd("true")
	cmd.Env = append(os.Environ(), "RUNNER_ONLY_MARKER=runner-env-7c1e")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if got, _ := readRuntime(t, f, "AGENTS.md"); got != "ok\n" {
		t.Errorf("AGENTS.md = %q", got)
	}
	shadow, _ := os.ReadFile("/etc/shadow")
	root := strings.SplitN(string(shadow), "\n", 2)[0]
	if bad := runtimeLeaks(t, f, secret, "runner-env-7c1e", "SUDO_", root); len(bad) > 0 {
		t.Errorf("leaked into the runtime: %v", bad)
	}
	if _, ok := readRuntime(t, f, "shadow"); ok {
		t.Error("a runtime copy of /etc/shadow exists")
	}
	if !strings.Contains(string(out), "shadow") || !strings.Contains(string(out), "permission denied") {
		t.Errorf("no warning for the unreadable link:\n%s", out)
	}
}

// FIFOs are skipped (and do not hang the sync); odd names survive byte for
// byte; an oversized sparse file stops the sync with an error naming it and
// leaves the runtime as it was.
func TestSyncHostileEntries(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	f.put(t, dir, "..dots", "dots\n")
	f.put(t, dir, "new\nline", "nl\n")
	f.put(t, dir, "bad\xff\xfeutf8", "bytes\n")
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(dir, "pipe"), f.alice.UID, f.alice.GID)
	start := time.Now()
	r := f.run(t, aliceName, f.project, "", "true")
	if r.code != 0 || time.Since(start) > 20*time.Second {
		t.Fatalf("run: %s (after %v)", r, time.Since(start))
	}
	for rel, want := range map[string]string{"..dots": "dots\n", "new\nline": "nl\n", "bad\xff\xfeutf8": "bytes\n"} {
		if got, ok := readRuntime(t, f, rel); !ok || got != want {
			t.Errorf("%q = %q, %v", rel, got, ok)
		}
	}
	if _, err := os.Lstat(filepath.Join(f.runtimeDir(), "pipe")); err == nil {
		t.Error("the FIFO reached the runtime")
	}
	if !strings.Contains(r.stderr, "pipe: not a regular file") {
		t.Errorf("no warning for the FIFO: %s", r.stderr)
	}

	// 10 GB, sparse: over the per-file limit.
	big := filepath.Join(dir, "huge.bin")
	fh, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	fh.Truncate(10 << 30)
	fh.Close()
	os.Chown(big, f.alice.UID, f.alice.GID)
	f.put(t, dir, "..dots", "changed\n")
	r = f.run(t, aliceName, f.project, "", "sh", "-c", "echo STARTED")
	if r.code != 125 || strings.Contains(r.stdout, "STARTED") || !strings.Contains(r.stderr, "huge.bin") {
		t.Errorf("want a refusal naming huge.bin: %s", r)
	}
	if got, _ := readRuntime(t, f, "..dots"); got != "dots\n" {
		t.Errorf("a failed sync changed the runtime: %q", got)
	}
}

// The three-way rules: host edits arrive, pi's edits survive until the host
// changes, host deletions delete unless pi changed the file, runtime-owned
// paths are never touched.
func TestSyncThreeWay(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	f.put(t, dir, "edited.md", "v1\n")
	f.put(t, dir, "auth.json", `{"token":"host-1"}`)
	f.put(t, dir, "deleted.md", "bye\n")
	f.put(t, dir, "pi-changed-then-deleted.md", "host\n")
	f.put(t, dir, "sessions/host-session.jsonl", "must not sync\n")
	if r := f.run(t, aliceName, f.project, "", "sh", "-c",
		`cd ~/.pi/agent && echo '{"token":"refreshed-by-pi"}' > auth.json && echo pi > pi-changed-then-deleted.md && mkdir -p sessions && echo mine > sessions/pi.jsonl`); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	if _, ok := readRuntime(t, f, "sessions/host-session.jsonl"); ok {
		t.Error("the host's sessions/ was synced")
	}
	f.put(t, dir, "edited.md", "v2\n")
	os.Remove(filepath.Join(dir, "deleted.md"))
	os.Remove(filepath.Join(dir, "pi-changed-then-deleted.md"))
	if r := f.run(t, aliceName, f.project, "", "true"); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	check := func(rel, want string, present bool) {
		t.Helper()
		got, ok := readRuntime(t, f, rel)
		if ok != present || got != want {
			t.Errorf("%s = %q (present %v), want %q (present %v)", rel, got, ok, want, present)
		}
	}
	check("edited.md", "v2\n", true)
	check("auth.json", "{\"token\":\"refreshed-by-pi\"}\n", true)
	check("deleted.md", "", false)
	check("pi-changed-then-deleted.md", "pi\n", true)
	check("sessions/pi.jsonl", "mine\n", true)
	// Now the host changes auth.json: the host copy wins.
	f.put(t, dir, "auth.json", `{"token":"host-2"}`)
	f.run(t, aliceName, f.project, "", "true")
	check("auth.json", `{"token":"host-2"}`, true)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(f.runtimeDir(), "edited.md"), &st); err != nil || int(st.Uid) != f.agent.UID || st.Mode&0o022 != 0 {
		t.Errorf("runtime file owner %d mode %o, want the agent's and no group/other write", st.Uid, st.Mode&0o7777)
	}
}

// settings.json: managed keys win, host edits arrive, pi's keys survive, a
// malformed host file stops the run with its position and changes nothing.
func TestSyncSettingsAndEnvironment(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	envFile := filepath.Join(f.base, "etc", "secrets.env")
	if err := os.WriteFile(envFile, []byte("FROM_FILE=file\nSHARED=file-wins\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.writeConfig(`{"stateDir": %q, "agent": {"command": ["/usr/bin/env"]}, "hostUsers": {%q: {"projectRoots": ["~/proj"]}},
		"settings": {"defaultProvider": "managed-provider", "nested": {"managed": true}},
		"environment": {"SHARED": "managed", "MANAGED_ONLY": "m"},
		"environmentFiles": [%q, "-/nonexistent/optional.env"]}`, f.stateDir, aliceName, envFile); err != nil {
		t.Fatal(err)
	}
	defer f.restoreConfig(t)
	f.put(t, dir, "settings.json", `{"defaultProvider": "host-provider", "theme": "dark", "nested": {"host": 1}}`)
	f.put(t, dir, ".env", "HOST_ONLY=h\nSHARED=host\nPATH=/evil\n")
	r := f.run(t, aliceName, f.project, "", "sh", "-c", "cat ~/.pi/agent/settings.json; echo; env")
	if r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	for _, want := range []string{`"defaultProvider": "managed-provider"`, `"theme": "dark"`, `"host": 1`, `"managed": true`,
		"HOST_ONLY=h", "MANAGED_ONLY=m", "FROM_FILE=file", "SHARED=file-wins"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("missing %q in:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "PATH=/evil") || !strings.Contains(r.stderr, "PATH is set by the runner") {
		t.Errorf("reserved PATH from the host .env: %s", r)
	}
	if _, ok := readRuntime(t, f, ".env"); ok {
		t.Error("the host .env was copied into the runtime as a file")
	}
	// pi writes a key of its own; the host changes theme; both survive.
	f.run(t, aliceName, f.project, "", "sh", "-c", `cd ~/.pi/agent && sed -i 's/"theme"/"piKey": 42, "theme"/' settings.json`)
	f.put(t, dir, "settings.json", `{"defaultProvider": "host-provider", "theme": "light", "nested": {"host": 1}}`)
	f.run(t, aliceName, f.project, "", "true")
	got, _ := readRuntime(t, f, "settings.json")
	for _, want := range []string{`"piKey": 42`, `"theme": "light"`, `"defaultProvider": "managed-provider"`} {
		if !strings.Contains(got, want) {
			t.Errorf("after pi's and the host's edits, %q lacks %s", got, want)
		}
	}
	// Malformed host settings: error with position, runtime unchanged.
	f.put(t, dir, "settings.json", "{\n  \"theme\": \"light\",\n  oops\n}")
	r = f.run(t, aliceName, f.project, "", "sh", "-c", "echo STARTED")
	if r.code != 125 || strings.Contains(r.stdout, "STARTED") || !strings.Contains(r.stderr, "settings.json: invalid JSON at line 3") {
		t.Errorf("malformed host settings: %s", r)
	}
	if after, _ := readRuntime(t, f, "settings.json"); after != got {
		t.Errorf("a failed sync changed the runtime settings")
	}
}

// The agent owns its runtime dir and can plant links there; the next sync
// must not write through them.
func TestSyncDoesNotFollowLinksPlantedInTheRuntime(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	f.put(t, dir, "skills/demo/SKILL.md", "v1\n")
	f.put(t, dir, "settings.json", `{"a": 1}`)
	f.run(t, aliceName, f.project, "", "true")
	target := filepath.Join(f.base, "victim")
	os.MkdirAll(target, 0o755)
	os.WriteFile(filepath.Join(target, "passwd"), []byte("root's\n"), 0o644)
	// Done as root to stand for anything the agent could do to its dir.
	rt := f.runtimeDir()
	os.RemoveAll(filepath.Join(rt, "skills"))
	os.Symlink(target, filepath.Join(rt, "skills"))
	os.Remove(filepath.Join(rt, "settings.json"))
	os.Symlink(filepath.Join(target, "passwd"), filepath.Join(rt, "settings.json"))
	f.put(t, dir, "skills/demo/SKILL.md", "v2\n")
	f.put(t, dir, "settings.json", `{"a": 2}`)
	f.run(t, aliceName, f.project, "", "true")
	if data, _ := os.ReadFile(filepath.Join(target, "passwd")); string(data) != "root's\n" {
		t.Errorf("the sync wrote through a planted link: %q", data)
	}
	if _, err := os.Stat(filepath.Join(target, "demo")); err == nil {
		t.Error("the sync created a directory through a planted link")
	}
}

// Home Manager renders every file as a link into a read-only store.
func TestSyncHomeManagerStyle(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	store := filepath.Join(f.base, "nix-store", "abc-pi-config")
	for rel, data := range map[string]string{"AGENTS.md": "hm agents\n", "prompts/review.md": "review\n", "settings.json": `{"theme": "hm"}`} {
		p := filepath.Join(store, rel)
		os.MkdirAll(filepath.Dir(p), 0o555)
		os.WriteFile(p, []byte(data), 0o444)
		os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755)
		os.Symlink(p, filepath.Join(dir, rel))
		os.Lchown(filepath.Join(dir, rel), f.alice.UID, f.alice.GID)
	}
	os.Chmod(filepath.Join(store, "prompts"), 0o555)
	r := f.run(t, aliceName, f.project, "", "sh", "-c", "cat ~/.pi/agent/AGENTS.md ~/.pi/agent/prompts/review.md ~/.pi/agent/settings.json")
	if r.code != 0 || !strings.Contains(r.stdout, "hm agents") || !strings.Contains(r.stdout, "review") || !strings.Contains(r.stdout, `"theme": "hm"`) {
		t.Errorf("Home Manager style config: %s", r)
	}
	if bad := runtimeLeaks(t, f); len(bad) > 0 {
		t.Errorf("%v", bad)
	}
	// The store copy is read-only; the runtime copy belongs to the agent.
	if fi, err := os.Stat(filepath.Join(f.runtimeDir(), "AGENTS.md")); err != nil || fi.Mode().Perm()&0o200 == 0 {
		t.Errorf("runtime copy should be writable by the agent: %v %v", fi.Mode(), err)
	}
}

// Eight runs of one user at once: all succeed and the runtime matches.
func TestSyncConcurrentRuns(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	for i := 0; i < 200; i++ {
		f.put(t, dir, fmt.Sprintf("skills/s%03d/SKILL.md", i), fmt.Sprintf("skill %d\n", i))
	}
	var wg sync.WaitGroup
	results := make([]result, 8)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = f.run(t, aliceName, f.project, "", "sh", "-c", "ls ~/.pi/agent/skills | wc -l")
		}(i)
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || strings.TrimSpace(r.stdout) != "200" {
			t.Errorf("run %d: %s", i, r)
		}
	}
	for i := 0; i < 200; i += 37 {
		if got, _ := readRuntime(t, f, fmt.Sprintf("skills/s%03d/SKILL.md", i)); got != fmt.Sprintf("skill %d\n", i) {
			t.Errorf("skill %d = %q", i, got)
		}
	}
}

// SIGKILL during a sync: every runtime file is the old or the new version,
// never torn, and the next run completes the sync.
func TestSyncKilledMidwayIsNeverTorn(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	const n = 400
	body := func(v string, i int) string { return strings.Repeat(fmt.Sprintf("%s-%d;", v, i), 2000+i) }
	for i := 0; i < n; i++ {
		f.put(t, dir, fmt.Sprintf("d/f%03d", i), body("old", i))
	}
	if r := f.run(t, aliceName, f.project, "", "true"); r.code != 0 {
		t.Fatalf("first sync: %s", r)
	}
	for i := 0; i < n; i++ {
		f.put(t, dir, fmt.Sprintf("d/f%03d", i), body("new", i))
	}
	// Kill later and later, until a run got to the end: the kills land in
	// the read, the staging and the moves into place.
	mixed := false
	for delay := 10 * time.Millisecond; delay < 3*time.Second; delay += 15 * time.Millisecond {
		cmd := f.runnerCmd("true")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		cmd.Wait()
		fresh := 0
		for i := 0; i < n; i++ {
			got, ok := readRuntime(t, f, fmt.Sprintf("d/f%03d", i))
			if !ok || (got != body("old", i) && got != body("new", i)) {
				t.Fatalf("after SIGKILL at %v, d/f%03d is torn or missing (%d bytes)", delay, i, len(got))
			}
			if got == body("new", i) {
				fresh++
			}
		}
		t.Logf("SIGKILL after %v: %d of %d files new, the rest old, none torn", delay, fresh, n)
		mixed = mixed || (fresh > 0 && fresh < n)
		if fresh == n {
			break
		}
		// Back to the old versions, so that every kill starts alike.
		for i := 0; i < n; i++ {
			os.WriteFile(filepath.Join(f.runtimeDir(), fmt.Sprintf("d/f%03d", i)), []byte(body("old", i)), 0o644)
		}
		os.Remove(filepath.Join(f.stateDir, "users", aliceName, "manifest.json"))
	}
	if !mixed {
		t.Log("no kill landed while files were being moved into place (a short window); the others prove the read and staging phases")
	}
	if r := f.run(t, aliceName, f.project, "", "true"); r.code != 0 {
		t.Fatalf("sync after the kills: %s", r)
	}
	for i := 0; i < n; i++ {
		if got, _ := readRuntime(t, f, fmt.Sprintf("d/f%03d", i)); got != body("new", i) {
			t.Fatalf("d/f%03d not brought up to date", i)
		}
	}
}

// A directory link swapped back and forth during syncs, between a real
// directory and one the caller cannot read: root never reads through it.
func TestSyncSwappedDirectoryLink(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	real := filepath.Join(f.alice.Home, "real-skills")
	os.RemoveAll(real)
	f.put(t, f.alice.Home, "real-skills/s/SKILL.md", "fine\n")
	t.Cleanup(func() { os.RemoveAll(real) })
	link := filepath.Join(dir, "skills")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			target := real
			if i%2 == 1 {
				target = f.bob.Home
			}
			tmp := link + ".new"
			os.Remove(tmp)
			os.Symlink(target, tmp)
			os.Lchown(tmp, f.alice.UID, f.alice.GID)
			os.Rename(tmp, link)
		}
	}()
	for i := 0; i < 10; i++ {
		if r := f.run(t, aliceName, f.project, "", "true"); r.code != 0 {
			t.Errorf("run %d: %s", i, r)
		}
	}
	close(stop)
	<-done
	if bad := runtimeLeaks(t, f, secret); len(bad) > 0 {
		t.Errorf("leaked through a swapped link: %v", bad)
	}
}

// `config` shows the merged settings and the environment's names and
// sources, never a value, and changes nothing in the runtime.
func TestConfigCommandRedacts(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	f.put(t, dir, "settings.json", `{"theme": "dark"}`)
	f.put(t, dir, ".env", "HOST_TOKEN=host-secret-value\n")
	if err := f.writeConfig(`{"stateDir": %q, "agent": {"command": ["/usr/bin/env"]}, "hostUsers": {%q: {"projectRoots": ["~/proj"]}},
		"settings": {"defaultModel": "managed"}, "environment": {"API_KEY": "managed-secret-value"}}`, f.stateDir, aliceName); err != nil {
		t.Fatal(err)
	}
	defer f.restoreConfig(t)
	r := f.exec(t, f.project, "", f.runner, "config", "--config", f.config, "--as-user", aliceName)
	if r.code != 0 {
		t.Fatalf("config: %s", r)
	}
	for _, want := range []string{`"theme": "dark"`, `"defaultModel": "managed"`, `"key": "HOST_TOKEN"`, `"key": "API_KEY"`, `"source": "config environment"`, ".env:1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("config output lacks %s:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "secret-value") {
		t.Errorf("config printed a value:\n%s", r.stdout)
	}
	if _, ok := readRuntime(t, f, "settings.json"); ok {
		t.Error("config wrote the runtime")
	}
	// Through the wrapper and sudo: the caller's own view.
	withSudoRule(t, f)
	r = f.asUser(t, aliceName, f.project, nil, f.wrapper, "--show-config")
	if r.code != 0 || !strings.Contains(r.stdout, `"key": "HOST_TOKEN"`) || strings.Contains(r.stdout, "secret-value") {
		t.Errorf("pi --show-config: %s", r)
	}
}
