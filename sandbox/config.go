package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/m3ta/pi-agent/merge"
)

// DefaultConfigPath is where the NixOS module (and the Debian quick start)
// writes the runner configuration. Packagers may bake another path in with
// -ldflags "-X github.com/m3ta/pi-agent/sandbox.DefaultConfigPath=…"; a caller
// going through sudo can never change it.
var DefaultConfigPath = "/etc/pi-agent/config.json"

// maxConfigSize bounds how much of the config file is read.
const maxConfigSize = 1 << 20

// Config is the runner configuration. Field names mirror the NixOS options of
// module m3ta.pi-agent so that Nix renders it with builtins.toJSON.
type Config struct {
	StateDir         string              `json:"stateDir"`
	User             string              `json:"user"`
	Group            string              `json:"group"`
	Backend          string              `json:"backend"`
	Agent            AgentConfig         `json:"agent"`
	HostUsers        map[string]HostUser `json:"hostUsers"`
	Settings         map[string]any      `json:"settings"`
	Environment      map[string]string   `json:"environment"`
	EnvironmentFiles []string            `json:"environmentFiles"`
	Sandbox          SandboxConfig       `json:"sandbox"`
	Sync             SyncConfig          `json:"sync"`
}

// SyncConfig tunes the copy of the host user's pi config into the runtime.
type SyncConfig struct {
	// Exclude adds patterns to the runtime-owned ones (/sessions, /bin,
	// /.cache, *.lock): "/x" is anchored at the config dir and covers what is below
	// it, "x" matches a name anywhere; shell globs.
	Exclude []string `json:"exclude"`
	// MaxFileSize and MaxTotalSize bound one file and one sync (sizes as
	// for memoryMax); MaxEntries bounds files and directories.
	MaxFileSize  string `json:"maxFileSize"`
	MaxTotalSize string `json:"maxTotalSize"`
	MaxEntries   int    `json:"maxEntries"`
}

// AgentConfig says what runs inside the sandbox.
type AgentConfig struct {
	// Command is the agent's argv prefix; the caller's arguments follow it.
	Command []string `json:"command"`
	// Path is PATH inside the sandbox.
	Path string `json:"path"`
}

// HostUser is one human allowed to run the agent.
type HostUser struct {
	// ProjectRoots are absolute paths or paths starting with "~" (the
	// user's home from the passwd database).
	ProjectRoots []string `json:"projectRoots"`
	// ConfigPath is the user's pi config directory relative to their home;
	// null means ".pi/agent".
	ConfigPath *string `json:"configPath"`
}

// SandboxConfig tunes the isolation. Every field has a default that works on
// Debian and on NixOS.
type SandboxConfig struct {
	// ReadOnlyPaths are host paths shown read-only inside. Null means the
	// defaults (DefaultReadOnlyPaths), of which missing ones are skipped;
	// an explicit list must name existing paths.
	ReadOnlyPaths []string `json:"readOnlyPaths"`
	// Network is "host" (shared, the agent calls an LLM API) or "none".
	Network string `json:"network"`
	// MemoryMax is the cgroup memory limit: bytes with an optional K, M, G
	// or T suffix (powers of 1024), or "infinity".
	MemoryMax string `json:"memoryMax"`
	// PidsMax caps the number of tasks; 0 means the default.
	PidsMax int64 `json:"pidsMax"`
	// TmpSize bounds the tmpfs at /tmp, same syntax as MemoryMax.
	TmpSize string `json:"tmpSize"`
	// ProjectScope is "root" (the whole allowlisted root that contains the
	// working directory is mounted) or "project" (only the git work tree
	// that contains it, or the working directory itself outside any).
	ProjectScope string `json:"projectScope"`
}

// DefaultReadOnlyPaths serve both a merged-usr Debian host and NixOS; the
// ones a host lacks are skipped.
var DefaultReadOnlyPaths = []string{
	"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
	"/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/pki",
	"/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/localtime",
	"/etc/gitconfig",
	"/nix/store", "/run/current-system/sw", "/etc/static",
}

// Defaults of the remaining fields.
const (
	DefaultStateDir     = "/var/lib/pi-agent"
	DefaultUser         = "pi-agent"
	DefaultConfigSubdir = ".pi/agent"
	DefaultAgentPath    = "/run/current-system/sw/bin:/usr/local/bin:/usr/bin:/bin"
	DefaultMemoryMax    = "8G"
	DefaultPidsMax      = 4096
	DefaultTmpSize      = "2G"
	DefaultMaxFileSize  = "64M"
	DefaultMaxTotalSize = "512M"
	DefaultMaxEntries   = 100000
)

// Backends the runner knows.
const (
	BackendOCI     = "oci"
	BackendSystemd = "systemd"
	BackendAuto    = "auto"
)

// LoadConfig reads, decodes strictly, defaults and validates the runner
// configuration at path. The file and every directory above it must be
// owned by root (or trustedUID, which tests set to their own uid) and not
// writable by anyone else, as sudo demands of sudoers.
func LoadConfig(path string, trustedUID int) (*Config, error) {
	f, err := OpenTrusted(path, trustedUID)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("config %s is larger than %d bytes", path, maxConfigSize)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes data strictly (an unknown field is an error that names
// it), fills in defaults and validates the result.
func ParseConfig(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return nil, describeJSONError(data, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the top-level JSON object")
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line, col := merge.LineCol(data, syn.Offset)
		return fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("field %q: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		return fmt.Errorf("%s; the schema is in README.md, section \"Runner configuration\"", strings.TrimPrefix(err.Error(), "json: "))
	}
	return err
}

func (c *Config) applyDefaults() {
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	if c.Group == "" {
		c.Group = c.User
	}
	if c.Backend == "" {
		c.Backend = BackendOCI
	}
	if c.Agent.Path == "" {
		c.Agent.Path = DefaultAgentPath
	}
	if c.Sandbox.Network == "" {
		c.Sandbox.Network = "host"
	}
	if c.Sandbox.MemoryMax == "" {
		c.Sandbox.MemoryMax = DefaultMemoryMax
	}
	if c.Sandbox.PidsMax == 0 {
		c.Sandbox.PidsMax = DefaultPidsMax
	}
	if c.Sandbox.TmpSize == "" {
		c.Sandbox.TmpSize = DefaultTmpSize
	}
	if c.Sandbox.ProjectScope == "" {
		c.Sandbox.ProjectScope = "root"
	}
	if c.Sync.MaxFileSize == "" {
		c.Sync.MaxFileSize = DefaultMaxFileSize
	}
	if c.Sync.MaxTotalSize == "" {
		c.Sync.MaxTotalSize = DefaultMaxTotalSize
	}
	if c.Sync.MaxEntries == 0 {
		c.Sync.MaxEntries = DefaultMaxEntries
	}
}

const (
	lower  = "abcdefghijklmnopqrstuvwxyz"
	digits = "0123456789"
	alnum  = lower + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + digits
)

// validName tells a user or group name: [a-z_][a-z0-9_-]{0,31}. (Plain
// checks, not regexps: package-level regexps are compiled at every start of
// every binary that links this package, the sandbox's init among them.)
func validName(s string) bool {
	return s != "" && len(s) <= 32 && strings.IndexByte(lower+"_", s[0]) >= 0 && strings.Trim(s[1:], lower+digits+"_-") == ""
}

// Validate checks every field and reports all problems at once, each naming
// its field and saying how to fix it.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !filepath.IsAbs(c.StateDir) || filepath.Clean(c.StateDir) != c.StateDir || c.StateDir == "/" {
		bad("stateDir", "%q must be a clean absolute path other than /", c.StateDir)
	}
	if !validName(c.User) {
		bad("user", "%q is not a valid user name", c.User)
	}
	if !validName(c.Group) {
		bad("group", "%q is not a valid group name", c.Group)
	}
	switch c.Backend {
	case BackendOCI, BackendSystemd, BackendAuto:
	default:
		bad("backend", "%q is not one of \"oci\", \"systemd\", \"auto\"", c.Backend)
	}
	if len(c.Agent.Command) == 0 {
		bad("agent.command", "is empty; give the agent's argv, e.g. [\"/usr/local/bin/pi\"]")
	} else if !filepath.IsAbs(c.Agent.Command[0]) {
		bad("agent.command[0]", "%q must be an absolute path", c.Agent.Command[0])
	}
	for i, dir := range strings.Split(c.Agent.Path, ":") {
		if !filepath.IsAbs(dir) {
			bad("agent.path", "entry %d (%q) is not an absolute directory", i, dir)
		}
	}
	if len(c.HostUsers) == 0 {
		bad("hostUsers", "no host user is allowed; add one, e.g. {\"alice\": {\"projectRoots\": [\"~/projects\"]}}")
	}
	for _, name := range sortedKeys(c.HostUsers) {
		hu := c.HostUsers[name]
		field := "hostUsers." + name
		if !validName(name) {
			bad(field, "%q is not a valid user name", name)
		}
		if name == "root" || name == c.User {
			bad(field, "%q cannot be a host user: the agent never runs on behalf of root or of its own account", name)
		}
		if len(hu.ProjectRoots) == 0 {
			bad(field+".projectRoots", "is empty; list at least one directory, e.g. \"~/projects\"")
		}
		for i, r := range hu.ProjectRoots {
			if err := checkProjectRoot(r); err != nil {
				bad(fmt.Sprintf("%s.projectRoots[%d]", field, i), "%v", err)
			}
		}
		if hu.ConfigPath != nil {
			if err := checkRelPath(*hu.ConfigPath); err != nil {
				bad(field+".configPath", "%v", err)
			}
		}
	}
	for _, k := range sortedKeys(c.Environment) {
		if !merge.ValidKey(k) {
			bad("environment", "%q is not a valid variable name", k)
		}
		for _, r := range merge.Reserved {
			if k == r {
				bad("environment."+k, "is set by the runner and cannot be overridden")
			}
		}
		if strings.IndexByte(c.Environment[k], 0) >= 0 {
			bad("environment."+k, "contains a NUL byte")
		}
	}
	for i, f := range c.EnvironmentFiles {
		p := strings.TrimPrefix(f, "-")
		if !filepath.IsAbs(p) {
			bad(fmt.Sprintf("environmentFiles[%d]", i), "%q must be an absolute path (a leading \"-\" marks it optional)", f)
		}
	}
	for i, p := range c.Sandbox.ReadOnlyPaths {
		field := fmt.Sprintf("sandbox.readOnlyPaths[%d]", i)
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
			bad(field, "%q must be a clean absolute path other than /", p)
		} else if _, err := os.Lstat(p); err != nil {
			bad(field, "%q does not exist on this host (remove it, or omit sandbox.readOnlyPaths to use the defaults)", p)
		}
	}
	switch c.Sandbox.Network {
	case "host", "none":
	default:
		bad("sandbox.network", "%q is not one of \"host\", \"none\"", c.Sandbox.Network)
	}
	if _, err := ParseSize(c.Sandbox.MemoryMax); err != nil {
		bad("sandbox.memoryMax", "%v", err)
	}
	if n, err := ParseSize(c.Sandbox.TmpSize); err != nil {
		bad("sandbox.tmpSize", "%v", err)
	} else if n == 0 {
		bad("sandbox.tmpSize", "must be a finite size, e.g. \"2G\"")
	}
	if c.Sandbox.PidsMax < 0 {
		bad("sandbox.pidsMax", "%d is negative", c.Sandbox.PidsMax)
	}
	switch c.Sandbox.ProjectScope {
	case "root", "project":
	default:
		bad("sandbox.projectScope", "%q is not one of \"root\", \"project\"", c.Sandbox.ProjectScope)
	}
	for i, p := range c.Sync.Exclude {
		if _, err := path.Match(strings.TrimPrefix(p, "/"), ""); err != nil || p == "" || p == "/" {
			bad(fmt.Sprintf("sync.exclude[%d]", i), "%q is not a valid pattern", p)
		}
	}
	for field, v := range map[string]string{"sync.maxFileSize": c.Sync.MaxFileSize, "sync.maxTotalSize": c.Sync.MaxTotalSize} {
		if n, err := ParseSize(v); err != nil {
			bad(field, "%v", err)
		} else if n == 0 {
			bad(field, "must be a finite size")
		}
	}
	if c.Sync.MaxEntries < 0 {
		bad("sync.maxEntries", "%d is negative", c.Sync.MaxEntries)
	}
	return errors.Join(errs...)
}

func checkProjectRoot(r string) error {
	p := r
	if r == "~" || strings.HasPrefix(r, "~/") {
		p = "/home/x" + strings.TrimPrefix(r, "~")
	} else if strings.HasPrefix(r, "~") {
		return fmt.Errorf("%q: only \"~\" and \"~/…\" (the user's own home) are allowed", r)
	} else if !filepath.IsAbs(r) {
		return fmt.Errorf("%q is relative; use an absolute path or one starting with \"~/\"", r)
	}
	if filepath.Clean(p) == "/" {
		return fmt.Errorf("%q would expose the whole filesystem", r)
	}
	if filepath.Clean(p) != strings.TrimSuffix(p, "/") {
		return fmt.Errorf("%q is not a clean path (no \"..\", \".\" or repeated slashes)", r)
	}
	return nil
}

func checkRelPath(p string) error {
	if p == "" || filepath.IsAbs(p) {
		return fmt.Errorf("%q must be a non-empty path relative to the user's home", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." || c == "." || c == "" {
			return fmt.Errorf("%q must not contain \"..\", \".\" or empty components", p)
		}
	}
	return nil
}

// SyncLimits returns the sync limits as numbers (the config is validated).
func (s SyncConfig) SyncLimits() merge.Limits {
	f, _ := ParseSize(s.MaxFileSize)
	t, _ := ParseSize(s.MaxTotalSize)
	return merge.Limits{MaxFile: f, MaxTotal: t, MaxEntries: s.MaxEntries}
}

// ConfigDir returns the host user's pi config directory relative to home.
func (h HostUser) ConfigDir() string {
	if h.ConfigPath == nil {
		return DefaultConfigSubdir
	}
	return *h.ConfigPath
}

// ReadOnly returns the configured read-only paths and whether missing
// ones may be skipped (true only for the built-in defaults).
func (s SandboxConfig) ReadOnly() (paths []string, skipMissing bool) {
	if s.ReadOnlyPaths == nil {
		return DefaultReadOnlyPaths, true
	}
	return s.ReadOnlyPaths, false
}

// ParseSize parses "512M", "8G", "1073741824" or "infinity" (0 = no limit).
func ParseSize(s string) (int64, error) {
	if s == "infinity" {
		return 0, nil
	}
	mult := int64(1)
	num := s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M', 'm':
			mult = 1 << 20
		case 'G', 'g':
			mult = 1 << 30
		case 'T', 't':
			mult = 1 << 40
		}
		if mult != 1 {
			num = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size; use bytes with an optional K, M, G or T suffix, or \"infinity\"", s)
	}
	return v * mult, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
