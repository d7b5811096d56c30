// Command bench times commands side by side: each round runs every command
// once, in turn (starting one further on each round), so that drift of the
// machine, and what one command leaves warm for the next, hit all alike. It
// prints a Markdown table of medians, and the first command's median divided
// by each one's: the ratio the goals are stated in ("≤ 1.0× runc").
//
//	go run ./bench -spec commands.json -runs 40 [-pause 200ms]
//	go run ./bench -pty-ceiling 1073741824
//
// commands.json is a list of {"name": "…", "argv": ["…"]}; argv is run as
// is (no shell), with stdout and stderr discarded. A command that fails is
// reported, not timed. -pty-ceiling measures what the kernel's pseudo
// terminal alone moves, a writer on one end and a reader on the other: the
// bound of any relay through a pty.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

type command struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	// ArgvFile, instead of Argv: a file holding the argv as a JSON array
	// (what `pi-agent-runner run --print-spec` writes for systemd).
	ArgvFile string `json:"argvFile"`
	Dir      string `json:"dir"`
}

func main() {
	spec := flag.String("spec", "", "JSON file with the commands")
	runs := flag.Int("runs", 30, "rounds")
	warmup := flag.Int("warmup", 3, "untimed rounds first")
	pause := flag.Duration("pause", 0, "sleep between commands (0: back to back)")
	ptyBytes := flag.Int64("pty-ceiling", 0, "instead: bytes to move through a bare pty")
	flag.Parse()
	if *ptyBytes > 0 {
		rate, err := ptyCeiling(*ptyBytes)
		if err != nil {
			fatal(err)
		}
		fmt.Printf("%.0f\n", rate/1e6)
		return
	}
	data, err := os.ReadFile(*spec)
	if err != nil {
		fatal(err)
	}
	var cmds []command
	if err := json.Unmarshal(data, &cmds); err != nil {
		fatal(err)
	}
	if len(cmds) == 0 {
		fatal(fmt.Errorf("no commands in %s", *spec))
	}
	for i, c := range cmds {
		if c.ArgvFile != "" {
			data, err := os.ReadFile(c.ArgvFile)
			if err == nil {
				err = json.Unmarshal(data, &cmds[i].Argv)
			}
			if err != nil {
				fatal(fmt.Errorf("%s: %v", c.Name, err))
			}
		}
		if len(cmds[i].Argv) == 0 {
			fatal(fmt.Errorf("%s: no argv", c.Name))
		}
	}
	times := make([][]time.Duration, len(cmds))
	for round := 0; round < *warmup+*runs; round++ {
		// Each round starts one command further on, so that every command
		// follows every other equally often: what one leaves behind in the
		// kernel (a cgroup lock still warm, caches) favours no one.
		for k := range cmds {
			i := (round + k) % len(cmds)
			c := cmds[i]
			if *pause > 0 {
				time.Sleep(*pause)
			}
			cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
			cmd.Dir = c.Dir
			var stderr strings.Builder
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			d := time.Since(start)
			if err != nil {
				fatal(fmt.Errorf("%s: %v: %s", c.Name, err, strings.TrimSpace(stderr.String())))
			}
			if round >= *warmup {
				times[i] = append(times[i], d)
			}
		}
	}
	mode := "back to back"
	if *pause > 0 {
		mode = fmt.Sprintf("with %v pauses", *pause)
	}
	fmt.Printf("| command (%s, %d runs, medians) | median | p90 | %s ÷ this |\n|---|---:|---:|---:|\n", mode, *runs, cmds[0].Name)
	base := median(times[0])
	for i, c := range cmds {
		m := median(times[i])
		fmt.Printf("| %s | %.1f ms | %.1f ms | %.2f× |\n", c.Name, ms(m), ms(percentile(times[i], 0.9)), float64(base)/float64(m))
	}
}

func median(d []time.Duration) time.Duration { return percentile(d, 0.5) }

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
