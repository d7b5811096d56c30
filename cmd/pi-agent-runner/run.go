package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/m3ta/pi-agent/internal/cgprime"
	"github.com/m3ta/pi-agent/internal/trace"
	"github.com/m3ta/pi-agent/merge"
	"github.com/m3ta/pi-agent/rootfs"
	"github.com/m3ta/pi-agent/sandbox"
	"github.com/m3ta/pi-agent/sandbox/oci"
	"github.com/m3ta/pi-agent/sandbox/systemd"
	"github.com/m3ta/pi-agent/seccomp"
)

const runUsage = `Usage: pi-agent-runner run [--backend oci|systemd|auto] -- [AGENT ARGS...]

Runs the agent command of the runner config, followed by AGENT ARGS, in a
sandbox in the current directory, which must lie inside one of the caller's
project roots. --config and --as-user are for root calling the runner
directly (tests, admins); through sudo they are refused.

Flags:
`

type runFlags struct {
	backend string
	config  string
	asUser  string
	// command replaces the agent command (doctor --prove runs its
	// canaries with it); never set from the command line.
	command []string
	// printSpec, when set, writes the OCI bundle to this directory instead
	// of running it (benchmarks run it with stock runc and crun).
	printSpec string
}

func cmdRun(args []string) int {
	var f runFlags
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.StringVar(&f.backend, "backend", "", "sandbox backend: oci, systemd or auto (default: the config's backend)")
	fs.StringVar(&f.config, "config", "", "runner config path (root only, not through sudo)")
	fs.StringVar(&f.asUser, "as-user", "", "host user to run for (root only, not through sudo)")
	fs.StringVar(&f.printSpec, "print-spec", "", "write what would run to this new directory instead of running it: the OCI bundle (oci), or the systemd-run command line and its env file (systemd); root only, not through sudo")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, runUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	agentArgs := fs.Args()
	if len(agentArgs) > 0 && agentArgs[0] == "--" {
		agentArgs = agentArgs[1:]
	}

	if f.printSpec == "" {
		// First thing: either backend's start moves a process into new
		// cgroups (see cgprime.Prime). A failure only costs time.
		go func() {
			err := cgprime.Prime()
			trace.Mark(fmt.Sprintf("primed (%v)", err))
		}()
	}
	req, err := prepare(f, agentArgs)
	if err != nil {
		var pe *sandbox.PolicyError
		if errors.As(err, &pe) {
			return fail("refused: %v", err)
		}
		return fail("%v", err)
	}
	defer req.project.Close()
	defer req.reader.Close()
	defer req.plan.UserNS.Close()
	if f.printSpec != "" {
		return printSpec(req, f.printSpec)
	}
	return execute(req, sandbox.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
}

// printSpec writes what a run would start, instead of running it, after
// the same config, policy, sync and merge as a run: the OCI bundle for the
// oci backend, the systemd-run command line for the systemd backend.
func printSpec(req *request, dir string) int {
	if err := req.syncRuntime(); err != nil {
		return fail("%v", err)
	}
	p := req.plan
	p.TTY = false
	backend := req.backend
	if a, ok := backend.(autoBackend); ok {
		backend = a.Backend
	}
	switch b := backend.(type) {
	case *oci.Backend:
		if err := oci.WriteBundle(p, dir); err != nil {
			return fail("write bundle: %v", err)
		}
		fmt.Printf("bundle written to %s; run it with: runc run --bundle %s ID\n", dir, dir)
	case *systemd.Backend:
		if err := b.WriteSpec(p, dir); err != nil {
			return fail("write unit: %v", err)
		}
		fmt.Printf("systemd-run command line written to %s/argv.json, with the env file it names\n", dir)
	default:
		return fail("--print-spec: backend %s has nothing to write", backend.Name())
	}
	fmt.Printf("the project is mounted at %s/project: umount it before removing %s\n", dir, dir)
	return 0
}

type request struct {
	plan    *sandbox.Plan
	backend sandbox.Backend
	project *sandbox.Project
	reader  *merge.Reader // started ahead for the sync, or nil
	cfg     *sandbox.Config
	host    sandbox.HostUser
}

// prepare performs every check and builds the Plan; it has no side effects
// on the host beyond the read-only resolution of the caller's paths.
func prepare(f runFlags, agentArgs []string) (_ *request, retErr error) {
	if f.printSpec != "" && (os.Getenv("SUDO_UID") != "" || os.Getenv("SUDO_USER") != "") {
		return nil, errors.New("--print-spec writes as root where it is told: it is for root calling the runner directly, and refused through sudo")
	}
	trace.Mark("main")
	caller, err := identify(f.config, f.asUser)
	if err != nil {
		return nil, err
	}
	helperBin, err := helper()
	if err != nil {
		return nil, err
	}
	// One helper runs as the caller, started as soon as the caller is
	// known: while it starts, the runner loads the config. It touches
	// nothing before its first request; a caller refused below has it
	// killed. It resolves the project, and, once the project is allowed,
	// reads the caller's config for the sync.
	runnerSock, helperSock, err := sandbox.CallerSocket()
	if err != nil {
		return nil, err
	}
	defer runnerSock.Close()
	reader, err := merge.StartReader(context.Background(), &merge.Options{Exe: helperBin, Caller: sandbox.HelperCredential(caller)}, helperSock)
	helperSock.Close()
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			reader.Close()
		}
	}()

	ss, err := beginFor(caller, f.config)
	if err != nil {
		return nil, err
	}
	trace.Mark("config, caller, agent")
	cfg, hostUser, agent := ss.cfg, ss.host, ss.agent
	backendName := cfg.Backend
	if f.backend != "" {
		backendName = f.backend
	}
	backend, err := newBackend(backendName)
	if err != nil {
		return nil, err
	}
	if err := seccomp.Validate(); err != nil {
		return nil, err
	}
	trace.Mark("backend, seccomp check")

	// The user namespace of the project's idmap is made in the background
	// too; the backend waits for it, if it is not ready by then.
	userNS := sandbox.MakeUserNS(sandbox.IDMap{DiskUID: caller.UID, DiskGID: caller.GID, AgentUID: agent.UID, AgentGID: agent.GID})
	defer func() {
		if retErr != nil {
			userNS.Close()
		}
	}()
	project, err := sandbox.ResolveProject(runnerSock, caller, hostUser.ProjectRoots, cfg.Sandbox.ProjectScope)
	if err != nil {
		var pe *sandbox.PolicyError
		if !errors.As(err, &pe) {
			if why := reader.Failure(); why != "" {
				err = fmt.Errorf("%w: %s", err, why)
			}
		}
		return nil, err
	}
	defer func() {
		if retErr != nil {
			project.Close()
		}
	}()
	trace.Mark("resolve project (helper)")
	if err := rootfs.CheckProjectPath(project.Path, agent.Home); err != nil {
		return nil, err
	}
	roPaths, skipMissing := cfg.Sandbox.ReadOnly()
	ro, err := rootfs.Probe(roPaths, skipMissing)
	if err != nil {
		return nil, err
	}
	memMax, _ := sandbox.ParseSize(cfg.Sandbox.MemoryMax)
	tmpSize, _ := sandbox.ParseSize(cfg.Sandbox.TmpSize)
	agentDir := filepath.Join(agent.Home, ".pi", "agent")
	plan := &sandbox.Plan{
		ID:         sandbox.NewID(caller.UID),
		Caller:     caller,
		Agent:      agent,
		AgentGroup: cfg.Group,
		Args:       append(append([]string{}, commandOf(f, cfg)...), agentArgs...),
		Cwd:        project.Cwd,
		Project:    project.Path,
		ProjectDir: project.Mount,
		UserNS:     userNS,
		RuntimeDir: ss.runtimeDir(),
		AgentDir:   agentDir,
		ReadOnly:   ro,
		Network:    cfg.Sandbox.Network,
		MemoryMax:  memMax,
		PidsMax:    cfg.Sandbox.PidsMax,
		TmpSize:    tmpSize,
		TTY:        isTerminal(os.Stdin),
		Init:       helperBin,
		Hostname:   "pi-agent",
	}
	trace.Mark("plan")
	return &request{plan: plan, backend: backend, project: project, reader: reader, cfg: cfg, host: hostUser}, nil
}

func isTerminal(f *os.File) bool {
	_, err := console.ConsoleFromFile(f)
	return err == nil
}

func commandOf(f runFlags, cfg *sandbox.Config) []string {
	if len(f.command) > 0 {
		return f.command
	}
	return cfg.Agent.Command
}

// execute performs the side effects: runtime directory, config sync and
// merge, leftovers of dead runs, then the sandbox.
func execute(req *request, stdio sandbox.Stdio) int {
	p := req.plan
	if err := req.syncRuntime(); err != nil {
		return fail("%v", err)
	}
	// Leftovers of dead runs are removed beside the run, off its start
	// path: gc never touches a run whose runner lives, this one included.
	gcErr := make(chan error, 1)
	go func() {
		_, err := collectGarbage(rootfsIdle)
		trace.Mark("gc")
		gcErr <- err
	}()
	start := time.Now()
	code, err := req.backend.Run(context.Background(), p, stdio)
	sandbox.Audit(p, req.backend.Name(), code, err, time.Since(start))
	trace.Mark("audit")
	if err := <-gcErr; err != nil {
		fmt.Fprintf(os.Stderr, "pi-agent-runner: warning: cleaning up after dead runs: %v\n", err)
	}
	if err != nil {
		return fail("%v", err)
	}
	return code
}

// syncRuntime syncs and merges the caller's runtime, prints the warnings,
// and completes the plan with the agent's environment.
func (req *request) syncRuntime() error {
	p := req.plan
	rt, err := buildRuntime(req.cfg, p, req.host, req.reader, false)
	if err != nil {
		return err
	}
	for _, w := range rt.warnings {
		fmt.Fprintf(os.Stderr, "pi-agent-runner: warning: %s\n", w)
	}
	p.Env = sandbox.AgentEnv(req.cfg.Agent.Path, p.Agent.Home, p.AgentDir, p.Agent.Name, os.Environ(), rt.env)
	return nil
}

// agentRuntime is the outcome of the three layers for one caller.
type agentRuntime struct {
	settings map[string]any
	env      []merge.Var
	warnings []string
}

// buildRuntime creates the runtime dir if needed, syncs the caller's config
// into it (or only computes the result, with dryRun) and layers the
// environment.
func buildRuntime(cfg *sandbox.Config, p *sandbox.Plan, host sandbox.HostUser, reader *merge.Reader, dryRun bool) (*agentRuntime, error) {
	if err := ensureRuntimeDir(p); err != nil {
		return nil, err
	}
	helperBin, err := helper()
	if err != nil {
		return nil, err
	}
	o := syncOptions(cfg, p, host, dryRun)
	o.Exe = helperBin
	o.Reader = reader
	trace.Mark("runtime dir")
	res, err := merge.Sync(context.Background(), o)
	if err != nil {
		return nil, fmt.Errorf("sync config: %w", err)
	}
	trace.Mark("sync (helper)")
	env, warnings, err := merge.Environment(res.HostEnv, cfg.Environment, cfg.EnvironmentFiles)
	if err != nil {
		return nil, err
	}
	return &agentRuntime{settings: res.Settings, env: env, warnings: append(res.Warnings, warnings...)}, nil
}

// syncOptions describes the config sync for the plan's caller.
func syncOptions(cfg *sandbox.Config, p *sandbox.Plan, host sandbox.HostUser, dryRun bool) merge.Options {
	return merge.Options{
		Caller:     sandbox.HelperCredential(p.Caller),
		HostDir:    filepath.Join(p.Caller.Home, host.ConfigDir()),
		CallerHome: p.Caller.Home,
		UserDir:    filepath.Dir(p.RuntimeDir),
		RuntimeDir: p.RuntimeDir,
		AgentUID:   p.Agent.UID,
		AgentGID:   p.Agent.GID,
		Managed:    cfg.Settings,
		Limits:     cfg.Sync.SyncLimits(),
		Exclude:    cfg.Sync.Exclude,
		DryRun:     dryRun,
	}
}

// ensureRuntimeDir creates <stateDir>/users/<name>/agent: the state dir and
// users/<name> owned by root (no unit or agent may rename what is below),
// the agent dir owned by the agent. Existing entries must be directories,
// not links.
func ensureRuntimeDir(p *sandbox.Plan) error {
	userDir := filepath.Dir(p.RuntimeDir)
	for _, d := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{filepath.Dir(filepath.Dir(userDir)), 0o755, 0, 0},
		{filepath.Dir(userDir), 0o755, 0, 0},
		{userDir, 0o700, 0, 0},
		{p.RuntimeDir, 0o700, p.Agent.UID, p.Agent.GID},
	} {
		if err := os.Mkdir(d.path, d.mode); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %s: %w", d.path, err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(d.path, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Errorf("%s is not a directory", d.path)
		}
		if int(st.Uid) != d.uid || int(st.Gid) != d.gid {
			if err := unix.Lchown(d.path, d.uid, d.gid); err != nil {
				return fmt.Errorf("chown %s: %w", d.path, err)
			}
		}
	}
	return nil
}

// helper returns pi-agent-helper, installed next to the runner: the binary
// the runner starts as the caller (resolve, sync reader) and as the
// sandbox's PID 1. It must be root's like the runner: it runs inside every
// sandbox. The runner itself has none of these modes, so sudo reaches none.
var helper = sync.OnceValues(func() (string, error) {
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return "", fmt.Errorf("locate the runner: %w", err)
	}
	p := filepath.Join(filepath.Dir(self), "pi-agent-helper")
	f, err := sandbox.OpenTrusted(p, 0)
	if err != nil {
		return "", fmt.Errorf("pi-agent-helper: %w (install it next to the runner, owned by root: make install)", err)
	}
	f.Close()
	return p, nil
})
