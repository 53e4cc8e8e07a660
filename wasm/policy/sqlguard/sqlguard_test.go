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
		{"a reviewed kind cannot be prepared in SQL", nil, abi.SQLQuery, []abi.Statement{stmt("PREPARE", []string{"DELETE", "PREPARE"}, 0, []string{"t"}, nil)}, abi.Deny, "cannot be prepared with SQL PREPARE"},
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

func TestCommandVerdicts(t *testing.T) {
	const cfg = `{"deny_commands": ["rm", "/sbin/*", "shutdown"], "review_commands": ["systemctl"], "reviewers": ["ops"],
		"deny_subsystems": ["sftp"], "rules": [{"groups": ["contractors"], "deny_shell": true, "deny_forwards": ["*"]}],
		"deny_forwards": ["*:22", "10.0.0.*:*"]}`
	fwd := func(direction, addr string) []abi.Attr {
		return []abi.Attr{{Key: "direction", Value: direction}, {Key: "address", Value: addr}}
	}
	cmd := func(name string, flags abi.StatementFlags, args ...string) abi.Statement {
		return abi.Statement{Kind: name, Kinds: []string{name}, Functions: args, Flags: flags}
	}
	cases := []struct {
		name   string
		groups []string
		kind   abi.FrameKind
		stmts  []abi.Statement
		attrs  []abi.Attr
		action abi.Action
		reason string
	}{
		{"ls", nil, abi.ShellExec, []abi.Statement{cmd("ls", 0, "-la")}, nil, abi.Allow, ""},
		{"rm in a pipeline", nil, abi.ShellExec, []abi.Statement{cmd("ls", 0), cmd("xargs", 0), cmd("rm", 0, "-rf", "/")}, nil, abi.Deny, "rm is not allowed"},
		{"rm under xargs", nil, abi.ShellExec, []abi.Statement{cmd("ls", 0), cmd("xargs", 0, "-0", "rm", "-f")}, nil, abi.Deny, "rm is not allowed"},
		{"rm under sudo", nil, abi.ShellExec, []abi.Statement{cmd("sudo", 0, "-u", "root", "/usr/bin/rm", "x")}, nil, abi.Deny, "/usr/bin/rm"},
		{"expanded argument", nil, abi.ShellExec, []abi.Statement{cmd("echo", abi.DynamicArgs, "$HOME")}, nil, abi.Allow, ""},
		{"wrapper with an expanded argument", nil, abi.ShellExec, []abi.Statement{cmd("xargs", abi.DynamicArgs, "$CMD")}, nil, abi.Deny, "expansion"},
		{"rm by path", nil, abi.ShellExec, []abi.Statement{cmd("/bin/rm", 0, "x")}, nil, abi.Deny, "/bin/rm"},
		{"path glob", nil, abi.ShellExec, []abi.Statement{cmd("/sbin/reboot", 0)}, nil, abi.Deny, "/sbin/*"},
		{"dynamic name", nil, abi.ShellExec, []abi.Statement{cmd("", abi.Dynamic)}, nil, abi.Deny, "cannot resolve"},
		{"review", nil, abi.ShellExec, []abi.Statement{cmd("systemctl", 0, "restart", "x")}, nil, abi.Review, "approval by ops"},
		{"shell allowed", []string{"dev"}, abi.ShellSession, nil, nil, abi.Allow, ""},
		{"shell denied for contractors", []string{"contractors"}, abi.ShellSession, nil, nil, abi.Deny, "interactive shells"},
		{"sftp denied", nil, abi.Subsystem, nil, []abi.Attr{{Key: "name", Value: "sftp"}}, abi.Deny, "sftp subsystem"},
		{"forward allowed", []string{"dev"}, abi.PortForward, nil, fwd("local", "db.internal:5432"), abi.Allow, ""},
		{"forward to port 22", nil, abi.PortForward, nil, fwd("local", "db.internal:22"), abi.Deny, "(local) to db.internal:22"},
		{"forward to a block", nil, abi.PortForward, nil, fwd("remote", "10.0.0.7:8080"), abi.Deny, "(remote) to 10.0.0.7:8080"},
		{"no forwards for contractors", []string{"contractors"}, abi.PortForward, nil, fwd("remote", "localhost:8080"), abi.Deny, "localhost:8080"},
	}
	wasmtest.Both(t, Module(), pkg, cfg, func(t *testing.T, r wasmtest.Runner) {
		for _, tc := range cases {
			v, err := r.Policy(&abi.Request{Kind: tc.kind, Session: abi.Session{Groups: tc.groups}, Statements: tc.stmts, Attrs: tc.attrs})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if v.Action != tc.action || !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("%s: %v %q, want %v containing %q", tc.name, v.Action, v.Reason, tc.action, tc.reason)
			}
		}
	})
}
