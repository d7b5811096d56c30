package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/m3ta/pi-agent/rootfs"
	"github.com/m3ta/pi-agent/sandbox"
	"github.com/m3ta/pi-agent/sandbox/oci"
	"github.com/m3ta/pi-agent/sandbox/systemd"
	"github.com/m3ta/pi-agent/seccomp"
)

const doctorUsage = `Usage: pi-agent-runner doctor [--prove]

Checks what the runner needs and says how to fix what is missing: the
config and its ownership, the pi-agent user, the state dir, kernel features
(idmapped mounts on the filesystem of every project root, seccomp, cgroups),
each host user's sudo rule (scoped to the runner, never ALL), the agent
command. Exits 1 when a check fails.

--prove also starts a real sandbox in the current directory, for the caller,
and tries what the agent must not be able to do (read ~/.ssh, write outside
the project, see host processes …); each canary must be BLOCKED.

Root may add --config PATH and --as-user NAME (for --prove).

Flags:
`

func cmdDoctor(args []string) int {
	var configFlag, asUser string
	var prove bool
	fs := pflag.NewFlagSet("doctor", pflag.ContinueOnError)
	fs.StringVar(&configFlag, "config", "", "runner config path (root only, not through sudo)")
	fs.StringVar(&asUser, "as-user", "", "host user for --prove (root only, not through sudo)")
	fs.BoolVar(&prove, "prove", false, "run canaries in a real sandbox in the current directory")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, doctorUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if os.Geteuid() != 0 {
		return fail("doctor must run as root (through sudo, or as root)")
	}
	if _, err := sandbox.CallerFromSudo(os.Getenv); err == nil && configFlag != "" {
		return fail("--config is for root calling the runner directly; it is refused through sudo")
	}
	checks := diagnose(configFlag)
	if prove {
		checks = append(checks, proveCanaries(configFlag, asUser)...)
	}
	failed := 0
	for _, c := range checks {
		fmt.Println(c)
		if !c.OK && !c.Info {
			failed++
		}
	}
	if failed > 0 {
		fmt.Printf("%d check(s) failed\n", failed)
		return 1
	}
	fmt.Println("all checks passed")
	return 0
}

func diagnose(configFlag string) []sandbox.Check {
	var checks []sandbox.Check
	add := func(c ...sandbox.Check) { checks = append(checks, c...) }

	cfgPath := configFlag
	if cfgPath == "" {
		cfgPath = sandbox.DefaultConfigPath
	}
	cfg, err := sandbox.LoadConfig(cfgPath, 0)
	if err != nil {
		add(sandbox.Fail("config "+cfgPath, err, "fix what the message names; the file and its directories must be root's and not writable by others"))
		return checks
	}
	add(sandbox.Pass("config "+cfgPath, fmt.Sprintf("%d host user(s), backend %s", len(cfg.HostUsers), cfg.Backend)))

	if agent, err := sandbox.Lookup(cfg.User); err != nil {
		add(sandbox.Fail("agent user "+cfg.User, err, "create it: useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "+cfg.User))
	} else if agent.UID == 0 {
		add(sandbox.Fail("agent user "+cfg.User, errors.New("has uid 0"), "the agent must run as a dedicated unprivileged user"))
	} else {
		add(sandbox.Pass("agent user "+cfg.User, fmt.Sprintf("uid %d", agent.UID)))
	}
	if _, err := sandbox.LookupGroup(cfg.Group); err != nil {
		add(sandbox.Fail("agent group "+cfg.Group, err, "create the group, or set \"group\" in the config"))
	}
	stateErr := sandbox.CheckTrustedDir(filepath.Dir(cfg.StateDir), 0)
	if stateErr == nil {
		if _, err := os.Lstat(cfg.StateDir); err == nil {
			stateErr = sandbox.CheckTrustedDir(cfg.StateDir, 0)
		}
	}
	if stateErr != nil {
		add(sandbox.Fail("state dir "+cfg.StateDir, stateErr, "chown root:root and chmod 0755 the state dir and its parents"))
	} else {
		add(sandbox.Pass("state dir "+cfg.StateDir, "root's, not writable by others"))
	}

	ociErr := oci.Supported()
	switch {
	case ociErr == nil:
		add(sandbox.Pass("kernel for the oci backend", "idmapped mounts, seccomp, cgroups"))
	case cfg.Backend == sandbox.BackendOCI:
		add(sandbox.Fail("kernel for the oci backend", ociErr, "use a kernel of 5.12 or later with seccomp, or backend \"systemd\""))
	default:
		add(sandbox.Check{Name: "kernel for the oci backend", Info: true, Detail: ociErr.Error()})
	}
	if err := seccomp.Validate(); err != nil {
		add(sandbox.Fail("seccomp policy", err, "rebuild with cgo and -tags seccomp against libseccomp"))
	} else {
		add(sandbox.Pass("seccomp policy", fmt.Sprintf("%d syscalls known to libseccomp", len(seccomp.Names()))))
	}
	if err := systemd.Available(); err != nil {
		c := sandbox.Check{Name: "systemd backend", Info: cfg.Backend != sandbox.BackendSystemd, Detail: err.Error(), Remedy: "use backend \"oci\""}
		add(c)
	} else {
		add(sandbox.Pass("systemd backend", "systemd is the init system"))
	}

	self, _ := os.Executable()
	self, _ = filepath.EvalSymlinks(self)
	if h, err := helper(); err != nil {
		add(sandbox.Fail("helper binary", err, "install pi-agent-helper next to "+self+", owned by root, mode 0755"))
	} else {
		add(sandbox.Pass("helper binary", h))
	}
	roPaths, skip := cfg.Sandbox.ReadOnly()
	ro, err := rootfs.Probe(roPaths, skip)
	var visible []string
	for _, hp := range ro {
		if hp.Link == "" {
			visible = append(visible, hp.Path)
		}
	}
	if err != nil {
		add(sandbox.Fail("read-only paths", err, "fix sandbox.readOnlyPaths"))
	}
	if err := sandbox.Executable(cfg.Agent.Command[0], visible); err != nil {
		add(sandbox.Fail("agent command "+cfg.Agent.Command[0], err, "install the agent under a read-only path (e.g. /usr/local, /nix/store), or add its prefix to sandbox.readOnlyPaths"))
	} else {
		add(sandbox.Pass("agent command "+cfg.Agent.Command[0], "executable, visible in the sandbox"))
	}

	names := make([]string, 0, len(cfg.HostUsers))
	for n := range cfg.HostUsers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		acct, err := sandbox.Lookup(name)
		if err != nil {
			add(sandbox.Fail("host user "+name, err, "create the user or remove hostUsers."+name))
			continue
		}
		for _, r := range cfg.HostUsers[name].ProjectRoots {
			root := sandbox.ExpandRoot(r, acct.Home)
			if _, err := os.Stat(root); err != nil {
				add(sandbox.Check{Name: "project root " + root, Info: true, Detail: "does not exist yet"})
				continue
			}
			if err := sandbox.CheckIDMap(root); err != nil {
				add(sandbox.Fail("idmapped mounts on "+root, err, "keep projects on a filesystem with idmapped mounts (ext4, xfs, btrfs, tmpfs ≥ 6.3, …; not NFS)"))
			} else {
				add(sandbox.Pass("idmapped mounts on "+root, "files the agent writes will stay "+name+"'s"))
			}
		}
		add(sandbox.SudoRule(lookTool("sudo"), name, self)...)
	}
	return checks
}

// canaries are run by /bin/sh inside a real sandbox; $1 is the caller's home.
// Each prints "CANARY <what> BLOCKED" or "CANARY <what> EXPOSED".
const canaries = `
c() { if sh -c "$2" >/dev/null 2>&1; then echo "CANARY $1 EXPOSED"; else echo "CANARY $1 BLOCKED"; fi; }
home=$1
c "read the caller's ~/.ssh" "test -e \"$home/.ssh\""
c "see the caller's home outside the project" "ls -A \"$home\" | grep -v -x -e \"$(basename "$PWD")\" | grep -q ."
c "read /etc/shadow" "cat /etc/shadow"
c "write outside the project" "touch /usr/.pi-agent-canary || touch /etc/.pi-agent-canary"
c "see host processes" "test \$(ls -d /proc/[0-9]* | wc -l) -gt 8"
c "hold capabilities" "grep -q '^CapEff:.*[1-9a-f]' /proc/self/status"
c "gain privileges (no_new_privs off)" "grep -q '^NoNewPrivs:.*0' /proc/self/status"
c "run without a seccomp filter" "grep -q '^Seccomp:.*0' /proc/self/status"
c "create a user namespace" "unshare -U true"
c "mount a filesystem" "mount -t tmpfs none /tmp"
`

func proveCanaries(configFlag, asUser string) []sandbox.Check {
	f := runFlags{config: configFlag, asUser: asUser}
	ss, err := begin(configFlag, asUser)
	if err != nil {
		return []sandbox.Check{sandbox.Fail("prove", err, "run doctor --prove from a project directory, through sudo or with --as-user")}
	}
	f.command = []string{"/bin/sh", "-c", canaries, "canary", ss.caller.Home}
	req, err := prepare(f, nil)
	if err != nil {
		return []sandbox.Check{sandbox.Fail("prove", err, "run doctor --prove from one of your project roots")}
	}
	defer req.project.Close()
	req.plan.TTY = false
	var out, errb bytes.Buffer
	code := execute(req, sandbox.Stdio{In: bytes.NewReader(nil), Out: &out, Err: &errb})
	var checks []sandbox.Check
	for _, l := range strings.Split(out.String(), "\n") {
		what, ok := strings.CutPrefix(l, "CANARY ")
		if !ok {
			continue
		}
		name := "canary: " + strings.TrimSuffix(strings.TrimSuffix(what, " BLOCKED"), " EXPOSED")
		if strings.HasSuffix(what, " BLOCKED") {
			checks = append(checks, sandbox.Pass(name, "blocked"))
		} else {
			checks = append(checks, sandbox.Check{Name: name, Detail: "the sandbox let it through", Remedy: "report this: the isolation is broken on this host"})
		}
	}
	if len(checks) == 0 {
		checks = append(checks, sandbox.Check{Name: "prove", Detail: fmt.Sprintf("the canaries did not run (exit %d): %s", code, strings.TrimSpace(errb.String()))})
	}
	return checks
}
