// Package merge builds the agent's isolated runtime: it syncs the host user's
// pi config into the runtime directory (read as the caller, written beneath
// the runtime root), merges settings.json with the managed settings, and
// layers the environment: host .env, then the managed environment, then
// environment files.
package merge

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Var is one variable definition and where it came from.
type Var struct {
	Key, Value string
	Source     string // "file:line" or "config"
}

// DotenvError is a syntax error in an environment file. Its message names
// file and line and never contains a value.
type DotenvError struct {
	File string
	Line int
	Msg  string
}

func (e *DotenvError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// ValidKey reports whether k is a variable name: a letter or _, then
// letters, digits and _ ([A-Za-z_][A-Za-z0-9_]*).
func ValidKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// maxDotenv bounds the size of one environment file.
const maxDotenv = 1 << 20

// ParseDotenv reads KEY=value lines: blank lines and lines starting with #
// are ignored; "export " may precede the key; values may be unquoted (the
// rest of the line, trailing " #comment" and spaces removed), single-quoted
// (literal, may span lines) or double-quoted (\n \t \r \" \\ \$ escapes, may
// span lines). Definitions are returned in order; a later one of the same
// key wins when they are applied.
func ParseDotenv(r io.Reader, name string) ([]Var, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxDotenv+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxDotenv {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxDotenv)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("%s contains a NUL byte", name)
	}
	p := &dotenvParser{src: string(data), name: name, line: 1}
	return p.parse()
}

type dotenvParser struct {
	src  string
	pos  int
	line int
	name string
}

func (p *dotenvParser) fail(line int, format string, args ...any) error {
	return &DotenvError{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *dotenvParser) parse() ([]Var, error) {
	var vars []Var
	for p.pos < len(p.src) {
		start := p.line
		line := p.readLine()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(trimmed, "export"); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "\t")) {
			trimmed = strings.TrimSpace(rest)
		}
		key, val, ok := strings.Cut(trimmed, "=")
		if !ok {
			return nil, p.fail(start, "expected KEY=value")
		}
		key = strings.TrimRight(key, " \t")
		if !ValidKey(key) {
			// The name is not echoed: a malformed line may hold a secret.
			return nil, p.fail(start, "invalid variable name (use letters, digits and _, not starting with a digit)")
		}
		val = strings.TrimLeft(val, " \t")
		value, err := p.value(val, start)
		if err != nil {
			return nil, err
		}
		vars = append(vars, Var{Key: key, Value: value, Source: fmt.Sprintf("%s:%d", p.name, start)})
	}
	return vars, nil
}

// readLine returns the next line without its newline.
func (p *dotenvParser) readLine() string {
	end := strings.IndexByte(p.src[p.pos:], '\n')
	var line string
	if end < 0 {
		line, p.pos = p.src[p.pos:], len(p.src)
	} else {
		line, p.pos = p.src[p.pos:p.pos+end], p.pos+end+1
		p.line++
	}
	return strings.TrimSuffix(line, "\r")
}

// value parses what follows "=": first is the rest of the current line; a
// quoted value may continue on the following lines.
func (p *dotenvParser) value(first string, line int) (string, error) {
	if first == "" {
		return "", nil
	}
	quote := first[0]
	if quote != '\'' && quote != '"' {
		v := first
		if i := strings.Index(v, " #"); i >= 0 {
			v = v[:i]
		}
		if i := strings.Index(v, "\t#"); i >= 0 {
			v = v[:i]
		}
		return strings.TrimRight(v, " \t"), nil
	}
	text := first[1:]
	var b strings.Builder
	for {
		for i := 0; i < len(text); i++ {
			c := text[i]
			if c == quote {
				rest := strings.TrimSpace(text[i+1:])
				if rest != "" && !strings.HasPrefix(rest, "#") {
					return "", p.fail(line, "unexpected text after the closing quote")
				}
				return b.String(), nil
			}
			if quote == '"' && c == '\\' && i+1 < len(text) {
				i++
				switch text[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '"', '\\', '$', '`':
					b.WriteByte(text[i])
				default:
					b.WriteByte('\\')
					b.WriteByte(text[i])
				}
				continue
			}
			b.WriteByte(c)
		}
		if p.pos >= len(p.src) {
			return "", p.fail(line, "unterminated %c-quoted value", quote)
		}
		b.WriteByte('\n')
		text = p.readLine()
	}
}
