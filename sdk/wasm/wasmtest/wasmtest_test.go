package wasmtest_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/host"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/wasmtest"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/wasmtest/internal/probe"
)

const probePkg = "./internal/probe/module"

func request(text string, statements ...abi.Statement) *abi.Request {
	return &abi.Request{
		Kind: abi.SQLQuery,
		Session: abi.Session{ID: "s1", Identity: "ada", Email: "ada@example.com",
			Groups: []string{"eng", "dba"}, Connection: "app-pg", Protocol: "postgres"},
		Text:       text,
		Statements: statements,
		Attrs:      []abi.Attr{{Key: "name", Value: "sftp"}},
	}
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		name string
		req  *abi.Request
		want abi.Verdict
	}{
		{"allow echoes the session", request("SELECT 1", abi.Statement{Kind: "SELECT"}),
			abi.Verdict{Reason: "sql.query|s1|ada|ada@example.com|eng+dba|app-pg|postgres|sftp"}},
		{"deny", request("DROP TABLE a, b", abi.Statement{Kind: "DROP", Object: "TABLE", Tables: []string{"a", "public.b"}}),
			abi.Verdict{Action: abi.Deny, Reason: "no DROP of a,public.b"}},
		{"review", request("DELETE FROM a", abi.Statement{Kind: "SELECT"}, abi.Statement{Kind: "DELETE"}),
			abi.Verdict{Action: abi.Review, Reason: "DELETE needs a review", Reviewers: []string{"dba", "sre"}}},
		{"a large request", request(strings.Repeat("x", 100_000)),
			abi.Verdict{Reason: "sql.query|s1|ada|ada@example.com|eng+dba|app-pg|postgres|sftp"}},
	}
	wasmtest.Both(t, probe.Module, probePkg, "", func(t *testing.T, r wasmtest.Runner) {
		for _, tt := range tests {
			got, err := r.Policy(tt.req)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
			}
		}
	})
}

func batch(cols []string, vals ...string) *abi.Batch {
	b := &abi.Batch{}
	var columns []abi.Column
	for _, c := range cols {
		columns = append(columns, abi.Column{Name: c, Type: 25})
	}
	b.Reset(abi.Rows, columns)
	for _, v := range vals {
		b.Append([]byte(v), v == "NULL")
	}
	return b
}

func TestMask(t *testing.T) {
	tests := []struct {
		name   string
		batch  *abi.Batch
		want   abi.Changes
		config string
	}{
		{"no change", batch([]string{"a", "b"}, "x", "y", "z", "NULL"), abi.Changes{}, ""},
		{"empty batch", batch([]string{"upper"}), abi.Changes{}, ""},
		{"changes in order", batch([]string{"a", "upper", "null", "empty"},
			"a", "b", "c", "d",
			"e", "NULL", "g", "h"),
			abi.Changes{List: []abi.Change{
				{Row: 0, Col: 1, Value: []byte("B")}, {Row: 0, Col: 2, Null: true}, {Row: 0, Col: 3, Value: []byte{}},
				{Row: 1, Col: 2, Null: true}, {Row: 1, Col: 3, Value: []byte{}},
			}}, ""},
		{"terminate", batch([]string{"a"}, "ok", "terminate"),
			abi.Changes{Action: abi.Terminate, Reason: "terminated at row 1"}, ""},
		{"config", batch([]string{"upper"}, "a"),
			abi.Changes{List: []abi.Change{{Value: []byte("p:A")}}}, `{"prefix": "p:"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wasmtest.Both(t, probe.Module, probePkg, tt.config, func(t *testing.T, r wasmtest.Runner) {
				got, err := r.Mask(tt.batch)
				if err != nil {
					t.Fatal(err)
				}
				if len(got.List) == 0 && len(tt.want.List) == 0 {
					got.List, tt.want.List = nil, nil
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
			})
		})
	}
}

// TestFaults: a panic, a bad action or changes out of order fail the call
// and close the instance, natively as in wasm.
func TestFaults(t *testing.T) {
	calls := []struct {
		name string
		call func(r wasmtest.Runner) error
	}{
		{"policy panics", func(r wasmtest.Runner) error { _, err := r.Policy(request("panic")); return err }},
		{"policy answers action 7", func(r wasmtest.Runner) error { _, err := r.Policy(request("action 7")); return err }},
		{"mask panics", func(r wasmtest.Runner) error { _, err := r.Mask(batch([]string{"a"}, "ok", "panic")); return err }},
		{"mask changes a value twice", func(r wasmtest.Runner) error {
			_, err := r.Mask(batch([]string{"a"}, "disorder"))
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			wasmtest.Both(t, probe.Module, probePkg, "", func(t *testing.T, r wasmtest.Runner) {
				err := c.call(r)
				if err == nil {
					t.Fatal("no error")
				}
				t.Log(firstLine(err))
				if _, err := r.Policy(request("SELECT 1")); err == nil {
					t.Error("the instance still answers after a fault")
				}
			})
		})
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func TestUnsubscribed(t *testing.T) {
	m := guest.Module{Subscribe: abi.Subscribe(abi.Rows), Mask: func(*abi.Batch, *abi.Changes) {}}
	r := wasmtest.Native(t, m, "")
	if _, err := r.Policy(request("SELECT 1")); err == nil {
		t.Error("Policy of a masking module: no error")
	}
	b := batch([]string{"a"}, "x")
	b.Kind = abi.Output
	if _, err := r.Mask(b); err == nil {
		t.Error("Mask of an unsubscribed kind: no error")
	}
	b.Kind = abi.Rows
	if _, err := r.Mask(b); err != nil {
		t.Errorf("Mask of a subscribed kind: %v", err)
	}
	r.Close()
	if _, err := r.Mask(b); !errors.Is(err, wasmtest.ErrClosed) {
		t.Errorf("Mask after Close: %v, want ErrClosed", err)
	}
}

// TestRefusedConfig: a config the module refuses is an init result with a
// message natively, and an *host.InitError in wasm.
func TestRefusedConfig(t *testing.T) {
	const config = `{"refuse": "no thanks"}`
	t.Run("native", func(t *testing.T) {
		inst := guest.NewInstance(probe.Module)
		copy(inst.Buffer(len(config)), config)
		var res abi.InitResult
		if err := abi.DecodeInitResult(inst.Init(len(config)), &res); err != nil {
			t.Fatal(err)
		}
		if res.Status == 0 || res.Message != "no thanks" {
			t.Errorf("got %+v, want a refusal saying no thanks", res)
		}
	})
	t.Run("wasm", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short")
		}
		m := compile(t, wasmtest.Build(t, probePkg))
		_, err := m.Instantiate(context.Background(), []byte(config), nil)
		var ie *host.InitError
		if !errors.As(err, &ie) || ie.Message != "no thanks" {
			t.Errorf("got %v, want an InitError saying no thanks", err)
		}
	})
}

// compile compiles the module at path on a runtime of its own.
func compile(tb testing.TB, path string) *host.Module {
	tb.Helper()
	ctx := context.Background()
	wasm, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := host.NewRuntime(ctx, host.RuntimeConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rt.Close(ctx) })
	m, err := rt.Compile(ctx, "probe", wasm)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// TestWasmInstancesIsolated: two instances of one compiled module keep
// their own state (natively they would share the probe's prefix).
func TestWasmInstancesIsolated(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	path := wasmtest.Build(t, probePkg)
	a := wasmtest.Wasm(t, path, `{"prefix": "a:"}`)
	b := wasmtest.Wasm(t, path, `{"prefix": "b:"}`)
	for _, tt := range []struct {
		r    wasmtest.Runner
		want string
	}{{a, "a:X"}, {b, "b:X"}, {a, "a:X"}} {
		c, err := tt.r.Mask(batch([]string{"upper"}, "x"))
		if err != nil {
			t.Fatal(err)
		}
		if len(c.List) != 1 || string(c.List[0].Value) != tt.want {
			t.Errorf("got %+v, want %s", c.List, tt.want)
		}
	}
}
