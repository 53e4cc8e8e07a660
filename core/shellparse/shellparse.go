// Package shellparse analyses the command line of an SSH exec request with a bash
// parser and reports every command, redirection and dynamic construct, for policy modules.
package shellparse

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"mvdan.cc/sh/v3/syntax"
)

// MaxCommandLineBytes is the longest command line Parse accepts.
const MaxCommandLineBytes = 64 << 10

// maxNesting bounds the brackets ( and { open at any point of a command
// line. The parser recurses once or more for each, and a command line of
// MaxCommandLineBytes opening 32,000 parentheses takes it some 250 MB of
// stack; 1,000 levels take a few MB.
const maxNesting = 1000

// maxStringDepth bounds strings run as shell code inside strings run as shell
// code (bash -c 'sh -c "..."', eval, trap). Past it the string is not parsed
// and the analysis is Dynamic. Each nested string is shorter than the one
// holding it, so the work of one call of Parse is at most
// (maxStringDepth+1) parses of MaxCommandLineBytes.
const maxStringDepth = 4

// Contexts of a Command: where it sits in the command line. A command gets the
// context of the innermost construct around it; the body of if, while, until,
// for, case, { } and the operands of && and || add none.
const (
	// ContextTop is a command run directly by the command line's shell.
	ContextTop = ""
	// ContextSubshell is inside ( ... ).
	ContextSubshell = "subshell"
	// ContextCmdSubst is inside $( ... ) or ` ... `, including those in
	// arguments, assignments, redirection targets and here-documents.
	ContextCmdSubst = "cmdsubst"
	// ContextProcSubst is inside <( ... ) or >( ... ).
	ContextProcSubst = "procsubst"
	// ContextPipeline is an element of a pipeline a | b (or a |& b).
	ContextPipeline = "pipeline"
	// ContextFunction is inside the body of a function definition: it runs
	// only when the function is called, maybe never.
	ContextFunction = "function"
	// ContextBackground is a command run asynchronously: cmd &, or coproc.
	ContextBackground = "background"
	// ContextCondition is in the condition list of if, elif, while or until.
	ContextCondition = "condition"
	// ContextShellC is in the literal command string a shell runs: bash -c
	// 'string', sh -c, also behind sudo, env, nohup... and su -c 'string'.
	ContextShellC = "shell -c"
	// ContextEval is in the literal string the eval builtin runs (its
	// arguments joined by spaces) or in the literal action of trap.
	ContextEval = "eval"
)

// Command is one simple command found anywhere in the command line.
//
// Declaration builtins (declare, export, local, readonly, typeset, nameref)
// and let are commands too. The keywords [[ ]], (( )) and time are not; the
// commands inside their words are.
type Command struct {
	// Name is the command word after quote removal when it is a literal
	// ("ls", "/usr/bin/rm", "sudo"; `\rm`, 'rm' and r\m give "rm"); "" when
	// it is not, and then Dynamic is set (or when it is the empty literal
	// '', which bash cannot run).
	Name string
	// Args are the arguments after the name. A literal argument is its
	// value after quote removal; any other one (parameter expansion,
	// command or process substitution, arithmetic, brace expansion, a glob
	// with unquoted * ? [ or an extended glob, a leading unquoted ~, $"...")
	// is its source text, and sets Dynamic. The arguments of let are always
	// source text (they are arithmetic).
	Args []string
	// Env are the assignments written before the command (LANG=C ls) as
	// NAME=value (NAME+=value), the value after quote removal when literal,
	// otherwise the assignment's source text, which sets Dynamic.
	Env []string
	// Dynamic reports that the name, an argument or an assignment of Env is
	// not a literal.
	Dynamic bool
	// Context is where the command sits: one of the Context constants.
	Context string
}

// Redirect is one redirection, of any command or compound command.
type Redirect struct {
	// Op is the operator with its file descriptor, as written: ">", ">>",
	// "<", "<>", ">|", "&>", "&>>", ">&", "<&", "<<", "<<-", "<<<", and
	// with a descriptor "2>", "2>&", "{fd}>"...
	Op string
	// Target is the file (or descriptor, for >& and <&, or "-" to close
	// it) after quote removal when literal, otherwise its source text. For
	// a here-document (<< and <<-) it is the document's body, with the
	// leading tabs of <<- removed; for <<< the word.
	Target string
	// Dynamic reports that Target is not a literal: it holds an
	// expansion, or for a here-document with an unquoted delimiter, a
	// parameter expansion, command substitution or arithmetic.
	Dynamic bool
}

// Analysis is what a command line does, as far as a shell parser can tell.
type Analysis struct {
	// Commands is every simple command in source order: those of lists
	// (;, &, &&, ||), pipelines, subshells, { } groups, if, while, until,
	// for, select and case bodies and conditions, function bodies, command
	// and process substitutions (also in assignments, redirection targets
	// and here-documents), and of the literal strings run by eval, trap,
	// bash -c and the like (ContextShellC, ContextEval). A command comes
	// before the commands in its words, which come before those of the
	// strings it runs.
	Commands []Command
	// Redirects is every redirection in source order.
	Redirects []Redirect
	// Dynamic reports that the command line may run shell code or programs
	// that Commands does not name. It is set by:
	//   - a command whose name is not a literal ($cmd, $(which rm), {rm,x});
	//   - source or . with an argument (runs a file's code);
	//   - eval or a trap action that is not literal (literal ones are
	//     parsed, context "eval");
	//   - a shell (sh, bash, dash, zsh, ksh, mksh, ash, ...) given -c with
	//     a command string that is not literal, or reading its commands
	//     from standard input (no -c and no script operand, or -s, -i); a
	//     shell whose language is not parsed (fish, csh, tcsh, pwsh, ...)
	//     given -c or reading standard input; su or runuser without a
	//     literal -c string; sudo -s/-i or doas -s without a command;
	//     chroot without a command; env -S. These rules apply behind the
	//     wrappers sudo, doas, env, nohup, nice, ionice, timeout, stdbuf,
	//     setsid, chroot, xargs, time, busybox, command, builtin, exec and
	//     find -exec/-execdir/-ok/-okdir too (options skipped, nested
	//     wrappers followed); a wrapped command or a wrapper option that is
	//     not literal sets Dynamic;
	//   - a literal command string that does not parse, or strings nested
	//     more than 4 deep;
	//   - exec with redirections and no command (they then apply to every
	//     later command);
	//   - alias with a definition (name=value), hash -p, enable -f;
	//   - an assignment to PATH, LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT,
	//     BASH_ENV, ENV, SHELLOPTS, BASHOPTS, PS4, BASH_ALIASES, BASH_CMDS or
	//     BASH_FUNC_* (alone, before a command, through declare/export/...,
	//     or through env or sudo NAME=value), which changes what a name
	//     runs or makes a shell run more code;
	//   - a quoted string inside an arithmetic expression, which bash
	//     expands and evaluates again.
	// A command with a dynamic argument (rm "$f") does not set it: the
	// command is known, its Command.Dynamic is set.
	Dynamic bool
}

// Error is a command line that does not parse, or that Parse refuses.
type Error struct {
	Message string
	// Line and Col are the 1-based position of the error, Col counted in
	// characters; both 0 when the error has no position.
	Line, Col int
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("shellparse: %s at line %d, column %d", e.Message, e.Line, e.Col)
	}
	return "shellparse: " + e.Message
}

// Parse analyses cmdline with bash's grammar. An empty command line, or one
// of only blanks and comments, gives an Analysis without commands. A command
// line that does not parse as bash, is longer than MaxCommandLineBytes, holds
// a NUL byte (sshd would pass the shell only what precedes it), is not valid
// UTF-8, or has more than 1,000 brackets ( and { open at once (quoted ones
// count too) gives an *Error. Parse is safe for concurrent use.
//
// What the analysis does not see:
//   - It parses bash. A login shell that is sh, zsh or fish may read the
//     same text otherwise; aliases are not expanded (defining one is Dynamic).
//   - Names are as written. PATH lookup is not done, and a name may be a
//     function defined in the command line, whose body is listed (context
//     "function"), not marked on the call.
//   - Wrappers are not unwrapped in Commands: sudo rm -rf / is one Command
//     named "sudo". Only strings they run as shell code are parsed, and
//     shells, eval and the like behind them make the analysis Dynamic.
//   - Programs that run code of their own are not analysed: python -c,
//     perl -e, awk's system(), find -delete, ssh host cmd, watch cmd, git
//     aliases, mapfile -C, and the variables a process inherits.
//   - Bash evaluates array subscripts inside some literal strings (test -v
//     'a[$(id)]', unset, printf -v, read, declare -i): that code runs
//     unseen. Quoted strings inside (( )), $(( )) and let are Dynamic.
func Parse(cmdline string) (*Analysis, error) {
	if err := checkCommandLine(cmdline); err != nil {
		return nil, err
	}
	f, err := parseBash(cmdline)
	if err != nil {
		return nil, positionedError(cmdline, err)
	}
	return analyse(f, cmdline), nil
}

// analyse walks the tree f of the command line src.
func analyse(f *syntax.File, src string) *Analysis {
	a := &Analysis{}
	w := &walker{a: a, src: src}
	w.stmts(f.Stmts, ContextTop)
	return a
}

func checkCommandLine(cmdline string) *Error {
	switch {
	case len(cmdline) > MaxCommandLineBytes:
		return &Error{Message: "command line too long"}
	case strings.IndexByte(cmdline, 0) >= 0:
		return &Error{Message: "command line contains a NUL byte"}
	case !utf8.ValidString(cmdline):
		return &Error{Message: "command line is not valid UTF-8"}
	}
	if off := tooDeep(cmdline); off >= 0 {
		e := &Error{Message: "command line nested too deeply"}
		e.Line, e.Col = lineCol(cmdline, off)
		return e
	}
	return nil
}

// tooDeep returns the offset of the bracket that opens more than maxNesting
// ( and { at once, or -1. It counts every bracket, quoted or not, so that no
// quoting trick can hide one from it: a command line can only be refused for
// a thousand brackets left open in its strings.
func tooDeep(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '{':
			if depth++; depth > maxNesting {
				return i
			}
		case ')', '}':
			depth = max(depth-1, 0)
		}
	}
	return -1
}

// lineCol is the 1-based line and column, in characters, of a byte offset.
func lineCol(src string, off int) (line, col int) {
	off = min(off, len(src))
	line = 1 + strings.Count(src[:off], "\n")
	col = 1 + utf8.RuneCountInString(src[strings.LastIndexByte(src[:off], '\n')+1:off])
	return line, col
}

// parsers holds bash parsers for reuse: a new one allocates some 3 KiB of
// buffers. A Parser resets itself at the start of Parse.
var parsers = sync.Pool{New: func() any {
	return syntax.NewParser(syntax.Variant(syntax.LangBash))
}}

func parseBash(src string) (*syntax.File, error) {
	p := parsers.Get().(*syntax.Parser)
	defer parsers.Put(p)
	return p.Parse(strings.NewReader(src), "")
}

// positionedError converts an error of the parser, computing the position
// from the byte offset: the parser's own line and column saturate on long
// lines.
func positionedError(src string, err error) *Error {
	var pos syntax.Pos
	msg := err.Error()
	switch e := err.(type) {
	case syntax.ParseError:
		pos, msg = e.Pos, e.Text
	case syntax.LangError:
		pos = e.Pos
		msg = strings.TrimPrefix(msg, e.Pos.String()+": ")
	}
	if !pos.IsValid() {
		return &Error{Message: msg}
	}
	line, col := lineCol(src, int(pos.Offset()))
	return &Error{Message: msg, Line: line, Col: col}
}

// walker walks the tree of one command line, or of a string run as shell
// code inside it, adding what it finds to a.
type walker struct {
	a     *Analysis
	src   string // the text the positions of the tree refer to
	depth int    // strings run as code around this one
}

func (w *walker) stmts(stmts []*syntax.Stmt, ctx string) {
	for _, s := range stmts {
		w.stmt(s, ctx)
	}
}

func (w *walker) stmt(s *syntax.Stmt, ctx string) {
	if s == nil {
		return
	}
	if s.Background || s.Coprocess || s.Disown {
		ctx = ContextBackground
	}
	if call, ok := s.Cmd.(*syntax.CallExpr); ok {
		w.call(call, s.Redirs, ctx)
	} else {
		w.command(s.Cmd, ctx)
	}
	w.redirects(s.Redirs, ctx)
}

func (w *walker) command(cmd syntax.Command, ctx string) {
	switch c := cmd.(type) {
	case nil:
	case *syntax.CallExpr:
		w.call(c, nil, ctx)
	case *syntax.IfClause:
		for ; c != nil; c = c.Else {
			w.stmts(c.Cond, ContextCondition)
			w.stmts(c.Then, ctx)
		}
	case *syntax.WhileClause:
		w.stmts(c.Cond, ContextCondition)
		w.stmts(c.Do, ctx)
	case *syntax.ForClause:
		switch l := c.Loop.(type) {
		case *syntax.WordIter:
			for _, word := range l.Items {
				w.word(word, ctx)
			}
		case *syntax.CStyleLoop:
			w.arithm(l.Init, ctx)
			w.arithm(l.Cond, ctx)
			w.arithm(l.Post, ctx)
		}
		w.stmts(c.Do, ctx)
	case *syntax.CaseClause:
		w.word(c.Word, ctx)
		for _, item := range c.Items {
			for _, p := range item.Patterns {
				w.word(p, ctx)
			}
			w.stmts(item.Stmts, ctx)
		}
	case *syntax.Block:
		w.stmts(c.Stmts, ctx)
	case *syntax.Subshell:
		w.stmts(c.Stmts, ContextSubshell)
	case *syntax.BinaryCmd:
		if c.Op == syntax.Pipe || c.Op == syntax.PipeAll {
			ctx = ContextPipeline
		}
		w.stmt(c.X, ctx)
		w.stmt(c.Y, ctx)
	case *syntax.FuncDecl:
		w.stmt(c.Body, ContextFunction)
	case *syntax.ArithmCmd:
		w.arithm(c.X, ctx)
	case *syntax.TestClause:
		w.test(c.X, ctx)
	case *syntax.DeclClause:
		w.decl(c, ctx)
	case *syntax.LetClause:
		w.let(c, ctx)
	case *syntax.TimeClause:
		w.stmt(c.Stmt, ctx)
	case *syntax.CoprocClause:
		w.word(c.Name, ctx)
		w.stmt(c.Stmt, ContextBackground)
	case *syntax.TestDecl: // bats only; not produced for bash
		w.word(c.Description, ctx)
		w.stmt(c.Body, ContextFunction)
	}
}

// call reports a simple command, then what its name makes it run.
func (w *walker) call(c *syntax.CallExpr, redirs []*syntax.Redirect, ctx string) {
	if len(c.Args) == 0 { // assignments only
		for _, as := range c.Assigns {
			w.assign(as, ctx)
		}
		return
	}
	cmd := Command{Context: ctx}
	for _, as := range c.Assigns {
		text, lit := w.assignText(as)
		cmd.Env = append(cmd.Env, text)
		cmd.Dynamic = cmd.Dynamic || !lit
	}
	argv := make([]arg, len(c.Args))
	for i, word := range c.Args {
		argv[i] = w.arg(word)
		cmd.Dynamic = cmd.Dynamic || !argv[i].lit
	}
	if argv[0].lit {
		cmd.Name = argv[0].text
	}
	for _, a := range argv[1:] {
		cmd.Args = append(cmd.Args, a.text)
	}
	// The command, then the commands of its words, then those it runs.
	w.a.Commands = append(w.a.Commands, cmd)
	for _, as := range c.Assigns {
		w.assign(as, ctx)
	}
	for _, word := range c.Args {
		w.word(word, ctx)
	}
	w.inspect(argv, len(redirs) > 0, true)
}

// decl reports declare, export, local, readonly, typeset and nameref.
func (w *walker) decl(d *syntax.DeclClause, ctx string) {
	cmd := Command{Context: ctx}
	if d.Variant != nil {
		cmd.Name = d.Variant.Value
	}
	for _, as := range d.Args {
		text, lit := w.assignText(as)
		cmd.Args = append(cmd.Args, text)
		cmd.Dynamic = cmd.Dynamic || !lit
	}
	w.a.Commands = append(w.a.Commands, cmd)
	for _, as := range d.Args {
		w.assign(as, ctx)
	}
}

// let reports let, whose arguments are arithmetic expressions.
func (w *walker) let(l *syntax.LetClause, ctx string) {
	cmd := Command{Name: "let", Context: ctx, Dynamic: true}
	for _, x := range l.Exprs {
		cmd.Args = append(cmd.Args, w.source(x))
	}
	w.a.Commands = append(w.a.Commands, cmd)
	for _, x := range l.Exprs {
		w.arithm(x, ctx)
	}
}

// assign walks the words of an assignment, and notes one that changes what
// names run.
func (w *walker) assign(as *syntax.Assign, ctx string) {
	if as == nil {
		return
	}
	if as.Name != nil && (as.Value != nil || as.Array != nil) && execVariable(as.Name.Value) {
		w.a.Dynamic = true
	}
	w.arithm(as.Index, ctx)
	w.word(as.Value, ctx)
	if as.Array != nil {
		for _, e := range as.Array.Elems {
			w.arithm(e.Index, ctx)
			w.word(e.Value, ctx)
		}
	}
}

// assignText is an assignment as NAME=value with the value's quotes removed,
// or its source text when it is not literal.
func (w *walker) assignText(as *syntax.Assign) (string, bool) {
	switch {
	case as == nil:
		return "", true
	case as.Name == nil: // a naked word of a declaration: -x, "$v"
		a := w.arg(as.Value)
		return a.text, a.lit
	case as.Index != nil || as.Array != nil:
		return w.source(as), as.Array != nil && as.Index == nil && w.literalArray(as.Array)
	case as.Naked:
		return as.Name.Value, true
	}
	op := "="
	if as.Append {
		op = "+="
	}
	v, lit := "", true
	if as.Value != nil {
		v, lit = literalAssignValue(as.Value)
		if !lit {
			return w.source(as), false
		}
	}
	return as.Name.Value + op + v, true
}

func (w *walker) literalArray(a *syntax.ArrayExpr) bool {
	for _, e := range a.Elems {
		if e.Index != nil {
			return false
		}
		if _, lit := literal(e.Value); !lit {
			return false
		}
	}
	return true
}

func (w *walker) redirects(rs []*syntax.Redirect, ctx string) {
	for _, r := range rs {
		op := r.Op.String()
		if r.N != nil {
			op = r.N.Value + op
		}
		red := Redirect{Op: op}
		switch {
		case r.Hdoc != nil || r.Op == syntax.Hdoc || r.Op == syntax.DashHdoc:
			red.Target, red.Dynamic = w.heredoc(r)
			w.word(r.Hdoc, ctx)
		default:
			a := w.arg(r.Word)
			red.Target, red.Dynamic = a.text, !a.lit
			w.word(r.Word, ctx)
		}
		w.a.Redirects = append(w.a.Redirects, red)
	}
}

// word walks the parts of a word for the commands they run.
func (w *walker) word(word *syntax.Word, ctx string) {
	if word == nil {
		return
	}
	w.parts(word.Parts, ctx)
}

func (w *walker) parts(parts []syntax.WordPart, ctx string) {
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.DblQuoted:
			w.parts(p.Parts, ctx)
		case *syntax.CmdSubst:
			w.stmts(p.Stmts, ContextCmdSubst)
		case *syntax.ProcSubst:
			w.stmts(p.Stmts, ContextProcSubst)
		case *syntax.ArithmExp:
			w.arithm(p.X, ctx)
		case *syntax.ParamExp:
			w.param(p, ctx)
		case *syntax.BraceExp:
			for _, e := range p.Elems {
				w.word(e, ctx)
			}
		}
	}
}

func (w *walker) param(p *syntax.ParamExp, ctx string) {
	if p.NestedParam != nil {
		w.parts([]syntax.WordPart{p.NestedParam}, ctx)
	}
	w.arithm(p.Index, ctx)
	if p.Slice != nil {
		w.arithm(p.Slice.Offset, ctx)
		w.arithm(p.Slice.Length, ctx)
	}
	if p.Repl != nil {
		w.word(p.Repl.Orig, ctx)
		w.word(p.Repl.With, ctx)
	}
	if p.Exp != nil {
		w.word(p.Exp.Word, ctx)
	}
}

// arithm walks an arithmetic expression. A quoted part in it is a string
// bash evaluates again as arithmetic, with its expansions: Dynamic.
func (w *walker) arithm(x syntax.ArithmExpr, ctx string) {
	switch x := x.(type) {
	case nil:
	case *syntax.BinaryArithm:
		w.arithm(x.X, ctx)
		w.arithm(x.Y, ctx)
	case *syntax.UnaryArithm:
		w.arithm(x.X, ctx)
	case *syntax.ParenArithm:
		w.arithm(x.X, ctx)
	case *syntax.FlagsArithm:
		w.arithm(x.X, ctx)
	case *syntax.Word:
		for _, p := range x.Parts {
			switch p.(type) {
			case *syntax.SglQuoted, *syntax.DblQuoted:
				w.a.Dynamic = true
			}
		}
		w.word(x, ctx)
	}
}

func (w *walker) test(x syntax.TestExpr, ctx string) {
	switch x := x.(type) {
	case nil:
	case *syntax.BinaryTest:
		w.test(x.X, ctx)
		w.test(x.Y, ctx)
	case *syntax.UnaryTest:
		w.test(x.X, ctx)
	case *syntax.ParenTest:
		w.test(x.X, ctx)
	case *syntax.Word:
		w.word(x, ctx)
	}
}

// source is the source text of a node, or its printed form when its
// positions do not fit the text.
func (w *walker) source(n syntax.Node) string {
	if word, ok := n.(*syntax.Word); n == nil || ok && len(word.Parts) == 0 {
		return "" // Pos and End of a word without parts panic
	}
	start, end := n.Pos(), n.End()
	if start.IsValid() && end.IsValid() {
		s, e := int(start.Offset()), int(end.Offset())
		if s <= e && e <= len(w.src) {
			return w.src[s:e]
		}
	}
	var sb strings.Builder
	if err := syntax.NewPrinter().Print(&sb, n); err != nil {
		return ""
	}
	return sb.String()
}

// runString parses a literal string that a command runs as shell code and
// walks it with ctx as its top-level context.
func (w *walker) runString(code, ctx string) {
	if w.depth >= maxStringDepth || checkCommandLine(code) != nil {
		w.a.Dynamic = true
		return
	}
	f, err := parseBash(code)
	if err != nil {
		w.a.Dynamic = true
		return
	}
	inner := &walker{a: w.a, src: code, depth: w.depth + 1}
	inner.stmts(f.Stmts, ctx)
}

// execVariable reports whether assigning the variable changes which program
// a name runs, or makes a shell or the dynamic loader run more code.
func execVariable(name string) bool {
	switch name {
	case "PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_ENV", "ENV",
		"SHELLOPTS", "BASHOPTS", "PS4", "BASH_ALIASES", "BASH_CMDS":
		return true
	}
	return strings.HasPrefix(name, "BASH_FUNC_")
}
