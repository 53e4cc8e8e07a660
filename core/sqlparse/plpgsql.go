package sqlparse

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// PL/pgSQL expression parse modes (PostgreSQL's RawParseMode).
const (
	parseModeDefault  = 0 // a whole SQL statement
	parseModeTypeName = 1 // a type name
	parseModeExpr     = 2 // a SELECT list without the SELECT
	parseModeAssign1  = 3 // "target := expression", three target forms
	parseModeAssign3  = 5
)

// doBlock analyses the body of a DO statement into f. The body is compiled
// the way the server compiles it (plpgsql_compile_inline), then every SQL
// statement and expression in it is parsed and merged into f.
func (b *bounds) doBlock(n *pg_query.DoStmt, f *facts, doDepth int) {
	body, language, ok := doArgs(n)
	if !ok || language != "plpgsql" || doDepth >= maxDoDepth {
		f.dynamic = true
		return
	}
	text, ok := doText(body)
	if !ok || checkText(text) != nil {
		f.dynamic = true
		return
	}
	out, err := parsePlpgsqlJSON(text)
	if err != nil {
		f.dynamic = true
		return
	}
	w := plWalker{b: b, f: f, doDepth: doDepth + 1}
	if err := w.walk(out); err != nil {
		f.dynamic = true
	}
}

// doArgs returns the body and language of a DO statement; ok is false
// when it has no body.
func doArgs(n *pg_query.DoStmt) (body, language string, ok bool) {
	language = "plpgsql"
	for _, a := range n.GetArgs() {
		d := a.GetDefElem()
		if d == nil {
			continue
		}
		switch d.GetDefname() {
		case "as":
			body, ok = d.GetArg().GetString_().GetSval(), d.GetArg().GetString_() != nil
		case "language":
			// The server looks the language up by this exact name.
			language = d.GetArg().GetString_().GetSval()
		}
	}
	return body, language, ok
}

// doText writes a DO statement for body, dollar-quoted with a tag whose
// first occurrence after the opening one is the closing one.
func doText(body string) (string, bool) {
	for i := 0; i < 100; i++ {
		tag := "$gw$"
		if i > 0 {
			tag = "$gw" + strconv.Itoa(i) + "$"
		}
		if strings.Index(body+tag, tag) == len(body) {
			return "DO " + tag + body + tag, true
		}
	}
	return "", false
}

// plWalker visits the JSON tree of a compiled PL/pgSQL function.
type plWalker struct {
	b       *bounds
	f       *facts
	doDepth int // DO blocks around the body's statements
}

// walk streams over the JSON of the compiled function (a megabyte of body
// gives a tree too large to hold decoded) and handles the members that run
// SQL, in the order they appear.
func (w *plWalker) walk(out string) error {
	dec := json.NewDecoder(strings.NewReader(out))
	// inObject has an entry per open container: true for an object.
	var inObject []bool
	wantKey := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(inObject) != 0 {
				return io.ErrUnexpectedEOF
			}
			return nil
		}
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				inObject = append(inObject, d == '{')
				wantKey = d == '{'
			default:
				inObject = inObject[:len(inObject)-1]
				wantKey = len(inObject) > 0 && inObject[len(inObject)-1]
			}
			continue
		}
		if !wantKey {
			// A scalar value; in an object, a key comes next.
			wantKey = len(inObject) > 0 && inObject[len(inObject)-1]
			continue
		}
		key, _ := tok.(string)
		wantKey = false
		switch key {
		case "PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors", "dynquery":
			// EXECUTE, FOR ... IN EXECUTE, OPEN ... FOR EXECUTE,
			// RETURN QUERY EXECUTE: SQL built at run time.
			w.f.dynamic = true
		case "PLpgSQL_stmt_commit":
			w.f.kinds["COMMIT"] = struct{}{}
		case "PLpgSQL_stmt_rollback":
			w.f.kinds["ROLLBACK"] = struct{}{}
		case "PLpgSQL_expr":
			var e plExpr
			if err := dec.Decode(&e); err != nil {
				return err
			}
			w.expr(e)
			wantKey = true // the value is consumed; the next key follows
		}
	}
}

// plExpr is a PLpgSQL_expr: SQL text and how PL/pgSQL parses it.
type plExpr struct {
	Query     *string `json:"query"`
	ParseMode int     `json:"parseMode"`
}

// expr parses the SQL of one PLpgSQL_expr into the walker's facts.
func (w *plWalker) expr(e plExpr) {
	if e.Query == nil {
		w.f.dynamic = true
		return
	}
	query, mode := *e.Query, e.ParseMode
	switch {
	case mode == parseModeDefault:
		w.embed(query, true)
	case mode == parseModeTypeName:
		// A type name runs nothing.
	case mode == parseModeExpr:
		w.embed("SELECT "+query, false)
	case mode >= parseModeAssign1 && mode <= parseModeAssign3:
		target, value, ok := splitAssignment(query)
		if !ok {
			w.f.dynamic = true
			return
		}
		w.embed("SELECT "+target, false)
		w.embed("SELECT "+value, false)
	default:
		w.f.dynamic = true
	}
}

// embed parses SQL found in a PL/pgSQL body and merges what it does.
// withKind false leaves out the kind of each top-level statement: the
// SELECT the analysis wrapped around an expression is not one the body runs.
func (w *plWalker) embed(text string, withKind bool) {
	if w.b.parsesLeft <= 0 {
		w.f.dynamic = true
		return
	}
	w.b.parsesLeft--
	tree, err := parseTree(text)
	if err == nil {
		err = forEachStatement(tree, func(stmt []byte, info *msgInfo) error {
			f, root, err := w.b.analyse(stmt, info, w.doDepth)
			if err != nil {
				return err
			}
			w.f.merge(f)
			if withKind {
				for _, k := range rootKinds(root) {
					w.f.kinds[k] = struct{}{}
				}
			}
			return nil
		})
	}
	if err != nil {
		w.f.dynamic = true
	}
}

// splitAssignment splits a PL/pgSQL assignment "target := value" (or
// "target = value") at its operator, found with PostgreSQL's scanner
// outside any brackets.
func splitAssignment(query string) (target, value string, ok bool) {
	if checkText(query) != nil {
		return "", "", false
	}
	buf, err := scanProtobuf(query)
	if err != nil {
		return "", "", false
	}
	var scan pg_query.ScanResult
	if err := proto.Unmarshal(buf, &scan); err != nil {
		return "", "", false
	}
	nesting := 0
	for _, t := range scan.GetTokens() {
		switch t.GetToken() {
		case pg_query.Token_ASCII_40, pg_query.Token_ASCII_91: // ( [
			nesting++
		case pg_query.Token_ASCII_41, pg_query.Token_ASCII_93: // ) ]
			nesting--
		case pg_query.Token_COLON_EQUALS, pg_query.Token_ASCII_61: // := =
			start, end := int(t.GetStart()), int(t.GetEnd())
			if nesting == 0 && start >= 0 && start <= end && end <= len(query) {
				return query[:start], query[end:], true
			}
		}
	}
	return "", "", false
}
