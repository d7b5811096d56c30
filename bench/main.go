// Command bench times commands side by side: each round runs every command
// once, in turn, so that drift of the machine hits all of them alike. It
// prints a Markdown table of medians and ratios to the first command.
//
//	go run ./bench -spec commands.json -runs 40 [-pause 200ms]
//
// commands.json is a list of {"name": "…", "argv": ["…"]}; argv is run as
// is (no shell), with stdout and stderr discarded. A command that fails is
// reported, not timed.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"time"
)

type command struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	Dir  string   `json:"dir"`
}

func main() {
	spec := flag.String("spec", "", "JSON file with the commands")
	runs := flag.Int("runs", 30, "rounds")
	warmup := flag.Int("warmup", 3, "untimed rounds first")
	pause := flag.Duration("pause", 0, "sleep between commands (0: back to back)")
	flag.Parse()
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
	times := make([][]time.Duration, len(cmds))
	for round := 0; round < *warmup+*runs; round++ {
		for i, c := range cmds {
			if *pause > 0 {
				time.Sleep(*pause)
			}
			cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
			cmd.Dir = c.Dir
			start := time.Now()
			err := cmd.Run()
			d := time.Since(start)
			if err != nil {
				fatal(fmt.Errorf("%s: %v", c.Name, err))
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
	fmt.Printf("| command (%s, %d runs, medians) | median | p90 | ratio to %s |\n|---|---:|---:|---:|\n", mode, *runs, cmds[0].Name)
	base := median(times[0])
	for i, c := range cmds {
		m := median(times[i])
		fmt.Printf("| %s | %.1f ms | %.1f ms | %.2f× |\n", c.Name, ms(m), ms(percentile(times[i], 0.9)), float64(m)/float64(base))
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
