// Package sqlparse analyses SQL text with PostgreSQL's own grammar (pg_query) and
// reports what each statement does, so that policy modules can decide on it.
package sqlparse

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/proto"
)

// MaxTextBytes is the longest text Parse accepts.
const MaxTextBytes = 1 << 20

const (
	// maxDoDepth bounds DO blocks nested inside DO bodies; deeper ones are
	// reported as Dynamic instead of analysed.
	maxDoDepth = 8
	// maxEmbeddedParses bounds the SQL snippets of PL/pgSQL bodies parsed
	// for one call of Parse; past it the DO statement is reported as Dynamic.
	maxEmbeddedParses = 10000
)

// Statement is what one SQL statement does.
//
// Names in Tables and Functions are the parts the grammar produced joined by
// ".": unquoted identifiers are folded to lower case, quoted ones keep their
// case ("MyTable" gives MyTable). A part that itself contains "." or `"` is
// written double-quoted (`"a.b".c`) so that a joined name is never ambiguous.
type Statement struct {
	// Kind is the statement's leading keyword in upper case: "SELECT",
	// "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "ALTER", "DROP",
	// "TRUNCATE", "GRANT", "REVOKE", "COPY", "DO", "PREPARE", "EXECUTE",
	// "DEALLOCATE", "EXPLAIN", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT",
	// "RELEASE", "SET", "RESET", "SHOW", "CALL", "LISTEN", "NOTIFY",
	// "UNLISTEN", "DECLARE", "FETCH", "MOVE", "CLOSE", "VACUUM", "ANALYZE",
	// "CLUSTER", "REINDEX", "CHECKPOINT", "LOAD", "LOCK", "DISCARD",
	// "REFRESH", "COMMENT", "SECURITY LABEL", "IMPORT", "REASSIGN".
	//
	// START TRANSACTION is "BEGIN"; END and ABORT are "COMMIT" and "ROLLBACK".
	// SELECT ... INTO creates a table and is "CREATE" with Object "TABLE".
	// VALUES and TABLE are "SELECT".
	Kind string
	// Object is the object type the statement acts on, in upper case, when
	// its grammar names one: "TABLE", "INDEX", "FUNCTION", "ROLE",
	// "MATERIALIZED VIEW", ... for CREATE, ALTER, DROP, GRANT, REVOKE,
	// COMMENT, SECURITY LABEL, REINDEX and REFRESH; "TRANSACTION" for
	// PREPARE TRANSACTION, "PREPARED" for COMMIT/ROLLBACK PREPARED,
	// "SAVEPOINT" for ROLLBACK TO SAVEPOINT, "CONSTRAINTS" for SET
	// CONSTRAINTS, "SYSTEM" for ALTER SYSTEM, "OWNED" for DROP/REASSIGN
	// OWNED. Empty otherwise. CREATE USER and CREATE GROUP give "ROLE".
	Object string
	// Kinds is every statement kind found anywhere inside, Kind included,
	// unique and sorted: a DELETE in a CTE, the query of PREPARE, EXPLAIN
	// (listed whether or not ANALYZE runs it), CREATE TABLE AS, CREATE
	// VIEW, CREATE RULE and DECLARE CURSOR, statements of a DO block's
	// PL/pgSQL body (COMMIT and ROLLBACK there too), statements of a
	// SQL-standard function body (BEGIN ATOMIC), GRANT/REVOKE of ALTER
	// DEFAULT PRIVILEGES. Every sub-query adds "SELECT"; a VALUES list
	// inside another statement does not; the SET of ALTER SYSTEM/ROLE/
	// DATABASE/FUNCTION does not.
	Kinds []string
	// Tables is every relation named, unique and sorted: each RangeVar of
	// the tree (FROM items, DML targets, ALTER/TRUNCATE/LOCK/GRANT
	// targets, COPY, ...) and the relations a DROP TABLE/VIEW/INDEX/
	// SEQUENCE/MATERIALIZED VIEW/FOREIGN TABLE removes. References to a
	// CTE by name are listed too (the grammar cannot tell them apart).
	Tables []string
	// Functions is every function called (FuncCall), unique and sorted,
	// as written: "pg_read_file" and "pg_catalog.pg_read_file" are
	// different entries. Functions the grammar writes for SQL syntax
	// appear with the name it uses, such as "pg_catalog.extract" for
	// EXTRACT(... FROM ...). Calls inside DO bodies are included; the
	// procedure of CALL is included.
	Functions []string
	// Copy describes a COPY statement; nil otherwise. For a DO block it
	// describes the COPY in its body that reaches furthest (PROGRAM, then a
	// server file), if any.
	Copy *Copy
	// Dynamic reports that the statement runs SQL the analysis cannot see:
	// a DO block whose body uses EXECUTE (dynamic SQL), whose language is
	// not plpgsql, whose body does not compile, or that is nested or large
	// beyond the analysis bounds.
	Dynamic bool
}

// Copy is what a COPY statement moves, and where.
type Copy struct {
	From     bool     // COPY ... FROM (into the table); false: TO
	Program  bool     // COPY ... PROGRAM
	Stdio    bool     // STDIN or STDOUT; false: a server-side file or program
	Relation string   // the table; "" for COPY (query) TO
	Columns  []string // the column list, if written
	Format   string   // the FORMAT option, lower-cased: "text" (default), "csv", "binary"
}

// Error is a statement that does not parse, or that Parse refuses.
type Error struct {
	Message string
	// Cursor is the 1-based character position PostgreSQL reports for the
	// error (for "statement nested too deeply", where the analysis gave
	// up), 0 when there is none.
	Cursor int
}

func (e *Error) Error() string {
	if e.Cursor > 0 {
		return fmt.Sprintf("sqlparse: %s at position %d", e.Message, e.Cursor)
	}
	return "sqlparse: " + e.Message
}

// Parse analyses text, which may hold several statements separated by ';',
// and returns them in the order they appear. Empty text, or text of only
// semicolons, white space and comments, gives no statements and no error.
// Text that does not parse, is longer than MaxTextBytes, is not valid UTF-8,
// holds a NUL byte or nests too deeply to analyse (an operator chain of
// some 1,000 links, 9,000 UNIONs or JOINs; see depth.go) gives an *Error.
// Parse is safe for concurrent use; calls into libpg_query are serialised.
func Parse(text string) ([]Statement, error) {
	b := &bounds{parsesLeft: maxEmbeddedParses}
	return b.parse(text, 0)
}

// bounds carries the limits of one call of Parse through nested DO bodies.
type bounds struct {
	parsesLeft int
}

func (b *bounds) parse(text string, doDepth int) ([]Statement, error) {
	tree, err := parseTree(text)
	if err != nil {
		return nil, err
	}
	var stmts []Statement
	err = forEachStatement(tree, func(stmt []byte, info *msgInfo) error {
		f, root, err := b.analyse(stmt, info, doDepth)
		if err != nil {
			return err
		}
		kind, object := statementKind(root)
		if kind == "" {
			kind = "UNKNOWN" // a statement type newer than this package
		}
		f.kinds[kind] = struct{}{}
		for _, k := range rootKinds(root) {
			f.kinds[k] = struct{}{}
		}
		stmts = append(stmts, Statement{
			Kind:      kind,
			Object:    object,
			Kinds:     sortedKeys(f.kinds),
			Tables:    sortedKeys(f.tables),
			Functions: sortedKeys(f.functions),
			Copy:      f.copy,
			Dynamic:   f.dynamic,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stmts, nil
}

// analyse walks one top-level statement and returns what it found and the
// statement decoded shallow. The kinds it finds leave out the statement's
// own (see rootKinds); its copy is the statement's own when it is a COPY.
func (b *bounds) analyse(stmt []byte, info *msgInfo, doDepth int) (*facts, proto.Message, error) {
	w := walker{b: b, f: newFacts(), doDepth: doDepth}
	if err := w.walk(stmt, info, 0, true); err != nil {
		return nil, nil, err
	}
	if w.root == nil { // not a statement: cannot happen at the top level
		w.root = info.typ.Zero().Interface()
	}
	return w.f, w.root, nil
}

// facts gathers what a walk over a tree finds.
type facts struct {
	kinds     map[string]struct{}
	tables    map[string]struct{}
	functions map[string]struct{}
	copy      *Copy
	dynamic   bool
}

func newFacts() *facts {
	return &facts{
		kinds:     map[string]struct{}{},
		tables:    map[string]struct{}{},
		functions: map[string]struct{}{},
	}
}

// merge adds what g found to f.
func (f *facts) merge(g *facts) {
	for k := range g.kinds {
		f.kinds[k] = struct{}{}
	}
	for t := range g.tables {
		f.tables[t] = struct{}{}
	}
	for fn := range g.functions {
		f.functions[fn] = struct{}{}
	}
	if g.dynamic {
		f.dynamic = true
	}
	if g.copy != nil && (f.copy == nil || copyReach(g.copy) > copyReach(f.copy)) {
		f.copy = g.copy
	}
}

// copyReach ranks a COPY by how far outside the database it reaches.
func copyReach(c *Copy) int {
	switch {
	case c.Program:
		return 2
	case !c.Stdio:
		return 1
	default:
		return 0
	}
}

// qualifiedName joins the non-empty parts with ".", quoting a part that
// contains "." or `"`.
func qualifiedName(parts ...string) string {
	var sb strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		if strings.ContainsAny(p, `."`) {
			sb.WriteByte('"')
			sb.WriteString(strings.ReplaceAll(p, `"`, `""`))
			sb.WriteByte('"')
			continue
		}
		sb.WriteString(p)
	}
	return sb.String()
}

func sortedKeys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// copyOf describes a COPY statement.
func copyOf(c *pg_query.CopyStmt) *Copy {
	cp := &Copy{
		From:    c.GetIsFrom(),
		Program: c.GetIsProgram(),
		Stdio:   !c.GetIsProgram() && c.GetFilename() == "",
		Format:  "text",
	}
	if r := c.GetRelation(); r != nil {
		cp.Relation = qualifiedName(r.GetCatalogname(), r.GetSchemaname(), r.GetRelname())
	}
	for _, a := range c.GetAttlist() {
		if s := a.GetString_(); s != nil {
			cp.Columns = append(cp.Columns, s.GetSval())
		}
	}
	for _, o := range c.GetOptions() {
		d := o.GetDefElem()
		if d == nil || d.GetDefname() != "format" {
			continue
		}
		if s := d.GetArg().GetString_(); s != nil {
			cp.Format = strings.ToLower(s.GetSval())
		}
	}
	return cp
}

// checkText refuses text Parse does not analyse.
func checkText(text string) error {
	switch {
	case len(text) > MaxTextBytes:
		return &Error{Message: "statement too long"}
	case strings.IndexByte(text, 0) >= 0:
		// C strings end at NUL: the parser would see only a prefix.
		return &Error{Message: "statement contains a NUL byte"}
	case !utf8.ValidString(text):
		return &Error{Message: "statement is not valid UTF-8"}
	}
	return nil
}

// parseTree parses text into pg_query's protobuf encoding of the tree.
func parseTree(text string) ([]byte, error) {
	if err := checkText(text); err != nil {
		return nil, err
	}
	if err := checkDepth(text); err != nil {
		return nil, err
	}
	tree, err := parseProtobuf(text)
	if err != nil {
		return nil, pgError(err)
	}
	return tree, nil
}

// pgError converts an error of the C parser.
func pgError(err error) *Error {
	if pe, ok := err.(*parser.Error); ok {
		return &Error{Message: pe.Message, Cursor: pe.Cursorpos}
	}
	return &Error{Message: err.Error()}
}
