//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/m3ta/pi-agent/merge"
)

// The sync benchmarks run side by side with cp -a of the same tree:
//
//	go test -tags 'seccomp integration' -run XXX -bench 'Sync|CpA' -benchtime 5x ./integration/
//
// 10,000 files, 200 MB, in 100 directories, owned by the test user.
var (
	benchTreeOnce sync.Once
	benchTree     string
)

const benchFiles, benchSize = 10000, 20 << 10

func benchSetup(b *testing.B) (*fixture, string) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root: the sync reads as a test user and writes as pi-agent")
	}
	fxOnce.Do(func() { fx, fxErr = newFixture() })
	if fxErr != nil {
		b.Fatal(fxErr)
	}
	benchTreeOnce.Do(func() {
		benchTree = filepath.Join(fx.alice.Home, "bench-config")
		os.RemoveAll(benchTree)
		buf := make([]byte, benchSize)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for i := 0; i < benchFiles; i++ {
			p := filepath.Join(benchTree, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("f%05d", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			buf[0] = byte(i)
			os.WriteFile(p, buf, 0o644)
		}
		exec.Command("chown", "-R", fmt.Sprintf("%d:%d", fx.alice.UID, fx.alice.GID), benchTree).Run()
	})
	return fx, benchTree
}

func benchOptions(f *fixture, tree, userDir string) merge.Options {
	return merge.Options{
		Exe:        filepath.Join(filepath.Dir(f.runner), "pi-agent-helper"),
		Caller:     &syscall.Credential{Uid: uint32(f.alice.UID), Gid: uint32(f.alice.GID)},
		HostDir:    tree,
		UserDir:    userDir,
		RuntimeDir: filepath.Join(userDir, "agent"),
		AgentUID:   f.agent.UID,
		AgentGID:   f.agent.GID,
		Limits:     merge.Limits{MaxFile: 1 << 20, MaxTotal: 1 << 30, MaxEntries: 20000},
	}
}

func freshUserDir(b *testing.B, f *fixture) string {
	d, err := os.MkdirTemp(f.stateDir, "bench-")
	if err != nil {
		os.MkdirAll(f.stateDir, 0o755)
		if d, err = os.MkdirTemp(f.stateDir, "bench-"); err != nil {
			b.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(d, "agent"), 0o700)
	os.Chown(filepath.Join(d, "agent"), f.agent.UID, f.agent.GID)
	return d
}

// benchFresh times fn once per iteration on a fresh user dir. Dirty pages
// are written back before each iteration and, timed, after fn: both the
// sync and cp -a pay for getting their 200 MB to disk, which keeps the
// figures from depending on when the kernel's writeback happens to run.
func benchFresh(b *testing.B, f *fixture, fn func(dir string) error) {
	b.SetBytes(benchFiles * benchSize)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d := freshUserDir(b, f)
		exec.Command("sync").Run()
		b.StartTimer()
		if err := fn(d); err != nil {
			b.Fatal(err)
		}
		syscall.Sync()
		b.StopTimer()
		os.RemoveAll(d)
		b.StartTimer()
	}
}

func BenchmarkSyncFirst(b *testing.B) {
	f, tree := benchSetup(b)
	benchFresh(b, f, func(d string) error {
		_, err := merge.Sync(context.Background(), benchOptions(f, tree, d))
		return err
	})
}

func BenchmarkSyncUnchanged(b *testing.B) {
	f, tree := benchSetup(b)
	d := freshUserDir(b, f)
	defer os.RemoveAll(d)
	if _, err := merge.Sync(context.Background(), benchOptions(f, tree, d)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := merge.Sync(context.Background(), benchOptions(f, tree, d))
		if err != nil {
			b.Fatal(err)
		}
		if res.Written != 0 {
			b.Fatalf("unchanged resync wrote %d files", res.Written)
		}
	}
}

func BenchmarkCpA(b *testing.B) {
	f, tree := benchSetup(b)
	benchFresh(b, f, func(d string) error {
		if out, err := exec.Command("cp", "-a", tree, filepath.Join(d, "copy")).CombinedOutput(); err != nil {
			return fmt.Errorf("cp -a: %v %s", err, out)
		}
		return nil
	})
}
