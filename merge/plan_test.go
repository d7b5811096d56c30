package merge

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
)

func TestExcluded(t *testing.T) {
	pats := append(append([]string{}, DefaultExclude...), "/prompts/private", "*.bak")
	for rel, want := range map[string]bool{
		"sessions":               true,
		"sessions/2026/x.jsonl":  true,
		"bin/rg":                 true,
		"skills/bin/tool":        false, // "/bin" is anchored
		"skills/x/npm.lock":      true,
		"settings.json":          false,
		"prompts/private/a.md":   true,
		"prompts/privateer.md":   false,
		"a/b/c.bak":              true,
		"extensions/sessions.ts": false,
	} {
		if got := compileExclude(pats).match(rel); got != want {
			t.Errorf("Excluded(%q) = %v, want %v", rel, got, want)
		}
	}
}

// referenceExcluded states the exclude rules plainly, one pattern at a
// time, nothing compiled: the compiled matcher must agree with it.
func referenceExcluded(rel string, patterns []string) bool {
	matchName := func(pattern, name string) bool {
		if !strings.ContainsAny(pattern, `*?[\`) {
			return pattern == name
		}
		if suffix, ok := strings.CutPrefix(pattern, "*"); ok && !strings.ContainsAny(suffix, `*?[\`) {
			return strings.HasSuffix(name, suffix)
		}
		m, _ := path.Match(pattern, name)
		return m
	}
	for _, p := range patterns {
		if anchored, ok := strings.CutPrefix(p, "/"); ok {
			rest, matched := rel, true
			for anchored != "" {
				var pc, c string
				pc, anchored, _ = strings.Cut(anchored, "/")
				if rest == "" {
					matched = false
					break
				}
				c, rest, _ = strings.Cut(rest, "/")
				if !matchName(pc, c) {
					matched = false
					break
				}
			}
			if matched {
				return true
			}
			continue
		}
		for rest := rel; rest != ""; {
			var c string
			c, rest, _ = strings.Cut(rest, "/")
			if matchName(p, c) {
				return true
			}
		}
	}
	return false
}

func TestExcludedAgreesWithTheUncompiledMatcher(t *testing.T) {
	patterns := [][]string{
		DefaultExclude,
		{"/"}, {"/a//b"}, {"/a/"}, {"*"}, {"a*"}, {"*.lock", "/x/*/y"}, {"[ab]c", "/s?ss*"}, {`\*`, "*\\"}, {""}, {"/*"}, {},
	}
	paths := []string{"a", "a/b", "a/b/c", "ab", "bc", "ac/x", "x/q/y/z", "x/y", "sessions", "sess/x", "n.lock", "d/n.lock", "*", "x*", "a/c/b", "c", ".cache/x", "bin"}
	for _, pats := range patterns {
		for _, p := range paths {
			if got, want := compileExclude(pats).match(p), referenceExcluded(p, pats); got != want {
				t.Errorf("Excluded(%q, %q) = %v, the plain rules say %v", p, pats, got, want)
			}
		}
	}
}

func FuzzExcluded(f *testing.F) {
	f.Add("a/b.lock", "*.lock", "/a")
	f.Add("sessions/x", "/sessions", "[a-")
	f.Fuzz(func(t *testing.T, rel, p1, p2 string) {
		pats := []string{p1, p2}
		if got, want := compileExclude(pats).match(rel), referenceExcluded(rel, pats); got != want {
			t.Fatalf("Excluded(%q, %q) = %v, the plain rules say %v", rel, pats, got, want)
		}
	})
}

func TestValidRel(t *testing.T) {
	for _, ok := range []string{"a", "a/b", "..x", "x..", "a\nb", "\xff\xfe", "sp ace/ü"} {
		if err := ValidRel(ok); err != nil {
			t.Errorf("ValidRel(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/abs", "a/../b", "..", ".", "a//b", "a/", "./a", "a/\x00", strings.Repeat("x", 256), strings.Repeat("a/", 2049)} {
		if err := ValidRel(bad); err == nil {
			t.Errorf("ValidRel(%q) accepted", bad)
		}
	}
}

func TestPlan(t *testing.T) {
	old := &Manifest{
		Version: 1,
		Files: []ManifestFile{
			{Path: []byte("AGENTS.md"), Key: "k1", Hash: "h1", Mode: 0o644},
			{Path: []byte("skills/a/SKILL.md"), Key: "k2", Hash: "h2", Mode: 0o644},
			{Path: []byte("gone.md"), Key: "k3", Hash: "h3", Mode: 0o644},
			{Path: []byte("touched.md"), Key: "k4", Hash: "h4", Mode: 0o644},
		},
		Dirs: [][]byte{[]byte("skills"), []byte("skills/a"), []byte("skills/old"), []byte("skills/old/deep")},
	}
	host := []HostEntry{
		{Rel: "AGENTS.md", Key: "k1", Same: true, Mode: 0o644},
		{Rel: "skills", Dir: true, Mode: 0o755},
		{Rel: "skills/a", Dir: true, Mode: 0o755},
		{Rel: "skills/a/SKILL.md", Key: "k2b", Staged: "f1", Hash: "h2b", Mode: 0o644}, // changed on the host
		{Rel: "touched.md", Key: "k4b", Staged: "f2", Hash: "h4", Mode: 0o644},         // mtime only: same content
		{Rel: "new.md", Key: "k5", Staged: "f3", Hash: "h5", Mode: 0o600},
	}
	actions, next := Plan(host, old)
	var got []string
	for _, a := range actions {
		got = append(got, a.Op.String()+" "+a.Rel)
	}
	want := []string{"mkdir skills", "mkdir skills/a", "write skills/a/SKILL.md", "write new.md", "delete gone.md", "rmdir skills/old/deep", "rmdir skills/old"}
	if !slices.Equal(got, want) {
		t.Errorf("actions\n%q\nwant\n%q", got, want)
	}
	if _, ok := next["gone.md"]; ok {
		t.Error("a deleted file stays in the manifest")
	}
	if next["touched.md"].Key != "k4b" || next["AGENTS.md"].Hash != "h1" || next["new.md"].Hash != "h5" {
		t.Errorf("next manifest: %+v", next)
	}
}

func TestPlanFirstSyncWritesEverything(t *testing.T) {
	host := []HostEntry{{Rel: "d", Dir: true}, {Rel: "d/f", Staged: "f1", Hash: "h"}, {Rel: "x", Same: true}}
	actions, next := Plan(host, nil)
	if len(actions) != 2 || actions[1].Op != OpWrite || len(next) != 1 {
		t.Errorf("actions %v next %v", actions, next)
	}
}

func FuzzPlan(f *testing.F) {
	f.Add("a,b/c,d", "a,x", uint8(3))
	f.Fuzz(func(t *testing.T, hostList, oldList string, sameMask uint8) {
		old := &Manifest{Version: 1}
		for i, p := range strings.Split(oldList, ",") {
			if ValidRel(p) == nil {
				old.Files = append(old.Files, ManifestFile{Path: []byte(p), Key: fmt.Sprint("k", i), Hash: fmt.Sprint("h", i)})
			}
		}
		var host []HostEntry
		seen := map[string]bool{}
		for i, p := range strings.Split(hostList, ",") {
			if ValidRel(p) != nil || seen[p] {
				continue
			}
			seen[p] = true
			e := HostEntry{Rel: p, Key: fmt.Sprint("k", i)}
			if sameMask&(1<<(i%8)) != 0 {
				e.Same = true
			} else {
				e.Staged, e.Hash = fmt.Sprint("f", i), fmt.Sprint("H", i)
			}
			host = append(host, e)
		}
		actions, next := Plan(host, old)
		for _, a := range actions {
			switch a.Op {
			case OpDelete:
				if seen[a.Rel] {
					t.Fatalf("deletes %q, which the host has", a.Rel)
				}
			case OpWrite:
				if !seen[a.Rel] || a.Entry.Staged == "" {
					t.Fatalf("writes %q without content", a.Rel)
				}
			}
		}
		for rel := range next {
			if !seen[rel] {
				t.Fatalf("manifest keeps %q, which the host no longer has", rel)
			}
		}
	})
}
