package host_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/host"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/wasmtest"
)

func runtime(t testing.TB, cfg host.RuntimeConfig) *host.Runtime {
	t.Helper()
	rt, err := host.NewRuntime(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	return rt
}

func compile(t testing.TB, rt *host.Runtime, pkg string) (*host.Module, error) {
	t.Helper()
	b, err := os.ReadFile(wasmtest.Build(t, pkg))
	if err != nil {
		t.Fatal(err)
	}
	return rt.Compile(context.Background(), pkg, b)
}

func TestCompileRefusesOtherMajorVersionsAndNonModules(t *testing.T) {
	rt := runtime(t, host.RuntimeConfig{})
	_, err := compile(t, rt, "./testdata/v2")
	if err == nil || !strings.Contains(err.Error(), "module speaks ABI 2, this gateway speaks 1") {
		t.Fatalf("v2 module: %v", err)
	}
	_, err = compile(t, rt, "./testdata/noabi")
	if err == nil || !strings.Contains(err.Error(), "not a gatewayd module") {
		t.Fatalf("non-module: %v", err)
	}
	_, err = rt.Compile(context.Background(), "junk", []byte("not wasm at all"))
	if err == nil || !strings.Contains(err.Error(), "module junk: compiling") {
		t.Fatalf("junk: %v", err)
	}
}

func TestInstanceCallsAndConfigRefusal(t *testing.T) {
	rt := runtime(t, host.RuntimeConfig{CacheDir: t.TempDir()})
	m, err := compile(t, rt, "../examples/empid")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Instantiate(ctx, []byte(`{"keep_last": "x"}`), nil); err == nil {
		t.Fatal("a bad config was accepted")
	} else {
		var ie *host.InitError
		if !errors.As(err, &ie) {
			t.Fatalf("bad config: %T %v, want *host.InitError", err, err)
		}
	}
	inst, err := m.Instantiate(ctx, []byte(`{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	if !inst.Subscription().Has(abi.Rows) {
		t.Fatalf("subscription %b", inst.Subscription())
	}
	var b abi.Batch
	b.Reset(abi.Rows, []abi.Column{{Name: "who", Type: 25}})
	b.Append([]byte("EMP-123456"), false)
	b.Append(nil, true)
	b.Append([]byte("nobody"), false)
	var c abi.Changes
	if err := inst.Mask(ctx, &b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.List) != 1 || c.List[0].Row != 0 || string(c.List[0].Value) != "EMP-******" {
		t.Fatalf("changes %+v", c.List)
	}
	// Asking a masking module for a verdict is the caller's mistake, not
	// a fault: the instance stays usable.
	if err := inst.Policy(ctx, &abi.Request{Kind: abi.SQLQuery}, &abi.Verdict{}); err == nil {
		t.Fatal("policy call on a masking module accepted")
	}
	if err := inst.Mask(ctx, &b, &c); err != nil {
		t.Fatalf("after a refused call: %v", err)
	}
}

func BenchmarkMaskCall(b *testing.B) {
	rt := runtime(b, host.RuntimeConfig{})
	m, err := compile(b, rt, "../examples/empid")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	inst, err := m.Instantiate(ctx, []byte(`{}`), nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, rows := range []int{1, 512} {
		var batch abi.Batch
		batch.Reset(abi.Rows, []abi.Column{{Name: "a", Type: 25}, {Name: "b", Type: 25}, {Name: "c", Type: 25}})
		for range rows * 3 {
			batch.Append([]byte("an ordinary value"), false)
		}
		var c abi.Changes
		b.Run(map[int]string{1: "1row", 512: "512rows"}[rows], func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				if err := inst.Mask(ctx, &batch, &c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/float64(rows), "ns/row")
		})
	}
}

// BenchmarkCallOverhead is one pooled call of a module that does nothing
// with a one-row batch: the cost of the call itself, with and without
// wazero's termination checks.
func BenchmarkCallOverhead(b *testing.B) {
	for _, uninterruptible := range []bool{false, true} {
		name := map[bool]string{false: "interruptible", true: "uninterruptible"}[uninterruptible]
		b.Run(name, func(b *testing.B) {
			rt := runtime(b, host.RuntimeConfig{Uninterruptible: uninterruptible})
			m, err := compile(b, rt, "./testdata/noop")
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			inst, err := m.Instantiate(ctx, []byte(`{}`), nil)
			if err != nil {
				b.Fatal(err)
			}
			var batch abi.Batch
			batch.Reset(abi.Rows, []abi.Column{{Name: "a", Type: 25}})
			batch.Append([]byte("value"), false)
			var c abi.Changes
			for b.Loop() {
				if err := inst.Mask(ctx, &batch, &c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
