package dispatch

import (
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

func policyFn(*abi.Request) abi.Verdict      { return abi.Verdict{} }
func maskFn(*abi.Batch, *abi.Changes)        {}
func initFn(err error) func([]byte) error    { return func([]byte) error { return err } }
func write(d *Dispatcher, in string) (n int) { return copy(d.Buffer(len(in)), in) }

func initResult(t *testing.T, d *Dispatcher, config string) abi.InitResult {
	t.Helper()
	var res abi.InitResult
	if err := abi.DecodeInitResult(d.Init(write(d, config)), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestInit(t *testing.T) {
	tests := []struct {
		name    string
		m       Module
		sub     abi.Subscription
		refusal string
	}{
		{"policy", Module{Policy: policyFn}, 0xff, ""},
		{"mask", Module{Mask: maskFn}, 0xffffff00, ""},
		{"both", Module{Policy: policyFn, Mask: maskFn}, 0xffffffff, ""},
		{"explicit", Module{Subscribe: abi.Subscribe(abi.Rows), Mask: maskFn}, abi.Subscribe(abi.Rows), ""},
		{"init ok", Module{Init: initFn(nil), Mask: maskFn}, 0xffffff00, ""},
		{"init refuses", Module{Init: initFn(errors.New("keep_last: too big")), Mask: maskFn}, 0, "keep_last: too big"},
		{"nothing", Module{Init: initFn(nil)}, 0, "neither a Policy nor a Mask"},
		{"requests without policy", Module{Subscribe: abi.Subscribe(abi.SQLQuery, abi.Rows), Mask: maskFn}, 0, "no Policy"},
		{"responses without mask", Module{Subscribe: abi.Subscribe(abi.SQLQuery, abi.Rows), Policy: policyFn}, 0, "no Mask"},
	}
	for _, tt := range tests {
		res := initResult(t, New(tt.m), "{}")
		if tt.refusal != "" {
			if res.Status == 0 || !strings.Contains(res.Message, tt.refusal) {
				t.Errorf("%s: got %+v, want a refusal saying %q", tt.name, res, tt.refusal)
			}
			continue
		}
		if res.Status != 0 || res.Subscribe != tt.sub {
			t.Errorf("%s: got %+v, want subscription %#x", tt.name, res, uint32(tt.sub))
		}
	}
}

func TestInitUnregistered(t *testing.T) {
	var d Dispatcher
	if res := initResult(t, &d, "{}"); res.Status == 0 || !strings.Contains(res.Message, "guest.Register") {
		t.Errorf("got %+v", res)
	}
}

// TestInitConfigIsKept: the module may keep its config; the next input
// does not overwrite it.
func TestInitConfigIsKept(t *testing.T) {
	var kept []byte
	d := New(Module{Mask: maskFn, Init: func(c []byte) error { kept = c; return nil }})
	initResult(t, d, `{"keep_last": 2}`)
	write(d, "xxxxxxxxxxxxxxxxxxxxxxx")
	if string(kept) != `{"keep_last": 2}` {
		t.Errorf("config became %q", kept)
	}
}

func TestRegister(t *testing.T) {
	defer func() { Registered = Dispatcher{} }()
	Register(Module{Mask: maskFn})
	if res := initResult(t, &Registered, "{}"); res.Status != 0 {
		t.Fatalf("registered module: %+v", res)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second Register did not panic")
		}
	}()
	Register(Module{Mask: maskFn})
}

func TestBuffer(t *testing.T) {
	d := New(Module{})
	b0 := d.Buffer(0)
	if cap(b0) == 0 || len(b0) != 0 {
		t.Fatalf("Buffer(0): len %d cap %d, want an address", len(b0), cap(b0))
	}
	b1 := d.Buffer(100)
	b2 := d.Buffer(10)
	if len(b1) != 100 || len(b2) != 10 || unsafe.SliceData(b1) != unsafe.SliceData(b2) || unsafe.SliceData(b0) != unsafe.SliceData(b1) {
		t.Error("small buffers are not reused")
	}
	big := d.Buffer(1 << 20)
	if len(big) != 1<<20 {
		t.Fatalf("Buffer(1 MiB): %d bytes", len(big))
	}
	if again := d.Buffer(1 << 19); unsafe.SliceData(again) != unsafe.SliceData(big) {
		t.Error("the grown buffer is not reused")
	}
}

func mustPanic(t *testing.T, name, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		p := recover()
		if p == nil {
			t.Errorf("%s: no panic", name)
		} else if s, _ := p.(string); !strings.Contains(s, want) {
			t.Errorf("%s: panic %v, want one saying %q", name, p, want)
		}
	}()
	f()
}

// TestTraps: calls that cannot be answered panic (trap), never answer.
func TestTraps(t *testing.T) {
	d := New(Module{Mask: maskFn})
	n := write(d, "{}")
	mustPanic(t, "policy without Policy", "no Policy", func() { d.Policy(n) })
	mustPanic(t, "mask of garbage", "gw_mask input", func() { d.Mask(n) })
	mustPanic(t, "input past the buffer", "gw_buffer handed out", func() { d.Mask(cap(d.in) + 1) })
	d = New(Module{Policy: policyFn})
	mustPanic(t, "mask without Mask", "no Mask", func() { d.Mask(n) })
	mustPanic(t, "policy of garbage", "gw_policy input", func() { d.Policy(write(d, "\x01\x00")) })
}

func TestCheckChanges(t *testing.T) {
	ch := func(row, col int) abi.Change { return abi.Change{Row: row, Col: col} }
	tests := []struct {
		name string
		c    abi.Changes
		want string
	}{
		{"none", abi.Changes{}, ""},
		{"in order", abi.Changes{List: []abi.Change{ch(0, 1), ch(0, 2), ch(1, 0)}}, ""},
		{"terminate", abi.Changes{Action: abi.Terminate}, ""},
		{"deny", abi.Changes{Action: abi.Deny}, "only allow or terminate"},
		{"twice", abi.Changes{List: []abi.Change{ch(0, 1), ch(0, 1)}}, "increasing"},
		{"backwards", abi.Changes{List: []abi.Change{ch(1, 0), ch(0, 2)}}, "increasing"},
		{"row out of range", abi.Changes{List: []abi.Change{ch(2, 0)}}, "outside"},
		{"col out of range", abi.Changes{List: []abi.Change{ch(0, 3)}}, "outside"},
		{"negative", abi.Changes{List: []abi.Change{ch(0, -1)}}, "outside"},
	}
	for _, tt := range tests {
		err := checkChanges(&tt.c, 2, 3)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestMaskAllocs: a Mask call in steady state allocates nothing of its own
// (only what decoding the session's strings takes).
func TestMaskAllocs(t *testing.T) {
	var b abi.Batch
	b.Session = abi.Session{ID: "0b6c1a2e-5d1f", Identity: "ada", Email: "ada@example.com",
		Groups: []string{"engineering"}, Connection: "app-pg", Protocol: "postgres"}
	b.Reset(abi.Rows, []abi.Column{{Name: "a"}, {Name: "b"}, {Name: "c"}})
	for range 512 * 3 {
		b.Append([]byte("value"), false)
	}
	in := abi.AppendBatch(nil, &b)
	d := New(Module{Mask: func(b *abi.Batch, c *abi.Changes) { c.Set(1, 1, []byte("x")) }})
	call := func() { copy(d.Buffer(len(in)), in); d.Mask(len(in)) }
	call()
	n := testing.AllocsPerRun(100, call)
	t.Logf("%v allocations a call", n)
	if n > 8 {
		t.Errorf("%v allocations a call", n)
	}
	var c abi.Changes
	if err := abi.DecodeChanges(d.out, &c, 512, 3); err != nil || len(c.List) != 1 || string(c.List[0].Value) != "x" {
		t.Errorf("got %+v, %v", c, err)
	}
}
