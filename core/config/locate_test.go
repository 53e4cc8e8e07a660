package config

import (
	"testing"

	"github.com/BurntSushi/toml"
)

func TestKeyLines(t *testing.T) {
	const text = `# comment [not.a.table]
title = "x" # trailing [comment]
[gateway]
admin_groups = [
  "admins", # comment with ] and "
  'security',
]
motd = """
line with [[connection]]
and a quote \""" still inside
"""
raw = '''
name = "not a key"
'''
"quoted.key" = 1
a.b.c = 2
when = 1979-05-27 07:32:00Z

[listen . postgres]
address = "127.0.0.1:15432"

[[connection]]
name = "one"

[connection.options]
sslmode = "require"

[[connection]]
name = "two"
inline = { x = 1, y = [1,
  2], z.w = "}" }

[[identity.static]]
name = "alice"

[[identity.static]]
name = "bob"
points = [{ n = 1 }, { n = 2 }]
`
	// The locator is only meaningful for text the parser accepts.
	var v map[string]any
	if _, err := toml.Decode(text, &v); err != nil {
		t.Fatalf("test input is not valid TOML: %v", err)
	}
	lines := keyLines(text)
	tests := []struct {
		path string
		line int
	}{
		{"title", 2},
		{"gateway", 3},
		{"gateway.admin_groups", 4},
		{"gateway.admin_groups[0]", 5},
		{"gateway.admin_groups[1]", 6},
		{"gateway.motd", 8},
		{"gateway.raw", 12},
		{`gateway."quoted.key"`, 15},
		{"gateway.a", 16},
		{"gateway.a.b.c", 16},
		{"gateway.when", 17},
		{"listen", 19},
		{"listen.postgres", 19},
		{"listen.postgres.address", 20},
		{"connection[0]", 22},
		{"connection[0].name", 23},
		{"connection[0].options", 25},
		{"connection[0].options.sslmode", 26},
		{"connection[1]", 28},
		{"connection[1].name", 29},
		{"connection[1].inline", 30},
		{"connection[1].inline.x", 30},
		{"connection[1].inline.y[1]", 31},
		{"connection[1].inline.z.w", 31},
		{"identity", 33},
		{"identity.static[0]", 33},
		{"identity.static[0].name", 34},
		{"identity.static[1]", 36},
		{"identity.static[1].name", 37},
		{"identity.static[1].points[1]", 38},
		{"identity.static[1].points[1].n", 38},
	}
	for _, tt := range tests {
		if got, ok := lines[tt.path]; !ok || got != tt.line {
			t.Errorf("line of %s = %d (found %v), want %d", tt.path, got, ok, tt.line)
		}
	}
	for _, absent := range []string{"connection[2]", "name", "gateway.name", "not"} {
		if l, ok := lines[absent]; ok {
			t.Errorf("%s recorded at line %d, want absent", absent, l)
		}
	}
}

func TestKeyLinesCRLF(t *testing.T) {
	lines := keyLines("[a]\r\nx = 1\r\n\r\n[[b]]\r\ny = [\r\n 1,\r\n 2]\r\n")
	want := map[string]int{"a": 1, "a.x": 2, "b[0]": 4, "b[0].y": 5, "b[0].y[1]": 7}
	for k, l := range want {
		if lines[k] != l {
			t.Errorf("line of %s = %d, want %d", k, lines[k], l)
		}
	}
}

func TestKeyLinesBOM(t *testing.T) {
	lines := keyLines("\ufeff[gateway]\nbad = 1\n")
	if lines["gateway"] != 1 || lines["gateway.bad"] != 2 {
		t.Errorf("lines = %v", lines)
	}
}

func TestParentKey(t *testing.T) {
	tests := map[string]string{
		"a":               "",
		"a.b":             "a",
		"a[1]":            "a",
		"a[1].b":          "a[1]",
		`a."x.y"`:         "a",
		`a."x.y".z`:       `a."x.y"`,
		`"q\"."`:          "",
		"identity.static": "identity",
	}
	for in, want := range tests {
		if got := parentKey(in); got != want {
			t.Errorf("parentKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzKeyLines checks that the locator terminates and does not panic on
// any input.
func FuzzKeyLines(f *testing.F) {
	f.Add("[a]\nb = [1,\n2]\n")
	f.Add(`x = """` + "\n" + `"""`)
	f.Add("[[c]]\nd = { e = 'f' }")
	f.Fuzz(func(t *testing.T, s string) {
		keyLines(s)
	})
}
