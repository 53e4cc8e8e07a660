package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADME keeps the module author's guide in step with this example:
// one Go block of ../../README.md is main.go, and every other Go block is
// either a line of Go alone or a piece of main_test.go.
func TestREADME(t *testing.T) {
	readme := read(t, "../../README.md")
	main, tests := read(t, "main.go"), read(t, "main_test.go")
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(readme, -1)
	sawMain := false
	for _, b := range blocks {
		code := b[1]
		switch {
		case code == main:
			sawMain = true
		case strings.Count(code, "\n") == 1:
			// a one-line sketch
		case !strings.Contains(tests, code):
			t.Errorf("README.md has a Go block found in neither main.go nor main_test.go:\n%s", code)
		}
	}
	if !sawMain {
		t.Error("README.md has no Go block equal to main.go: copy main.go into it")
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
