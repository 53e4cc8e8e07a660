package recording

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func record(t *testing.T, dir string, fn func(w *Writer)) string {
	t.Helper()
	w, err := Create(dir, "s1", Header{Width: 80, Height: 24, Command: "ls", Env: map[string]string{"TERM": "xterm"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	fn(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(Path(dir, "s1"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func events(t *testing.T, cast string) (Header, []Event) {
	t.Helper()
	r, err := NewReader(strings.NewReader(cast))
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	for {
		ev, err := r.Next()
		if err == io.EOF {
			return r.Header, evs
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cast := record(t, dir, func(w *Writer) {
		_ = w.Output([]byte("hello \x1b[1mworld\x1b[0m\r\n"))
		_ = w.Input([]byte("ls\r"))
		_ = w.Resize(120, 40)
		_ = w.Mark("exec")
		// A sequence cut between two chunks, then bytes that are not UTF-8.
		_ = w.Output([]byte("caf\xc3"))
		_ = w.Output([]byte("\xa9 \xff\xfe"))
	})
	h, evs := events(t, cast)
	if h.Version != 2 || h.Width != 80 || h.Height != 24 || h.Command != "ls" || h.Env["TERM"] != "xterm" || h.Timestamp == 0 {
		t.Fatalf("header %+v", h)
	}
	want := []Event{
		{Code: Output, Data: "hello \x1b[1mworld\x1b[0m\r\n"},
		{Code: Input, Data: "ls\r"},
		{Code: Resize, Data: "120x40"},
		{Code: Marker, Data: "exec"},
		{Code: Output, Data: "caf"},
		{Code: Output, Data: "é \ufffd\ufffd"},
	}
	if len(evs) != len(want) {
		t.Fatalf("events %+v", evs)
	}
	last := 0.0
	for i, w := range want {
		if evs[i].Code != w.Code || evs[i].Data != w.Data || evs[i].Time < last {
			t.Errorf("event %d = %+v, want %+v", i, evs[i], w)
		}
		last = evs[i].Time
	}
}

func TestCreateRefusesOverwriteAndBadIDs(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, "s1", Header{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	if _, err := Create(dir, "s1", Header{}, 0); err == nil {
		t.Error("overwrote a recording")
	}
	for _, id := range []string{"", "../x", "a/b"} {
		if _, err := Create(dir, id, Header{}, 0); err == nil {
			t.Errorf("accepted id %q", id)
		}
	}
	info, err := os.Stat(Path(dir, "s1"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", info.Mode(), err)
	}
}

func TestLimitFailsClosed(t *testing.T) {
	w, err := Create(t.TempDir(), "s1", Header{}, 200)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		werr = w.Output([]byte("0123456789"))
	}
	if werr == nil || !strings.Contains(werr.Error(), "limit") {
		t.Fatalf("no error past the limit: %v", werr)
	}
	if err := w.Output([]byte("x")); err == nil {
		t.Fatal("a write after the failure succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close reported success for an incomplete recording")
	}
}

func TestPlayTimingSpeedAndIdleLimit(t *testing.T) {
	cast := `{"version": 2, "width": 80, "height": 24}
[0.5, "o", "a"]
[1.0, "i", "typed"]
[1.5, "o", "b"]
[11.5, "o", "c"]
`
	var waits []time.Duration
	var out bytes.Buffer
	err := Play(context.Background(), &out, strings.NewReader(cast), PlayOptions{
		Speed: 2, IdleLimit: 2 * time.Second,
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "abc" {
		t.Fatalf("output %q", out.String())
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}
	if len(waits) != 3 || waits[0] != want[0] || waits[1] != want[1] || waits[2] != want[2] {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Play(ctx, io.Discard, strings.NewReader(cast), PlayOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled play: %v", err)
	}
	for _, bad := range []string{"", "{}", `{"version": 1}`, "{\"version\": 2}\n[1, \"o\"", "{\"version\": 2}\nnot json"} {
		if err := Play(context.Background(), io.Discard, strings.NewReader(bad), PlayOptions{}); err == nil {
			t.Errorf("played %q", bad)
		}
	}
}

// asciinema itself plays what Writer writes.
func TestAsciinemaReadsRecordings(t *testing.T) {
	bin, err := exec.LookPath("asciinema")
	if err != nil {
		t.Fatal("asciinema is not installed: apt-get install -y asciinema (make test installs it)")
	}
	dir := t.TempDir()
	record(t, dir, func(w *Writer) {
		_ = w.Output([]byte("line one\r\n"))
		_ = w.Input([]byte("x"))
		_ = w.Output([]byte("caf\xc3"))
		_ = w.Output([]byte("\xa9\r\n"))
	})
	// asciinema cat wants a terminal: script(1) gives it one.
	cmd := exec.Command("script", "-qec", bin+" cat "+Path(dir, "s1"), "/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("asciinema cat: %v\n%s", err, out)
	}
	if got := strings.ReplaceAll(string(out), "\r", ""); got != "line one\ncafé\n" {
		t.Fatalf("asciinema cat printed %q", out)
	}
}

func FuzzReader(f *testing.F) {
	f.Add("{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.1, \"o\", \"x\"]\n")
	f.Add("{\"version\": 2}\n[1e308, \"r\", \"80x24\"]\n[\"a\", 1, null]\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := NewReader(strings.NewReader(s))
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}
