//go:build integration

package integration

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// SIGKILL of the runner at every phase: the delays sweep from before the
// sync, through the sync and the container start, to the running agent.
// After each kill, the next run must succeed and leave nothing behind:
// no container state, cgroup, mount or env file, no orphaned process.
func TestSIGKILLAtEveryPhase(t *testing.T) {
	f := setup(t)
	dir := f.freshConfig(t)
	for i := 0; i < 100; i++ {
		f.put(t, dir, fmt.Sprintf("skills/s%02d/SKILL.md", i), fmt.Sprintf("skill %d\n", i))
	}
	for delay := time.Duration(0); delay <= 120*time.Millisecond; delay += 8 * time.Millisecond {
		cmd := f.runnerCmd("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		cmd.Wait()
		if r := f.run(t, aliceName, f.project, "", "sh", "-c", "cat ~/.pi/agent/skills/s42/SKILL.md"); r.code != 0 || r.stdout != "skill 42\n" {
			t.Fatalf("after SIGKILL at %v, the next run: %s", delay, r)
		}
		if l := leftovers(t); len(l) != 0 {
			t.Fatalf("after SIGKILL at %v and the next run, left behind: %v", delay, l)
		}
		if agentRunning(f, "sleep") {
			t.Fatalf("after SIGKILL at %v and the next run, the orphaned agent still runs", delay)
		}
	}
}

// Two users at once, several sessions each: every run succeeds and sees
// only its own user's runtime.
func TestTwoUsersAtOnce(t *testing.T) {
	f := setup(t)
	f.freshConfig(t)
	bobProject := f.bob.Home + "/proj"
	if err := writeOwned(bobProject+"/README", "bob's\n", 0o644, f.bob); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bobProject) })
	if err := f.writeConfig(`{"stateDir": %q, "agent": {"command": ["/usr/bin/env"]},
		"hostUsers": {%q: {"projectRoots": ["~/proj"]}, %q: {"projectRoots": ["~/proj"]}}}`, f.stateDir, aliceName, bobName); err != nil {
		t.Fatal(err)
	}
	defer f.restoreConfig(t)
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := 0; i < 4; i++ {
		for _, u := range []struct{ name, dir string }{{aliceName, f.project}, {bobName, bobProject}} {
			wg.Add(1)
			go func(name, dir string) {
				defer wg.Done()
				r := f.run(t, name, dir, "", "sh", "-c", "echo $PWD; touch ~/.pi/agent/mark-"+name+"; ls ~/.pi/agent")
				if r.code != 0 || r.stdout[:len(dir)] != dir {
					errs <- fmt.Sprintf("%s: %s", name, r)
				}
			}(u.name, u.dir)
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if _, err := os.Stat(f.stateDir + "/users/" + bobName + "/agent/mark-" + aliceName); err == nil {
		t.Error("alice's session wrote into bob's runtime")
	}
	os.RemoveAll(f.stateDir + "/users/" + bobName)
}
