package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/m3ta/pi-agent/sandbox"
)

const configUsage = `Usage: pi-agent-runner config

Prints, as JSON, what the agent would get for the caller: the runtime
settings.json after the merge (host, then managed settings), and the names of
the environment variables with the layer each comes from. Values of
variables are never printed. The runtime is not changed.

Through sudo the caller is you (pi --show-config does this); root may add
--config PATH and --as-user NAME.

Flags:
`

type effective struct {
	Settings    map[string]any `json:"settings"`
	Environment []envKey       `json:"environment"`
	Warnings    []string       `json:"warnings,omitempty"`
}

type envKey struct {
	Key    string `json:"key"`
	Source string `json:"source"`
}

func cmdConfig(args []string) int {
	var configFlag, asUser string
	fs := pflag.NewFlagSet("config", pflag.ContinueOnError)
	fs.StringVar(&configFlag, "config", "", "runner config path (root only, not through sudo)")
	fs.StringVar(&asUser, "as-user", "", "host user (root only, not through sudo)")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, configUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	ss, err := begin(configFlag, asUser)
	if err != nil {
		return fail("%v", err)
	}
	p := &sandbox.Plan{Caller: ss.caller, Agent: ss.agent, RuntimeDir: ss.runtimeDir()}
	rt, err := buildRuntime(ss.cfg, p, ss.host, nil, true)
	if err != nil {
		return fail("%v", err)
	}
	out := effective{Settings: rt.settings, Warnings: rt.warnings, Environment: []envKey{}}
	for _, v := range rt.env {
		out.Environment = append(out.Environment, envKey{Key: v.Key, Source: v.Source})
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fail("%v", err)
	}
	return 0
}
