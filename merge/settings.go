package merge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// DeepMerge returns base with over applied: objects merge key by key,
// recursively; arrays, scalars and null in over replace what base has.
// Neither argument is modified.
func DeepMerge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bo, ok := out[k].(map[string]any); ok {
			if oo, ok := v.(map[string]any); ok {
				out[k] = DeepMerge(bo, oo)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// Merge3 brings upstream's changes since base into runtime, key by key: where
// upstream still equals base, runtime's value stays (pi changed it, or not);
// where upstream changed, upstream's value wins, and a key upstream dropped is
// dropped. Objects on all sides merge recursively. No argument is modified.
func Merge3(base, runtime, upstream map[string]any) map[string]any {
	out := make(map[string]any, len(runtime))
	for k, v := range runtime {
		out[k] = v
	}
	keys := map[string]bool{}
	for k := range base {
		keys[k] = true
	}
	for k := range upstream {
		keys[k] = true
	}
	for k := range keys {
		b, bok := base[k]
		u, uok := upstream[k]
		if bok == uok && reflect.DeepEqual(b, u) {
			continue // unchanged upstream: runtime decides
		}
		if !uok {
			delete(out, k)
			continue
		}
		um, uIsMap := u.(map[string]any)
		rm, rIsMap := out[k].(map[string]any)
		bm, bIsMap := b.(map[string]any)
		_, rok := out[k]
		if uIsMap && (rIsMap || !rok) && (bIsMap || !bok) {
			out[k] = Merge3(bm, rm, um)
			continue
		}
		out[k] = u
	}
	return out
}

// Settings is the outcome of the settings merge.
type Settings struct {
	// Runtime is what settings.json in the runtime becomes.
	Runtime map[string]any
	// Base is the upstream (host, then managed) this merge applied; the
	// next merge compares against it to tell what changed upstream since.
	Base map[string]any
}

// MergeSettings computes the runtime settings.json from the layers: the
// host's settings, the managed settings (which always win), what pi wrote in
// the runtime, and base, the upstream of the previous sync (nil at the first).
func MergeSettings(host, managed, runtime, base map[string]any) Settings {
	upstream := DeepMerge(host, managed)
	if base == nil {
		base = map[string]any{}
	}
	merged := Merge3(base, runtime, upstream)
	return Settings{Runtime: DeepMerge(merged, managed), Base: upstream}
}

// ParseSettings decodes a settings.json object; an error names the file and
// the line and column.
func ParseSettings(data []byte, name string) (map[string]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return map[string]any{}, nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line, col := LineCol(data, syn.Offset)
			return nil, fmt.Errorf("%s: invalid JSON at line %d, column %d: %v", name, line, col, err)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: unexpected data after the top-level object", name)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: the top level must be a JSON object", name)
	}
	return m, nil
}

// LineCol converts a byte offset in data, as JSON errors report it, into a
// 1-based line and column.
func LineCol(data []byte, off int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < off && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}
