package main

import (
	"strings"
	"testing"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/wasmtest"
)

const pkg = "github.com/gatewayd-access/gatewayd/wasm/policy/sqlguard"

const testConfig = `{
	"deny_kinds": ["drop", "TRUNCATE"],
	"review_kinds": ["DELETE"],
	"reviewers": ["dba"],
	"rules": [
		{"groups": ["analysts"], "read_only": true},
		{"groups": ["contractors"], "deny_tables": ["hr.*", "salaries"]}
	]
}`

func stmt(kind string, kinds []string, flags abi.StatementFlags, tables, funcs []string) abi.Statement {
	return abi.Statement{Kind: kind, Kinds: kinds, Flags: flags, Tables: tables, Functions: funcs}
}

func TestVerdicts(t *testing.T) {
	cases := []struct {
		name   string
		groups []string
		kind   abi.FrameKind
		stmts  []abi.Statement
		action abi.Action
		reason string
	}{
		{"select", nil, abi.SQLQuery, []abi.Statement{stmt("SELECT", []string{"SELECT"}, 0, []string{"t"}, []string{"now"})}, abi.Allow, ""},
		{"drop (config in lower case)", nil, abi.SQLQuery, []abi.Statement{stmt("DROP", []string{"DROP"}, 0, nil, nil)}, abi.Deny, "DROP statements"},
		{"drop after a select", nil, abi.SQLQuery, []abi.Statement{stmt("SELECT", []string{"SELECT"}, 0, nil, nil), stmt("DROP", []string{"DROP"}, 0, nil, nil)}, abi.Deny, "DROP"},
		{"nested truncate", nil, abi.SQLParse, []abi.Statement{stmt("PREPARE", []string{"PREPARE", "TRUNCATE"}, 0, nil, nil)}, abi.Deny, "TRUNCATE"},
		{"default denied function, qualified", nil, abi.SQLQuery, []abi.Statement{stmt("SELECT", []string{"SELECT"}, 0, nil, []string{"pg_catalog.pg_read_file"})}, abi.Deny, "pg_read_file"},
		{"dblink glob", nil, abi.SQLQuery, []abi.Statement{stmt("SELECT", []string{"SELECT"}, 0, nil, []string{"dblink_exec"})}, abi.Deny, "dblink"},
		{"copy program", nil, abi.SQLQuery, []abi.Statement{stmt("COPY", []string{"COPY"}, abi.CopyTo|abi.CopyProgram, []string{"t"}, nil)}, abi.Deny, "PROGRAM"},
		{"copy server file", nil, abi.SQLQuery, []abi.Statement{stmt("COPY", []string{"COPY"}, abi.CopyFrom|abi.CopyFile, []string{"t"}, nil)}, abi.Deny, "file on the database server"},
		{"dynamic do", nil, abi.SQLQuery, []abi.Statement{stmt("DO", []string{"DO"}, abi.Dynamic, nil, nil)}, abi.Deny, "cannot inspect"},
		{"delete needs review", nil, abi.SQLQuery, []abi.Statement{stmt("DELETE", []string{"DELETE"}, 0, []string{"t"}, nil)}, abi.Review, "approval by dba"},
		{"deny beats review", nil, abi.SQLQuery, []abi.Statement{stmt("DELETE", []string{"DELETE"}, 0, nil, nil), stmt("DROP", []string{"DROP"}, 0, nil, nil)}, abi.Deny, "DROP"},
		{"read-only group: update", []string{"analysts"}, abi.SQLQuery, []abi.Statement{stmt("UPDATE", []string{"UPDATE"}, 0, nil, nil)}, abi.Deny, "read-only"},
		{"read-only group: select", []string{"analysts"}, abi.SQLQuery, []abi.Statement{stmt("SELECT", []string{"SELECT"}, 0, nil, nil)}, abi.Allow, ""},
		{"read-only group: copy from", []string{"analysts"}, abi.SQLQuery, []abi.Statement{stmt("COPY", []string{"COPY"}, abi.CopyFrom, nil, nil)}, abi.Deny, "COPY ... FROM"},
		{"update, not in the group", []string{"dev"}, abi.SQLQuery, []abi.Statement{stmt("UPDATE", []string{"UPDATE"}, 0, nil, nil)}, abi.Allow, ""},
		{"denied table glob", []string{"contractors"}, abi.SQLQuery, []abi.Statement{stmt("SELECT", []string{"SELECT"}, 0, []string{"hr.people"}, nil)}, abi.Deny, "hr.people"},
		{"denied table in any schema", []string{"contractors"}, abi.SQLQuery, []abi.Statement{stmt("SELECT", []string{"SELECT"}, 0, []string{"public.salaries"}, nil)}, abi.Deny, "salaries"},
		{"function call", nil, abi.SQLFunctionCall, nil, abi.Deny, "FunctionCall"},
	}
	wasmtest.Both(t, Module(), pkg, testConfig, func(t *testing.T, r wasmtest.Runner) {
		for _, tc := range cases {
			req := &abi.Request{Kind: tc.kind, Session: abi.Session{Identity: "alice", Groups: tc.groups}, Statements: tc.stmts,
				Attrs: []abi.Attr{{Key: "function_oid", Value: "1598"}}}
			v, err := r.Policy(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if v.Action != tc.action || !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("%s: %v %q, want %v containing %q", tc.name, v.Action, v.Reason, tc.action, tc.reason)
			}
			if v.Action == abi.Review && (len(v.Reviewers) != 1 || v.Reviewers[0] != "dba") {
				t.Errorf("%s: reviewers %v", tc.name, v.Reviewers)
			}
		}
	})
}

func TestConfigRefused(t *testing.T) {
	for _, cfg := range []string{
		`{"deny_kind": ["DROP"]}`,
		`{"review_kinds": ["DELETE"]}`,
		`{"rules": [{"read_only": true}]}`,
		`{"groups": ["x"]}`,
		`{"deny_functions": ["[bad"]}`,
	} {
		if err := Module().Init([]byte(cfg)); err == nil {
			t.Errorf("config %s accepted", cfg)
		}
	}
}
