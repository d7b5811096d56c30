package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/m3ta/pi-agent/merge"
	"github.com/m3ta/pi-agent/rootfs"
)

// Plan is everything a backend needs to start the agent, decided and checked
// before the first side effect. Backends receive a finished Plan and nothing
// else: they never read the runner config or the caller's files.
type Plan struct {
	// ID names the container or unit; unique per run.
	ID string
	// Caller is the human on whose behalf the agent runs.
	Caller Account
	// Agent is the dedicated account the agent runs as (uid, gid); its
	// Home is the home inside the sandbox, a tmpfs.
	Agent      Account
	AgentGroup string
	// Args is the agent's full argv; Env its full environment.
	Args []string
	Env  []string
	// Cwd is the working directory inside, within Project.
	Cwd string
	// Project is the directory mounted read-write, idmapped, at its host
	// path; ProjectDir is the O_PATH descriptor the policy check opened on
	// it, from which the backend makes the mount.
	Project    string
	ProjectDir *os.File
	// UserNS, when set, is the user namespace for the project's idmap,
	// made ahead by the runner (MakeUserNS); backends make one otherwise.
	UserNS *UserNS
	// RuntimeDir is the host directory that appears at AgentDir.
	RuntimeDir string
	AgentDir   string
	ReadOnly   []rootfs.HostPath
	Network    string // "host" or "none"
	MemoryMax  int64  // bytes, 0 = unlimited
	PidsMax    int64
	TmpSize    int64
	// TTY gives the agent a new pseudo-terminal (stdin is a terminal).
	TTY bool
	// Init is the host path of this runner binary, PID 1 inside.
	Init string
	// Hostname inside.
	Hostname string
}

// Stdio is where the agent's standard streams go.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Backend starts a Plan and returns the agent's exit status (128+N when a
// signal N ended it).
type Backend interface {
	Name() string
	Run(ctx context.Context, p *Plan, stdio Stdio) (int, error)
}

// NewID returns a fresh identifier for a run of uid: pi-<uid>-<16 hex>.
func NewID(uid int) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return fmt.Sprintf("pi-%d-%s", uid, hex.EncodeToString(b[:]))
}

// IDPrefix is the prefix of every container the runner creates.
const IDPrefix = "pi-"

// terminalEnv lists the caller's variables that reach the agent: the ones
// that describe the terminal and locale.
func terminalEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || len(v) > 256 || !safeValue(v) {
			continue
		}
		if k == "TERM" || k == "COLORTERM" || k == "LANG" || k == "LANGUAGE" || k == "LC_ALL" || (strings.HasPrefix(k, "LC_") && merge.ValidKey(k)) {
			out = append(out, kv)
		}
	}
	return out
}

// safeValue tells a terminal or locale value that may reach the agent:
// [A-Za-z0-9._@:+-]*.
func safeValue(v string) bool { return strings.Trim(v, alnum+"._@:+-") == "" }

// AgentEnv builds the agent's environment: the runner's own variables, the
// caller's terminal and locale variables, then the layered environment
// (merge.Environment: host .env, managed, environment files), which cannot
// override the runner's.
func AgentEnv(agentPath, home, agentDir, user string, callerEnv []string, layered []merge.Var) []string {
	env := []string{
		"HOME=" + home,
		"USER=" + user,
		"LOGNAME=" + user,
		"PATH=" + agentPath,
		"PI_CODING_AGENT_DIR=" + agentDir,
	}
	term := terminalEnv(callerEnv)
	for _, v := range layered {
		for i, kv := range term { // a layered definition replaces the caller's
			if strings.HasPrefix(kv, v.Key+"=") {
				term = append(term[:i], term[i+1:]...)
				break
			}
		}
	}
	env = append(env, term...)
	// Node keeps compiled code in os.tmpdir() unless told otherwise; /tmp
	// is fresh at every run, so the cache goes to the runtime dir, which
	// persists (its /.cache is runtime-owned, never synced). pi starts about
	// 100 ms faster for it. The layered environment may set another.
	if !slices.ContainsFunc(layered, func(v merge.Var) bool { return v.Key == "NODE_COMPILE_CACHE" }) {
		env = append(env, "NODE_COMPILE_CACHE="+agentDir+"/.cache/node-compile-cache")
	}
	for _, v := range layered {
		env = append(env, v.Key+"="+v.Value)
	}
	return env
}

// AgentHome is the agent's home inside the sandbox.
func AgentHome(user string) string { return path.Join("/home", user) }
