package merge

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	src := "# comment\n\nA=1\nexport B = two words  # trailing comment\nC='single $NOT #kept'\nD=\"tab\\tnl\\nquote\\\" dollar\\$ back\\\\\"\nE=\nF=\"multi\nline\"\nG='x\ny'\nexport\tH=h\r\nI=a#b\nA=last\n"
	vars, err := ParseDotenv(strings.NewReader(src), "test.env")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var order []string
	for _, v := range vars {
		got[v.Key] = v.Value
		order = append(order, v.Key)
	}
	want := map[string]string{
		"A": "last", "B": "two words", "C": "single $NOT #kept", "D": "tab\tnl\nquote\" dollar$ back\\",
		"E": "", "F": "multi\nline", "G": "x\ny", "H": "h", "I": "a#b",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if strings.Join(order, ",") != "A,B,C,D,E,F,G,H,I,A" {
		t.Errorf("order %v", order)
	}
	if vars[5].Source != "test.env:8" || vars[6].Source != "test.env:10" || vars[7].Source != "test.env:12" {
		t.Errorf("sources %q %q", vars[5].Source, vars[6].Source)
	}
}

func TestParseDotenvErrorsNameLineNeverValue(t *testing.T) {
	for _, tc := range []struct {
		src  string
		line int
	}{
		{"OK=1\nsk-live-SECRETVALUE\n", 2},
		{"OK=1\n1BAD=SECRETVALUE\n", 2},
		{"A B=SECRETVALUE\n", 1},
		{"A=\"SECRETVALUE\n", 1},
		{"A='SECRETVALUE' trailing\n", 1},
		{"\n\nX=\"a\nb\" junk SECRETVALUE\n", 3},
	} {
		_, err := ParseDotenv(strings.NewReader(tc.src), "/run/secrets/x.env")
		var de *DotenvError
		if !errors.As(err, &de) {
			t.Errorf("%q: got %v, want a DotenvError", tc.src, err)
			continue
		}
		if de.Line != tc.line || de.File != "/run/secrets/x.env" {
			t.Errorf("%q: at %s:%d, want line %d", tc.src, de.File, de.Line, tc.line)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%q: error echoes the value: %v", tc.src, err)
		}
	}
	if _, err := ParseDotenv(strings.NewReader("A=1\x00"), "x"); err == nil {
		t.Error("NUL accepted")
	}
}

func FuzzParseDotenv(f *testing.F) {
	for _, s := range []string{"A=1\n", "export B='x'\n", "C=\"a\\nb\"\n", "#c\n\nD=e # f\n", "E=\"open\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		vars, err := ParseDotenv(strings.NewReader(src), "f")
		if err != nil {
			var de *DotenvError
			if errors.As(err, &de) && (de.Line < 1 || de.Line > strings.Count(src, "\n")+1) {
				t.Fatalf("line %d out of range", de.Line)
			}
			return
		}
		for _, v := range vars {
			if !ValidKey(v.Key) {
				t.Fatalf("invalid key %q accepted", v.Key)
			}
			// Re-encoding each value double-quoted parses back to itself.
			enc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`, "\r", `\r`, "$", `\$`, "`", "\\`").Replace(v.Value)
			back, err := ParseDotenv(strings.NewReader(v.Key+"=\""+enc+"\"\n"), "round")
			if err != nil || len(back) != 1 || back[0].Value != v.Value {
				t.Fatalf("value %q does not round-trip: %v %v", v.Value, back, err)
			}
		}
	})
}
