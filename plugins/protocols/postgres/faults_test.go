package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/store"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/wasmtest"
)

// faultyConfig loads testdata/faulty with the given mode as a policy
// module on policy-db and as a masking module on mask-db.
func faultyConfig(t *testing.T, mode string) string {
	wasm := wasmtest.Build(t, "./testdata/faulty")
	b, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	return appConnection("policy-db", pgSCRAM.Addr(), `tls = "require"`) +
		appConnection("mask-db", pgSCRAM.Addr(), `tls = "require"`) +
		modulesTable(`call_timeout = "1s"`+"\n"+`memory_limit = "64MiB"`) + fmt.Sprintf(`
[[policy]]
module = %[1]q
sha256 = %[2]q
connections = ["policy-db"]
[policy.config]
mode = %[3]q

[[masking]]
module = %[1]q
sha256 = %[2]q
connections = ["mask-db"]
[masking.config]
mode = %[3]q
`, wasm, sha(string(b)), mode)
}

func TestModuleFaultsFailClosed(t *testing.T) {
	for _, mode := range []string{"trap", "loop", "alloc", "garbage"} {
		t.Run(mode, func(t *testing.T) {
			e := startGatewayWith(t, "", faultyConfig(t, mode))
			ctx := context.Background()
			bystander := e.connectAs(t, "alice", aliceToken, "app-db")

			// Policy: the statement is denied within the deadline, the
			// session goes on with a fresh instance.
			c := e.connectAs(t, "alice", aliceToken, "policy-db")
			start := time.Now()
			err := execSQL(c, "SELECT 'fault'")
			took := time.Since(start)
			wantRefused(t, mode, err, "could not be evaluated")
			if took > 5*time.Second {
				t.Errorf("refusal took %v", took)
			}
			if err := execSQL(c, "SELECT 'fine'"); err != nil {
				t.Fatalf("next statement on the same session: %v", err)
			}

			// Masking: the session is ended before the unmasked value is
			// sent.
			m := e.connectAs(t, "alice", aliceToken, "mask-db")
			rows, err := m.Exec(ctx, "SELECT 'no fault here'").ReadAll()
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Severity != "FATAL" || !strings.Contains(pgErr.Message, "could not be masked") {
				t.Fatalf("masking fault: rows %v, err %v", rows, err)
			}
			for _, r := range rows {
				for _, row := range r.Rows {
					if strings.Contains(string(row[0]), "fault") {
						t.Fatalf("the unmasked value reached the client: %q", row[0])
					}
				}
			}
			// Every other session is unaffected, and new ones work.
			if err := execSQL(bystander, "SELECT 1"); err != nil {
				t.Fatalf("bystander: %v", err)
			}
			m2 := e.connectAs(t, "alice", aliceToken, "mask-db")
			if err := execSQL(m2, "SELECT 'all good'"); err != nil {
				t.Fatalf("new masked session: %v", err)
			}

			_ = c.Close(ctx)
			_ = m.Close(ctx)
			_ = m2.Close(ctx)
			_ = bystander.Close(ctx)
			st := e.closeAndOpenStore()
			var faults []audit.ModuleFaultData
			err = st.Events(ctx, store.EventFilter{Kind: audit.KindModuleFault}, func(ev store.Event) error {
				var d audit.ModuleFaultData
				if err := json.Unmarshal(ev.Data, &d); err != nil {
					return err
				}
				faults = append(faults, d)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"trap": "trap", "loop": "timeout", "alloc": "memory", "garbage": "malformed"}[mode]
			// The guest SDK itself refuses to encode out-of-order changes:
			// the garbage masking module traps before the host sees them.
			wantMask := map[string]string{"garbage": "trap"}[mode]
			if wantMask == "" {
				wantMask = want
			}
			if len(faults) != 2 || faults[0].Effect != "request denied" || faults[1].Effect != "session ended" ||
				faults[0].Fault != want || faults[1].Fault != wantMask || faults[0].SHA256 == "" {
				t.Fatalf("module.fault events = %+v, want faults %q then %q", faults, want, wantMask)
			}
		})
	}
}

// An instance serves one session: what a module keeps from one statement is
// there for the next statement of the same session and never for another
// session, even with one instance allowed at a time.
func TestModuleStateStaysInItsSession(t *testing.T) {
	cfg := strings.Replace(faultyConfig(t, "remember"), `call_timeout = "1s"`, `call_timeout = "1s"`+"\nmax_instances = 1", 1)
	e := startGatewayWith(t, "", cfg)
	a := e.connectAs(t, "alice", aliceToken, "policy-db")
	if err := execSQL(a, "SELECT 'secret of session A'"); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "second statement of A", execSQL(a, "SELECT 2"), "previous statement: SELECT 'secret of session A'")
	_ = a.Close(context.Background())

	b := e.connectAs(t, "alice", aliceToken, "policy-db")
	if err := execSQL(b, "SELECT 1"); err != nil {
		t.Fatalf("first statement of B saw state: %v", err)
	}
}

// The README walkthrough's module, built from its source and loaded by
// path and sha256, masks through gatewayd.
func TestWalkthroughModuleLoadsInGatewayd(t *testing.T) {
	wasm := wasmtest.Build(t, "github.com/gatewayd-access/gatewayd/sdk/wasm/examples/empid")
	b, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	e := startGatewayWith(t, "", appConnection("hr-db", pgSCRAM.Addr(), `tls = "require"`)+fmt.Sprintf(`
[[masking]]
module = %q
sha256 = %q
connections = ["hr-db"]
[masking.config]
keep_last = 2
`, wasm, sha(string(b))))
	out, err := e.psql(aliceToken, e.conninfo("alice", "hr-db", "require"), "-c", "SELECT 'badge EMP-123456 of ' || name FROM customers WHERE id = 1")
	if err != nil || out != "badge EMP-****56 of customer 1" {
		t.Fatalf("psql: %v %q", err, out)
	}

	// The same file with another pin does not load.
	_, err = startGatewayErr(t, appConnection("hr-db", pgSCRAM.Addr())+fmt.Sprintf(`
[[masking]]
module = %q
sha256 = %q
connections = ["hr-db"]
`, wasm, strings.Repeat("0", 64)))
	if err == nil || !strings.Contains(err.Error(), "gateway.toml pins") {
		t.Fatalf("a module with the wrong sha256 loaded: %v", err)
	}
}
