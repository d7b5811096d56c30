package merge

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Reserved are the variables the runner sets itself; no layer overrides them.
var Reserved = []string{"HOME", "USER", "LOGNAME", "PATH", "PI_CODING_AGENT_DIR"}

func reserved(k string) bool {
	for _, r := range Reserved {
		if k == r {
			return true
		}
	}
	return false
}

// Environment layers the agent's environment, later layers winning:
//  1. host, the caller's .env: an invalid or reserved name is skipped with a
//     warning (the caller's file must not stop their own runs);
//  2. managed, the config's environment (validated with the config);
//  3. files, the config's environmentFiles in order, read by root: a missing
//     file is an error unless its path starts with "-", a reserved name is an
//     error naming file and line.
//
// The result holds each variable once, in the order of its first definition,
// with the value of its last.
func Environment(host []Var, managed map[string]string, files []string) (vars []Var, warnings []string, err error) {
	var all []Var
	for _, v := range host {
		if reserved(v.Key) || !ValidKey(v.Key) {
			warnings = append(warnings, fmt.Sprintf("%s: %s is set by the runner; ignored", v.Source, v.Key))
			continue
		}
		all = append(all, v)
	}
	keys := make([]string, 0, len(managed))
	for k := range managed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if reserved(k) {
			return nil, nil, fmt.Errorf("environment.%s is set by the runner and cannot be overridden", k)
		}
		all = append(all, Var{Key: k, Value: managed[k], Source: "config environment"})
	}
	for _, f := range files {
		p, optional := strings.CutPrefix(f, "-")
		fh, err := os.Open(p)
		if err != nil {
			if optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, nil, fmt.Errorf("environment file: %w", err)
		}
		vs, err := ParseDotenv(fh, p)
		fh.Close()
		if err != nil {
			return nil, nil, err
		}
		for _, v := range vs {
			if reserved(v.Key) {
				return nil, nil, fmt.Errorf("%s: %s is set by the runner and cannot be overridden", v.Source, v.Key)
			}
		}
		all = append(all, vs...)
	}
	index := map[string]int{}
	for _, v := range all {
		if i, ok := index[v.Key]; ok {
			vars[i] = v
			continue
		}
		index[v.Key] = len(vars)
		vars = append(vars, v)
	}
	return vars, warnings, nil
}
