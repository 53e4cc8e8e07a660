package main

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest"
)

// defaultDenyFunctions are the server-side functions that read or write the
// database server's files or reach other servers. They are denied unless
// the config lists deny_functions itself.
var defaultDenyFunctions = []string{
	"pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file",
	"pg_ls_logdir", "pg_ls_waldir", "pg_ls_tmpdir", "pg_ls_archive_statusdir",
	"lo_import", "lo_export", "dblink*", "pg_file_write", "pg_file_rename", "pg_file_unlink",
}

// readKinds are the statement kinds read_only allows.
var readKinds = []string{
	"SELECT", "SHOW", "EXPLAIN", "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT",
	"SAVEPOINT", "RELEASE", "SET", "RESET", "DECLARE", "FETCH", "MOVE", "CLOSE",
	"PREPARE", "EXECUTE", "DEALLOCATE", "LISTEN", "UNLISTEN", "DISCARD", "COPY", "VALUES",
}

// rule is one set of restrictions. The config's top level is a rule for
// every session; each entry of "rules" applies to members of its groups.
type rule struct {
	Groups          []string `json:"groups"`
	DenyKinds       []string `json:"deny_kinds"`
	DenyFunctions   []string `json:"deny_functions"`
	ReviewKinds     []string `json:"review_kinds"`
	Reviewers       []string `json:"reviewers"`
	ReadOnly        bool     `json:"read_only"`
	DenyTables      []string `json:"deny_tables"`
	AllowCopyFrom   *bool    `json:"allow_copy_from"`
	DenyCopyProgram *bool    `json:"deny_copy_program"`
	DenyServerFiles *bool    `json:"deny_server_files"`
	DenyDynamic     *bool    `json:"deny_dynamic"`

	// Rules for commands (SSH exec, shells, subsystems).
	DenyCommands   []string `json:"deny_commands"`   // globs on the command's name, with or without its path
	ReviewCommands []string `json:"review_commands"` // likewise, needing approval by reviewers
	DenyShell      bool     `json:"deny_shell"`      // refuse interactive shells
	DenySubsystems []string `json:"deny_subsystems"` // e.g. ["sftp"]
	DenyForwards   []string `json:"deny_forwards"`   // globs on "host:port" of SSH port forwards, either direction
}

type config struct {
	rule
	// AllowFunctionCall lets FunctionCall messages through; they are
	// denied by default because they bypass SQL.
	AllowFunctionCall bool   `json:"allow_function_call"`
	Rules             []rule `json:"rules"`
}

// guard is a parsed config.
type guard struct {
	cfg config
}

func newGuard(raw []byte) (*guard, error) {
	var c config
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("sqlguard config: %v", err)
	}
	if c.DenyFunctions == nil {
		c.DenyFunctions = defaultDenyFunctions
	}
	if len(c.Groups) > 0 {
		return nil, fmt.Errorf("sqlguard config: \"groups\" belongs in an entry of \"rules\" (or on the [[policy]] table)")
	}
	for _, r := range append([]rule{c.rule}, c.Rules...) {
		for _, g := range slices.Concat(r.DenyFunctions, r.DenyTables, r.DenyCommands, r.ReviewCommands, r.DenyForwards) {
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("sqlguard config: bad pattern %q: %v", g, err)
			}
		}
		if len(r.ReviewKinds)+len(r.ReviewCommands) > 0 && len(r.Reviewers) == 0 {
			return nil, fmt.Errorf("sqlguard config: review_kinds and review_commands need reviewers (the groups that may approve)")
		}
	}
	for i, r := range c.Rules {
		if len(r.Groups) == 0 {
			return nil, fmt.Errorf("sqlguard config: rules[%d] has no groups", i)
		}
	}
	upper(c.DenyKinds)
	upper(c.ReviewKinds)
	for i := range c.Rules {
		upper(c.Rules[i].DenyKinds)
		upper(c.Rules[i].ReviewKinds)
	}
	return &guard{cfg: c}, nil
}

func upper(ss []string) {
	for i, s := range ss {
		ss[i] = strings.ToUpper(strings.TrimSpace(s))
	}
}

func deny(format string, args ...any) abi.Verdict {
	return abi.Verdict{Action: abi.Deny, Reason: fmt.Sprintf(format, args...)}
}

func on(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// judge decides one request.
func (g *guard) judge(req *abi.Request) abi.Verdict {
	if req.Kind == abi.SQLFunctionCall {
		if g.cfg.AllowFunctionCall {
			return abi.Verdict{}
		}
		return deny("FunctionCall messages are not allowed on this connection (fast-path function %s)", req.Attr("function_oid"))
	}
	rules := []*rule{&g.cfg.rule}
	for i := range g.cfg.Rules {
		r := &g.cfg.Rules[i]
		if slices.ContainsFunc(r.Groups, func(grp string) bool { return slices.Contains(req.Session.Groups, grp) }) {
			rules = append(rules, r)
		}
	}
	var review *abi.Verdict
	switch req.Kind {
	case abi.ShellSession:
		for _, r := range rules {
			if r.DenyShell {
				return deny("interactive shells are not allowed on this connection; run a command instead")
			}
		}
		return abi.Verdict{}
	case abi.Subsystem:
		name := req.Attr("name")
		for _, r := range rules {
			if slices.Contains(r.DenySubsystems, name) {
				return deny("the %s subsystem is not allowed on this connection", name)
			}
		}
		return abi.Verdict{}
	case abi.PortForward:
		addr := req.Attr("address")
		for _, r := range rules {
			for _, g := range r.DenyForwards {
				if ok, _ := path.Match(g, addr); ok {
					return deny("port forwarding (%s) to %s is not allowed on this connection", req.Attr("direction"), addr)
				}
			}
		}
		return abi.Verdict{}
	}
	check := (*rule).check
	if req.Kind == abi.ShellExec {
		check = (*rule).checkCommand
	}
	for i := range req.Statements {
		st := &req.Statements[i]
		for _, r := range rules {
			if v, ok := check(r, st); ok {
				if v.Action == abi.Review {
					if review == nil {
						review = &v
					}
					continue
				}
				return v
			}
		}
	}
	if review != nil {
		return *review
	}
	return abi.Verdict{}
}

// check returns the verdict of r on st, if r has one.
func (r *rule) check(st *abi.Statement) (abi.Verdict, bool) {
	for _, k := range st.Kinds {
		if slices.Contains(r.DenyKinds, k) {
			return deny("%s statements are not allowed on this connection", k), true
		}
	}
	for _, f := range st.Functions {
		if p, ok := matchAny(r.DenyFunctions, f); ok {
			return deny("calling %s is not allowed on this connection (denied: %s)", f, p), true
		}
	}
	for _, t := range st.Tables {
		if p, ok := matchAny(r.DenyTables, t); ok {
			return deny("table %s may not be used on this connection (denied: %s)", t, p), true
		}
	}
	if st.Flags&abi.CopyProgram != 0 && on(r.DenyCopyProgram, true) {
		return deny("COPY ... PROGRAM runs commands on the database server and is not allowed"), true
	}
	if st.Flags&abi.CopyFile != 0 && on(r.DenyServerFiles, true) {
		return deny("COPY to or from a file on the database server is not allowed"), true
	}
	if st.Flags&abi.Dynamic != 0 && on(r.DenyDynamic, true) {
		return deny("%s runs SQL the gateway cannot inspect (dynamic EXECUTE or a non-plpgsql language) and is not allowed", st.Kind), true
	}
	if r.ReadOnly {
		for _, k := range st.Kinds {
			if !slices.Contains(readKinds, k) {
				return deny("this connection is read-only: %s is not allowed", k), true
			}
		}
		if st.Flags&abi.CopyFrom != 0 && !on(r.AllowCopyFrom, false) {
			return deny("this connection is read-only: COPY ... FROM is not allowed"), true
		}
	}
	for _, k := range st.Kinds {
		if slices.Contains(r.ReviewKinds, k) {
			if st.Kind == "PREPARE" && k != "PREPARE" {
				// One approval of the PREPARE would let every later
				// EXECUTE of it run unseen.
				return deny("%s statements need approval, and cannot be prepared with SQL PREPARE (each EXECUTE would run unreviewed): run the statement itself", k), true
			}
			return abi.Verdict{Action: abi.Review, Reviewers: r.Reviewers,
				Reason: fmt.Sprintf("%s statements need approval by %s", k, strings.Join(r.Reviewers, " or "))}, true
		}
	}
	return abi.Verdict{}, false
}

// checkCommand returns the verdict of r on one command of a command line.
func (r *rule) checkCommand(st *abi.Statement) (abi.Verdict, bool) {
	if st.Flags&abi.Dynamic != 0 && on(r.DenyDynamic, true) && (len(r.DenyCommands)+len(r.ReviewCommands) > 0) {
		what := st.Kind
		if what == "" || what == "REDIRECT" {
			what = "the command line"
		}
		return deny("%s runs something the gateway cannot resolve before it runs (an expansion, eval, a shell reading a script) and is not allowed here", what), true
	}
	if st.Kind == "REDIRECT" || st.Kind == "" {
		return abi.Verdict{}, false
	}
	if st.Flags&abi.DynamicArgs != 0 && on(r.DenyDynamic, true) && len(r.DenyCommands)+len(r.ReviewCommands) > 0 &&
		slices.Contains(wrappers, st.Kind[strings.LastIndexByte(st.Kind, '/')+1:]) {
		return deny("%s is given its command by an expansion the gateway cannot resolve before it runs, and is not allowed here", st.Kind), true
	}
	for _, name := range commandNames(st) {
		base := name[strings.LastIndexByte(name, '/')+1:]
		for _, p := range r.DenyCommands {
			if ok, _ := path.Match(p, name); ok || matchBase(p, base) {
				return deny("the command %s is not allowed on this connection (denied: %s)", name, p), true
			}
		}
		for _, p := range r.ReviewCommands {
			if ok, _ := path.Match(p, name); ok || matchBase(p, base) {
				return abi.Verdict{Action: abi.Review, Reviewers: r.Reviewers,
					Reason: fmt.Sprintf("the command %s needs approval by %s", name, strings.Join(r.Reviewers, " or "))}, true
			}
		}
	}
	return abi.Verdict{}, false
}

// wrappers run another command given in their arguments.
var wrappers = []string{"sudo", "doas", "xargs", "env", "nohup", "nice", "ionice", "timeout", "stdbuf",
	"setsid", "chroot", "time", "busybox", "command", "builtin", "exec", "watch", "strace", "flock", "unbuffer"}

// commandNames are the names a command runs as: its own, and for a wrapper
// (sudo, xargs, env, ...) every argument that is not an option or an
// assignment, since one of them is the command it runs. That may deny a
// plain argument that happens to carry a denied name: the safe side.
func commandNames(st *abi.Statement) []string {
	names := []string{st.Kind}
	base := st.Kind[strings.LastIndexByte(st.Kind, '/')+1:]
	if !slices.Contains(wrappers, base) {
		return names
	}
	for _, a := range st.Functions {
		if a == "" || strings.HasPrefix(a, "-") || strings.Contains(a, "=") {
			continue
		}
		names = append(names, a)
	}
	return names
}

// matchBase matches a pattern without a slash against a command's base name.
func matchBase(p, base string) bool {
	if strings.Contains(p, "/") {
		return false
	}
	ok, _ := path.Match(p, base)
	return ok
}

// matchAny matches a function or table name against patterns: a pattern
// without a schema matches the name in any schema.
func matchAny(patterns []string, name string) (string, bool) {
	name = strings.ToLower(name)
	_, base, qualified := strings.Cut(name, ".")
	for _, p := range patterns {
		p = strings.ToLower(p)
		if ok, _ := path.Match(p, name); ok {
			return p, true
		}
		if qualified && !strings.Contains(p, ".") {
			if ok, _ := path.Match(p, base); ok {
				return p, true
			}
		}
	}
	return "", false
}

// Module is sqlguard as a guest module.
func Module() guest.Module {
	var g *guard
	return guest.Module{
		Subscribe: abi.Subscribe(abi.SQLQuery, abi.SQLParse, abi.SQLFunctionCall, abi.ShellExec, abi.ShellSession, abi.Subsystem, abi.PortForward),
		Init: func(raw []byte) error {
			var err error
			g, err = newGuard(raw)
			return err
		},
		Policy: func(req *abi.Request) abi.Verdict { return g.judge(req) },
	}
}
