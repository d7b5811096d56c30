package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	// Registers the device cgroup controller code libcontainer needs to
	// apply the device rules.
	_ "github.com/opencontainers/cgroups/devices"

	"github.com/m3ta/pi-agent/internal/trace"
	"github.com/m3ta/pi-agent/rootfs"
	"github.com/m3ta/pi-agent/sandbox"
)

// Backend runs Plans with libcontainer. Its directories live under RunDir
// (/run/pi-agent), apart from the runner binary, so that libcontainer can
// use its cheap read-only view of the binary instead of copying it.
type Backend struct {
	RunDir string
	// RootfsIdle is how long gc keeps a shared rootfs that no run uses
	// (0: gc removes every unused one).
	RootfsIdle time.Duration
}

// Name implements sandbox.Backend.
func (b *Backend) Name() string { return sandbox.BackendOCI }

func (b *Backend) stateRoot() string       { return filepath.Join(b.RunDir, "oci") }
func (b *Backend) runRoot() string         { return filepath.Join(b.RunDir, "runs") }
func (b *Backend) runDir(id string) string { return filepath.Join(b.runRoot(), id) }

// ownerLabel is the annotation that names the runner process (pid and start
// time) owning a container; gc removes containers whose owner is gone.
const ownerLabel = "org.m3ta.pi-agent.owner"

// setup creates the run directories (root only) and makes the one that
// holds the project mounts a private mount point.
func (b *Backend) setup() error {
	for _, d := range []string{b.RunDir, b.stateRoot(), b.runRoot()} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return sandbox.MakePrivateMount(b.runRoot())
}

// Run implements sandbox.Backend.
func (b *Backend) Run(ctx context.Context, p *sandbox.Plan, stdio sandbox.Stdio) (code int, retErr error) {
	if err := b.setup(); err != nil {
		return -1, err
	}
	owner, err := sandbox.SelfOwner()
	if err != nil {
		return -1, err
	}
	dir, err := sandbox.NewRunDir(b.runRoot(), p.ID, owner)
	if err != nil {
		return -1, err
	}
	// Once the agent has exited, the container and the run dir are
	// removed side by side: neither needs the other. While something may
	// still run in the container, the container goes first.
	var (
		ctr        *libcontainer.Container
		stopped    bool
		rootfsLock *os.File // shared lock on a shared rootfs
	)
	defer func() {
		defer rootfsLock.Close() // once the container is gone
		var wg sync.WaitGroup
		var destroyErr error
		if ctr != nil {
			if stopped {
				wg.Go(func() { destroyErr = destroy(ctr) })
			} else {
				destroyErr = destroy(ctr)
			}
		}
		removeErr := sandbox.RemoveRunDir(dir)
		wg.Wait()
		trace.Mark("container and run dir removed")
		if retErr == nil {
			retErr = destroyErr
		}
		if removeErr != nil && retErr == nil {
			retErr = fmt.Errorf("remove %s: %w", dir, removeErr)
		}
	}()
	trace.Mark("run dir")
	o := Options{
		Rootfs:        filepath.Join(dir, "rootfs"),
		ProjectSource: filepath.Join(dir, "project"),
		CgroupsPath:   "/pi-agent/" + p.ID,
		Annotations:   map[string]string{ownerLabel: owner},
	}
	spec, err := Spec(p, o)
	if err != nil {
		return -1, err
	}
	if err := os.Mkdir(o.ProjectSource, 0o700); err != nil {
		return -1, err
	}
	// The rootfs is the shared one of this layout, or, where it cannot be
	// shared, a private one in the run dir.
	files := Layout(p, o).Files()
	shared, lock, err := b.sharedRootfs(files, spec.Mounts)
	switch {
	case err == nil:
		spec.Root.Path, rootfsLock = shared, lock
	case errors.Is(err, errNoShare):
		if err := os.Mkdir(o.Rootfs, 0o755); err != nil {
			return -1, err
		}
		if err := rootfs.Populate(o.Rootfs, files); err != nil {
			return -1, fmt.Errorf("populate rootfs: %w", err)
		}
	default:
		return -1, err
	}
	trace.Mark("spec, rootfs")
	if err := sandbox.MountProject(p, o.ProjectSource); err != nil {
		return -1, err
	}
	trace.Mark("idmap mount")
	config, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: p.ID, Spec: spec})
	if err != nil {
		return -1, fmt.Errorf("convert spec: %w", err)
	}
	ctr, err = libcontainer.Create(b.stateRoot(), p.ID, config)
	if err != nil {
		ctr = nil
		return -1, fmt.Errorf("create container: %w", err)
	}
	trace.Mark("libcontainer create")

	proc, err := newProcess(spec.Process)
	if err != nil {
		return -1, err
	}
	var term *ttyRelay
	if p.TTY {
		term, err = newTTYRelay(proc, stdio)
		if err != nil {
			return -1, err
		}
		defer term.Close()
	} else {
		proc.Stdin, proc.Stdout, proc.Stderr = stdio.In, hideTTY(stdio.Out), hideTTY(stdio.Err)
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
	defer signal.Stop(sigs)

	if err := ctr.Run(proc); err != nil {
		return -1, fmt.Errorf("start container: %w", err)
	}
	trace.Mark("libcontainer run")
	if term != nil {
		if err := term.Start(); err != nil {
			_ = proc.Signal(unix.SIGKILL)
			_, _ = proc.Wait()
			return -1, err
		}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == unix.SIGWINCH {
					if term != nil {
						term.Resize()
					}
					continue
				}
				_ = proc.Signal(s)
			case <-ctx.Done():
				_ = proc.Signal(unix.SIGKILL)
				return
			case <-done:
				return
			}
		}
	}()
	state, waitErr := proc.Wait()
	trace.Mark("agent exited")
	close(done)
	// PID 1 has exited: the kernel has killed and reaped the rest of the
	// container's pid namespace.
	stopped = state != nil
	if term != nil {
		term.Drain()
	}
	if state == nil {
		return -1, fmt.Errorf("wait for agent: %w", waitErr)
	}
	return exitCode(state), nil
}

func exitCode(state *os.ProcessState) int {
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok {
		return state.ExitCode()
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// newProcess turns the spec's process into libcontainer's, as runc does.
func newProcess(sp *specs.Process) (*libcontainer.Process, error) {
	p := &libcontainer.Process{
		Args:             sp.Args,
		Env:              sp.Env,
		UID:              int(sp.User.UID),
		GID:              int(sp.User.GID),
		AdditionalGroups: []int{},
		Cwd:              sp.Cwd,
		Init:             true,
		LogLevel:         trace.LogLevel,
	}
	for _, rl := range sp.Rlimits {
		t, ok := rlimitTypes[rl.Type]
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		p.Rlimits = append(p.Rlimits, configs.Rlimit{Type: t, Hard: rl.Hard, Soft: rl.Soft})
	}
	return p, nil
}

var rlimitTypes = map[string]int{
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE,
	"RLIMIT_CORE":   unix.RLIMIT_CORE,
}

// hideTTY keeps a host terminal out of the container: a terminal on stdout
// or stderr would let the agent issue ioctls on the caller's tty. Such a
// writer is wrapped so that libcontainer hands the agent a pipe and copies.
func hideTTY(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok {
		if _, err := console.ConsoleFromFile(f); err == nil {
			return struct{ io.Writer }{f}
		}
	}
	return w
}

// destroy removes a container, killing what still runs in it.
func destroy(c *libcontainer.Container) error {
	if st, err := c.Status(); err == nil && st != libcontainer.Stopped {
		_ = c.Signal(unix.SIGKILL)
		for i := 0; i < 100; i++ {
			if st, err := c.Status(); err != nil || st == libcontainer.Stopped {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := c.Destroy(); err != nil {
		return fmt.Errorf("destroy container %s: %w", c.ID(), err)
	}
	return nil
}
