package main

import (
	"os"
	"regexp"
	"testing"
)

// TestREADME keeps the plugin author's guide in step with the code it
// shows: every Go block of ../../README.md is this example's main.go or the
// sops plugin's main.go.
func TestREADME(t *testing.T) {
	readme := read(t, "../../README.md")
	files := map[string]bool{
		read(t, "main.go"): false,
		read(t, "../../../../cmd/gatewayd-secret-sops/main.go"): false,
	}
	for _, b := range regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(readme, -1) {
		if _, ok := files[b[1]]; !ok {
			t.Errorf("README.md has a Go block that is neither file:\n%s", b[1])
		}
		files[b[1]] = true
	}
	for code, seen := range files {
		if !seen {
			t.Errorf("README.md does not show:\n%s", code)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
