package merge

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ManifestFile records a host file as it was at the last sync and what was
// written for it in the runtime.
type ManifestFile struct {
	Path []byte `json:"p"`
	Key  string `json:"k"` // the host file's identity (statKey)
	Hash string `json:"h"` // sha256 of the content written into the runtime
	Mode uint32 `json:"m"`
}

// Manifest is the sync state of one user, kept outside the agent's view.
type Manifest struct {
	Version int            `json:"version"`
	Files   []ManifestFile `json:"files"`
	Dirs    [][]byte       `json:"dirs"`
	// Base is the upstream settings (host, then managed) the last sync
	// applied; see MergeSettings.
	Base map[string]any `json:"base"`
}

// HostEntry is one entry of the host tree as received.
type HostEntry struct {
	Rel    string
	Dir    bool
	Mode   uint32
	Key    string
	Same   bool   // unchanged since the manifest's Key: no content was sent
	Staged string // name of the staged copy, when content was sent
	Hash   string // sha256 of the staged content
}

// Op is what the applier does for one path.
type Op int

const (
	OpMkdir  Op = iota // ensure a directory
	OpWrite            // move a staged file into place
	OpDelete           // remove a file the host no longer has, unless pi changed it
	OpRmdir            // remove a directory the host no longer has, if empty
)

func (o Op) String() string {
	return [...]string{"mkdir", "write", "delete", "rmdir"}[o]
}

// Action is one step of a sync.
type Action struct {
	Op    Op
	Rel   string
	Entry HostEntry    // for mkdir, write
	Old   ManifestFile // for delete: what was written last time
}

// ValidRel checks a relative path from the stream: '/'-separated names, none
// empty, ".", ".." or holding NUL, and not too long. Anything else could
// address something outside the runtime directory.
func ValidRel(rel string) error {
	if rel == "" || len(rel) > 4096 {
		return errors.New("empty or over-long path")
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." || len(c) > 255 || strings.IndexByte(c, 0) >= 0 {
			return fmt.Errorf("invalid path %q", rel)
		}
	}
	return nil
}

// Plan decides a sync from the host tree and the last manifest. It is pure:
// the applier carries it out, checking the runtime where the plan depends on
// it (a delete happens only when the runtime file is what was written).
//   - A host file sent with content is written, unless its content equals
//     what was written last time: then a copy pi changed meanwhile survives.
//   - A host file announced unchanged is left alone.
//   - A file the manifest has and the host no longer has is deleted, unless
//     pi changed it; a directory likewise, when empty.
//
// next is the manifest's file list after the sync, assuming every action
// succeeds; the applier drops the entries of actions that fail.
func Plan(host []HostEntry, old *Manifest) (actions []Action, next map[string]ManifestFile) {
	prev := map[string]ManifestFile{}
	if old != nil {
		for _, f := range old.Files {
			prev[string(f.Path)] = f
		}
	}
	next = map[string]ManifestFile{}
	hostHas := map[string]bool{}
	for _, e := range host {
		hostHas[e.Rel] = true
		switch {
		case e.Dir:
			actions = append(actions, Action{Op: OpMkdir, Rel: e.Rel, Entry: e})
		case e.Same:
			if p, ok := prev[e.Rel]; ok {
				next[e.Rel] = p
			}
		case e.Staged == "":
			// content missing: nothing to write
		default:
			mf := ManifestFile{Path: []byte(e.Rel), Key: e.Key, Hash: e.Hash, Mode: e.Mode}
			if p, ok := prev[e.Rel]; ok && p.Hash == e.Hash && p.Mode == e.Mode {
				next[e.Rel] = mf // same content as last time: keep pi's copy
				continue
			}
			actions = append(actions, Action{Op: OpWrite, Rel: e.Rel, Entry: e})
			next[e.Rel] = mf
		}
	}
	var gone []string
	for rel := range prev {
		if !hostHas[rel] {
			gone = append(gone, rel)
		}
	}
	sort.Strings(gone)
	for _, rel := range gone {
		actions = append(actions, Action{Op: OpDelete, Rel: rel, Old: prev[rel]})
	}
	if old != nil {
		var dirs []string
		for _, d := range old.Dirs {
			if !hostHas[string(d)] {
				dirs = append(dirs, string(d))
			}
		}
		// Deepest first, so that children go before their parents.
		sort.Slice(dirs, func(i, j int) bool {
			if a, b := strings.Count(dirs[i], "/"), strings.Count(dirs[j], "/"); a != b {
				return a > b
			}
			return dirs[i] > dirs[j]
		})
		for _, d := range dirs {
			actions = append(actions, Action{Op: OpRmdir, Rel: d})
		}
	}
	return actions, next
}
