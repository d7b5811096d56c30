package sandbox

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// nixInstantiate returns the path of nix-instantiate. Outside CI a host
// without Nix skips these tests and says so; in CI, where .ci/run installs
// nix-bin, its absence is a failure.
func nixInstantiate(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("nix-instantiate")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nix-instantiate is missing in CI (.ci/run installs nix-bin)")
		}
		t.Skip("not supported on this host: nix-instantiate is not installed (apt-get install nix-bin)")
	}
	return p
}

// Every .nix file of the repository parses.
func TestNixFilesParse(t *testing.T) {
	nix := nixInstantiate(t)
	var files []string
	filepath.Walk("..", func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() && (fi.Name() == ".git" || fi.Name() == ".cache") {
			return filepath.SkipDir
		}
		if err == nil && strings.HasSuffix(p, ".nix") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 5 {
		t.Fatalf("found only %d .nix files: %v", len(files), files)
	}
	for _, f := range files {
		if out, err := exec.Command(nix, "--parse", f).CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", f, err, out)
		}
	}
}

// The Nix renderer and the Go loader agree: the rendered example loads
// (strict decoding: a field the Go side does not know fails here), and every
// field of the Go schema is rendered (a field the Nix side lacks fails here).
func TestNixRendersTheGoSchema(t *testing.T) {
	nix := nixInstantiate(t)
	out, err := exec.Command(nix, "--eval", "--strict", "--json", "../nix/tests/render-example.nix").Output()
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	cfg, err := ParseConfig(out)
	if err != nil {
		t.Fatalf("the Go loader rejects the config the NixOS module renders: %v\n%s", err, out)
	}
	if got := cfg.HostUsers["m3tam3re"].ConfigDir(); got != ".pi/agent" {
		t.Errorf("a null configPath must render as wrapper.hostConfigPath, got %q", got)
	}
	var rendered map[string]any
	if err := json.Unmarshal(out, &rendered); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	jsonPaths(rendered, "", have)
	var missing []string
	for _, p := range schemaPaths(reflect.TypeOf(Config{}), "") {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("fields of the Go config the Nix renderer does not produce: %v", missing)
	}
}

// schemaPaths lists the JSON paths of a config type down to its leaves;
// map keys are written as "*". Free-form values (settings) are leaves.
func schemaPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, schemaPaths(ft, p+".")...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			out = append(out, schemaPaths(ft.Elem(), p+".*.")...)
		default:
			out = append(out, p)
		}
	}
	return out
}

// jsonPaths records the paths present in a decoded JSON document, with
// map keys of hostUsers written as "*".
func jsonPaths(v any, prefix string, have map[string]bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for k, sub := range m {
		p := prefix + k
		if prefix == "hostUsers." {
			p = prefix + "*"
		}
		have[p] = true
		jsonPaths(sub, p+".", have)
	}
}

// With nixpkgs' lib at hand (PI_AGENT_NIXPKGS_LIB=/path/to/nixpkgs/lib;
// a developer's checkout, not available to offline CI), the NixOS module
// itself is evaluated with lib.evalModules: its /etc/pi-agent/config.json
// loads in Go and its assertions catch bad settings. The Home Manager
// module renders settings, models and an agents input into ~/.pi/agent.
func TestNixModulesEvaluate(t *testing.T) {
	nix := nixInstantiate(t)
	libPath := os.Getenv("PI_AGENT_NIXPKGS_LIB")
	if libPath == "" {
		t.Skip("not supported offline: set PI_AGENT_NIXPKGS_LIB to a nixpkgs lib directory to evaluate the module")
	}
	eval := func(extra string) map[string]json.RawMessage {
		t.Helper()
		out, err := exec.Command(nix, "--eval", "--strict", "--json", "../nix/tests/eval-module.nix",
			"--arg", "lib", "import "+libPath, "--arg", "extra", extra).CombinedOutput()
		if err != nil {
			t.Fatalf("evaluate the module: %v\n%s", err, out)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	good := eval("{ }")
	if string(good["failedAssertions"]) != "[]" {
		t.Errorf("assertions fail for the default setup: %s", good["failedAssertions"])
	}
	if _, err := ParseConfig(good["config"]); err != nil {
		t.Errorf("the Go loader rejects the module's config: %v\n%s", err, good["config"])
	}
	if !strings.Contains(string(good["sudo"]), `"NOPASSWD"`) || !strings.Contains(string(good["sudo"]), "libexec/pi-agent/pi-agent-runner") || strings.Contains(string(good["sudo"]), `"ALL"`) {
		t.Errorf("sudo rule: %s", good["sudo"])
	}
	bad := eval(`{ m3ta.pi-agent = { stateDir = "var/lib/x"; hostUsers.ghost.projectRoots = [ ]; wrapper.hideDirectBinary = false; }; }`)
	for _, want := range []string{"stateDir must be an absolute path", "hostUsers.ghost: there is no such user", "hostUsers.ghost.projectRoots is empty", "commandName \\\"pi\\\" is also the agent's own binary"} {
		if !strings.Contains(string(bad["failedAssertions"]), want) {
			t.Errorf("no assertion %q in %s", want, bad["failedAssertions"])
		}
	}

	out, err := exec.Command(nix, "--eval", "--strict", "--json", "../nix/tests/eval-hm.nix", "--arg", "lib", "import "+libPath).CombinedOutput()
	if err != nil {
		t.Fatalf("evaluate the Home Manager module: %v\n%s", err, out)
	}
	for _, want := range []string{`".pi/agent/settings.json"`, `".pi/agent/models.json"`, `".pi/agent/AGENTS.md"`, `".pi/agent/skills"`, `".pi/agent/prompts"`, `"failedAssertions":[]`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Home Manager module output lacks %s:\n%s", want, out)
		}
	}
}
