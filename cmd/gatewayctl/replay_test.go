package main

import (
	"strings"
	"testing"

	"github.com/gatewayd-access/gatewayd/core/recording"
)

func (g *gateway) record(id string, output ...string) string {
	g.t.Helper()
	w, err := recording.Create(g.recs, id, recording.Header{Width: 80, Height: 24}, 0)
	if err != nil {
		g.t.Fatal(err)
	}
	for _, o := range output {
		if err := w.Output([]byte(o)); err != nil {
			g.t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		g.t.Fatal(err)
	}
	return recording.Path(g.recs, id)
}

func TestReplay(t *testing.T) {
	g := newGateway(t)
	path := g.record("s-alice-1", "$ ls\r\n", "customers.csv\r\n")
	g.record("s-bob-1", "bob's secret screen\r\n")

	r := g.run(aliceToken, "", "replay", "s-alice-1", "--speed", "100")
	if r.code != 0 || r.stdout != "$ ls\r\ncustomers.csv\r\n" {
		t.Fatalf("replay: %+v", r)
	}
	// Someone else's session is not found, as in sessions show.
	r = g.run(aliceToken, "", "replay", "s-bob-1")
	if r.code != 1 || strings.Contains(r.stdout, "secret") || !strings.Contains(r.stderr, "no such session") {
		t.Fatalf("alice replaying bob's session: %+v", r)
	}
	r = g.run(rootToken, "", "replay", "s-bob-1", "--idle-limit", "1ms")
	if r.code != 0 || r.stdout != "bob's secret screen\r\n" {
		t.Fatalf("admin replay: %+v", r)
	}
	// A session without a recording says so.
	r = g.run(aliceToken, "", "replay", "s-alice-2")
	if r.code != 1 || !strings.Contains(r.stderr, "has no recording") {
		t.Fatalf("no recording: %+v", r)
	}
	// A file plays without a gateway.
	r = runApp(t, nil, "", "replay", "--file", path, "--speed", "100")
	if r.code != 0 || r.stdout != "$ ls\r\ncustomers.csv\r\n" {
		t.Fatalf("replay --file: %+v", r)
	}
	for _, args := range [][]string{{"replay"}, {"replay", "a", "b"}, {"replay", "a", "--file", path}, {"replay", "a", "--speed", "0"}} {
		if r := g.run(aliceToken, "", args...); r.code != 2 {
			t.Errorf("%v: %+v, want a usage error", args, r)
		}
	}
}
