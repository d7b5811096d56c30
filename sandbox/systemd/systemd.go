// Package systemd runs a Plan as a hardened transient systemd service, the
// compatibility backend: `systemd-run --uid --gid --wait --collect --pty|--pipe`
// with a fixed set of sandboxing properties.
package systemd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/m3ta/pi-agent/sandbox"
	"github.com/m3ta/pi-agent/seccomp"
)

// Options carries what Argv needs besides the Plan: host paths the backend
// prepared.
type Options struct {
	// Unit is the transient unit's name.
	Unit string
	// ProjectSource is the host path of the idmapped project mount.
	ProjectSource string
	// EnvFile is the root-only file holding the agent's environment.
	EnvFile string
}

// safePath tells the paths this backend passes inside property values:
// /[A-Za-z0-9._@+,=/-]*.
// systemd splits BindPaths= at ':' and whitespace and expands '%'
// specifiers: a path holding any of those could add a bind or an option,
// so such paths are refused rather than escaped.
func safePath(p string) bool {
	return strings.HasPrefix(p, "/") && strings.Trim(p, alnum+"._@+,=/-") == ""
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// validUnit tells a unit name: [A-Za-z0-9_.-]+\.service.
func validUnit(u string) bool {
	name, ok := strings.CutSuffix(u, ".service")
	return ok && name != "" && strings.Trim(name, alnum+"_.-") == ""
}

func checkPath(what, p string) error {
	if !safePath(p) || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return fmt.Errorf("%s %q holds characters the systemd backend cannot pass safely (':', whitespace, '%%' …); use --backend oci, or a plainer path", what, p)
	}
	return nil
}

// Argv builds the systemd-run argument list for p. It is pure: every
// argument is its own element, no value from the caller becomes a property
// of its own, and the agent's arguments follow "--" untouched.
func Argv(p *sandbox.Plan, o Options) ([]string, error) {
	if p.Agent.UID <= 0 || p.Agent.GID <= 0 {
		return nil, fmt.Errorf("agent account %q has uid %d gid %d: the agent never runs as root", p.Agent.Name, p.Agent.UID, p.Agent.GID)
	}
	if len(p.Args) == 0 {
		return nil, errors.New("no command to run")
	}
	if !sandbox.Within(p.Project, p.Cwd) {
		return nil, fmt.Errorf("working directory %s is outside the project %s", p.Cwd, p.Project)
	}
	for what, v := range map[string]string{
		"project": p.Project, "working directory": p.Cwd, "runtime dir": p.RuntimeDir,
		"agent dir": p.AgentDir, "home": p.Agent.Home, "project mount": o.ProjectSource, "environment file": o.EnvFile,
	} {
		if err := checkPath(what, v); err != nil {
			return nil, err
		}
	}
	if !validUnit(o.Unit) {
		return nil, fmt.Errorf("invalid unit name %q", o.Unit)
	}
	argv := []string{
		"--quiet", "--collect", "--wait", "--service-type=exec",
		"--unit=" + o.Unit,
		"--uid=" + strconv.Itoa(p.Agent.UID),
		"--gid=" + strconv.Itoa(p.Agent.GID),
		"--working-directory=" + p.Cwd,
	}
	if p.TTY {
		argv = append(argv, "--pty")
	} else {
		argv = append(argv, "--pipe")
	}
	props := []string{
		"EnvironmentFile=" + o.EnvFile,
		// Filesystem: everything read-only, homes hidden, a private /tmp
		// and devices; the project and the runtime dir bound in.
		"ProtectSystem=strict",
		"ProtectHome=tmpfs",
		"TemporaryFileSystem=" + p.Agent.Home + ":mode=0700,uid=" + strconv.Itoa(p.Agent.UID) + ",gid=" + strconv.Itoa(p.Agent.GID),
		"BindPaths=" + o.ProjectSource + ":" + p.Project + ":norbind",
		"BindPaths=" + p.RuntimeDir + ":" + p.AgentDir + ":norbind",
		"PrivateTmp=yes",
		"PrivateDevices=yes",
		"PrivateIPC=yes",
		"PrivateUsers=yes",
		"RemoveIPC=yes",
		"KeyringMode=private",
		// Files the agent creates in the project are the user's, and
		// readable as the user's own would be.
		"UMask=0022",
		// Privileges.
		"NoNewPrivileges=yes",
		"CapabilityBoundingSet=",
		"AmbientCapabilities=",
		"RestrictSUIDSGID=yes",
		"LockPersonality=yes",
		"RestrictRealtime=yes",
		"RestrictNamespaces=yes",
		// Kernel and host state.
		"ProtectKernelTunables=yes",
		"ProtectKernelModules=yes",
		"ProtectKernelLogs=yes",
		"ProtectControlGroups=yes",
		"ProtectClock=yes",
		"ProtectHostname=yes",
		"ProtectProc=invisible",
		// Syscalls: the seccomp package's policy; EPERM, not death (node
		// must survive a refused call). Not MemoryDenyWriteExecute: the
		// JIT needs W+X pages. Not ProcSubset=pid: node sees no CPUs.
		"SystemCallFilter=" + seccomp.Systemd(),
		"SystemCallErrorNumber=EPERM",
		"SystemCallArchitectures=native",
		// AF_NETLINK: node's interface listing needs it.
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
		"TasksMax=" + limit(p.PidsMax),
		"MemoryMax=" + limit(p.MemoryMax),
		"Environment=TMPDIR=/tmp",
	}
	if p.Network == "none" {
		props = append(props, "PrivateNetwork=yes")
	}
	for _, prop := range props {
		argv = append(argv, "--property="+prop)
	}
	argv = append(argv, "--")
	return append(argv, p.Args...), nil
}

func limit(n int64) string {
	if n <= 0 {
		return "infinity"
	}
	return strconv.FormatInt(n, 10)
}

// EnvFile renders the environment for EnvironmentFile=: one KEY="value" per
// line, with the escapes systemd undoes. A value holding a newline cannot be
// expressed there and is refused.
func EnvFile(env []string) ([]byte, error) {
	var b strings.Builder
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("malformed environment entry")
		}
		if strings.ContainsAny(v, "\n\r") {
			return nil, fmt.Errorf("%s holds a newline, which the systemd backend cannot pass; use --backend oci", k)
		}
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(v))
		b.WriteString("\"\n")
	}
	return []byte(b.String()), nil
}

// Backend runs Plans with systemd-run. Its files live under RunDir
// (/run/pi-agent/units), root-only.
type Backend struct {
	RunDir string
	// SystemdRun is the systemd-run binary; Systemctl likewise.
	SystemdRun, Systemctl string
}

// Name implements sandbox.Backend.
func (b *Backend) Name() string { return sandbox.BackendSystemd }

// Available reports whether systemd runs this host (sd_booted).
func Available() error {
	if fi, err := os.Lstat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return errors.New("the systemd backend needs systemd as the init system, and this host does not run it (no /run/systemd/system); use --backend oci")
	}
	return nil
}

// unitName is the transient unit of a run.
func unitName(id string) string { return "pi-agent-" + id + ".service" }

// GC stops the units of runners that died and removes their directories
// (project mount, env file). It returns the ids it removed.
func (b *Backend) GC() ([]string, error) {
	entries, err := os.ReadDir(b.RunDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		id := e.Name()
		dir := filepath.Join(b.RunDir, id)
		if !strings.HasPrefix(id, sandbox.IDPrefix) || sandbox.RunDirOwnerAlive(dir) {
			continue
		}
		if Available() == nil {
			_ = exec.Command(b.Systemctl, "stop", "--", unitName(id)).Run()
		}
		if err := sandbox.RemoveRunDir(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, id)
	}
	if err := sandbox.RemoveStaleNewDirs(b.RunDir); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// Run implements sandbox.Backend.
func (b *Backend) Run(ctx context.Context, p *sandbox.Plan, stdio sandbox.Stdio) (code int, retErr error) {
	if err := Available(); err != nil {
		return -1, err
	}
	for _, d := range []string{filepath.Dir(b.RunDir), b.RunDir} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return -1, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := sandbox.MakePrivateMount(b.RunDir); err != nil {
		return -1, err
	}
	owner, err := sandbox.SelfOwner()
	if err != nil {
		return -1, err
	}
	dir, err := sandbox.NewRunDir(b.RunDir, p.ID, owner)
	if err != nil {
		return -1, err
	}
	// The env file holds secrets and the project mount the caller's tree:
	// both go on every exit path.
	defer func() {
		if err := sandbox.RemoveRunDir(dir); err != nil && retErr == nil {
			retErr = fmt.Errorf("remove %s: %w", dir, err)
		}
	}()
	o, argv, err := stageUnit(p, dir)
	if err != nil {
		return -1, err
	}

	cmd := exec.CommandContext(ctx, b.SystemdRun, argv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	cmd.Env = runEnv(p)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start systemd-run: %w", err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				// The unit is not our child: tell systemd to signal it.
				_ = exec.Command(b.Systemctl, "kill", "--signal="+strconv.Itoa(int(s.(syscall.Signal))), "--", o.Unit).Run()
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return -1, fmt.Errorf("systemd-run: %w", err)
}

// runEnv is the environment of systemd-run itself (root): a fixed PATH,
// and with a pty the agent's TERM, which systemd-run --pty renders for. That
// TERM is the one the plan already checked (sandbox.AgentEnv), never the
// caller's raw variable.
func runEnv(p *sandbox.Plan) []string {
	env := []string{"PATH=/run/current-system/sw/bin:/usr/bin:/bin"}
	if !p.TTY {
		return env
	}
	for _, kv := range p.Env {
		if strings.HasPrefix(kv, "TERM=") {
			env = append(env, kv)
		}
	}
	return env
}

// stageUnit prepares in dir (root-only) what the unit of p needs: the env
// file and the idmapped project mount. It returns the unit's options and
// its systemd-run argv.
func stageUnit(p *sandbox.Plan, dir string) (Options, []string, error) {
	o := Options{Unit: unitName(p.ID), ProjectSource: filepath.Join(dir, "project"), EnvFile: filepath.Join(dir, "env")}
	argv, err := Argv(p, o)
	if err != nil {
		return o, nil, err
	}
	envData, err := EnvFile(p.Env)
	if err != nil {
		return o, nil, err
	}
	if err := os.WriteFile(o.EnvFile, envData, 0o600); err != nil {
		return o, nil, err
	}
	if err := os.Mkdir(o.ProjectSource, 0o700); err != nil {
		return o, nil, err
	}
	return o, argv, sandbox.MountProject(p, o.ProjectSource)
}

// WriteSpec writes what Run would start for p into dir (a new directory):
// argv.json, the full systemd-run command line as a JSON array; the env file
// it names; and the idmapped project mount at dir/project. Benchmarks run
// that very unit with a bare systemd-run. The project mount stays until the
// caller unmounts it.
func (b *Backend) WriteSpec(p *sandbox.Plan, dir string) (retErr error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create spec dir: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = sandbox.RemoveRunDir(dir)
		}
	}()
	_, argv, err := stageUnit(p, dir)
	if err != nil {
		return err
	}
	data, err := json.Marshal(append([]string{b.SystemdRun}, argv...))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "argv.json"), append(data, '\n'), 0o600)
}
