// Command mockmodel is an OpenAI chat-completions endpoint for tests: it
// answers every request with one streamed text. Listens on loopback only.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "loopback address to listen on")
	reply := flag.String("reply", "pong", "the text of every answer")
	flag.Parse()
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !strings.HasPrefix(host, "127.") {
		log.Fatalf("mockmodel listens on loopback only, not %q", *listen)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		var req struct {
			Model string `json:"model"`
		}
		json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, choice := range []map[string]any{
			{"index": 0, "delta": map[string]any{"role": "assistant", "content": *reply}, "finish_reason": nil},
			{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"},
		} {
			b, _ := json.Marshal(map[string]any{"id": "mock", "object": "chat.completion.chunk", "created": 0, "model": req.Model, "choices": []any{choice}})
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
