package shellparse

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"mvdan.cc/sh/v3/syntax"
)

// cmd is a shorthand for a Command at the top level with literal words.
func cmd(name string, args ...string) Command {
	return Command{Name: name, Args: args}
}

// in returns c in context ctx.
func in(ctx string, c Command) Command {
	c.Context = ctx
	return c
}

// dyn returns c with Dynamic set.
func dyn(c Command) Command {
	c.Dynamic = true
	return c
}

func cmds(c ...Command) []Command { return c }

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		want    Analysis
	}{
		// Plain commands and quote removal.
		{"simple", "ls -la /tmp", Analysis{Commands: cmds(cmd("ls", "-la", "/tmp"))}},
		{"plain name", "sftp-server", Analysis{Commands: cmds(cmd("sftp-server"))}},
		{"path name", "/usr/lib/openssh/sftp-server -e", Analysis{Commands: cmds(cmd("/usr/lib/openssh/sftp-server", "-e"))}},
		{"empty", "", Analysis{}},
		{"blanks and comment", "  \n\t# nothing here\n", Analysis{}},
		{"backslash before name", `\rm x`, Analysis{Commands: cmds(cmd("rm", "x"))}},
		{"single-quoted name", `'rm' x`, Analysis{Commands: cmds(cmd("rm", "x"))}},
		{"backslash inside name", `r\m x`, Analysis{Commands: cmds(cmd("rm", "x"))}},
		{"double-quoted name", `"r"m x`, Analysis{Commands: cmds(cmd("rm", "x"))}},
		{"ansi-c name", `$'\x72m' x`, Analysis{Commands: cmds(cmd("rm", "x"))}},
		{"ansi-c cut at NUL", `rm $'x\0y'z`, Analysis{Commands: cmds(cmd("rm", "xz"))}},
		{"line continuation", "r\\\nm x", Analysis{Commands: cmds(cmd("rm", "x"))}},
		{"double quotes", `echo "a\$b\q" "it's"`, Analysis{Commands: cmds(cmd("echo", `a$b\q`, "it's"))}},
		{"escaped glob and braces", `echo \* \{a,b\} "*" '[a]'`, Analysis{Commands: cmds(cmd("echo", "*", "{a,b}", "*", "[a]"))}},
		{"test bracket", "[ -f /etc/passwd ]", Analysis{Commands: cmds(cmd("[", "-f", "/etc/passwd", "]"))}},
		{"braces without expansion", `find . -exec echo {} \;`, Analysis{Commands: cmds(cmd("find", ".", "-exec", "echo", "{}", ";"))}},
		{"sudo", "sudo rm -rf /", Analysis{Commands: cmds(cmd("sudo", "rm", "-rf", "/"))}},
		{"prefix assignment", "FOO=1 env", Analysis{Commands: cmds(Command{Name: "env", Env: []string{"FOO=1"}})}},
		{"prefix assignment quoted", `A='x y' B+=z ls`, Analysis{Commands: cmds(Command{Name: "ls", Env: []string{"A=x y", "B+=z"}})}},
		{"prefix assignment dynamic", `A=$HOME ls`, Analysis{Commands: cmds(Command{Name: "ls", Env: []string{"A=$HOME"}, Dynamic: true})}},

		// Dynamic words.
		{"glob", "rm *.log", Analysis{Commands: cmds(dyn(cmd("rm", "*.log")))}},
		{"bracket glob", "rm a[0-9]", Analysis{Commands: cmds(dyn(cmd("rm", "a[0-9]")))}},
		{"brace expansion", "rm {a,b}", Analysis{Commands: cmds(dyn(cmd("rm", "{a,b}")))}},
		{"brace expansion with quotes", `rm {a,"b"}`, Analysis{Commands: cmds(dyn(cmd("rm", `{a,"b"}`)))}},
		{"brace sequence", "rm f{1..3}", Analysis{Commands: cmds(dyn(cmd("rm", "f{1..3}")))}},
		{"tilde", "cat ~/.ssh/id_rsa x~", Analysis{Commands: cmds(dyn(cmd("cat", "~/.ssh/id_rsa", "x~")))}},
		{"parameter", `rm "$HOME/x" ${y:-z}`, Analysis{Commands: cmds(dyn(cmd("rm", `"$HOME/x"`, "${y:-z}")))}},
		{"arithmetic", "echo $((1+2))", Analysis{Commands: cmds(dyn(cmd("echo", "$((1+2))")))}},
		{"extended glob", "ls !(x)", Analysis{Commands: cmds(dyn(cmd("ls", "!(x)")))}},
		{"locale string", `echo $"hi"`, Analysis{Commands: cmds(dyn(cmd("echo", `$"hi"`)))}},
		{"brace expansion name", "{rm,-rf,/}", Analysis{Dynamic: true, Commands: cmds(dyn(cmd("")))}},
		{"dynamic name", "$(which rm) -rf /", Analysis{Dynamic: true, Commands: cmds(
			dyn(cmd("", "-rf", "/")),
			in(ContextCmdSubst, cmd("which", "rm")))}},
		{"variable name", `$cmd x`, Analysis{Dynamic: true, Commands: cmds(dyn(cmd("", "x")))}},
		{"empty literal name", `'' x`, Analysis{Commands: cmds(cmd("", "x"))}},

		// Lists, pipelines, compound commands.
		{"list pipeline cmdsubst", "a; b | c $(d e)", Analysis{Commands: cmds(
			cmd("a"),
			in(ContextPipeline, cmd("b")),
			in(ContextPipeline, dyn(cmd("c", "$(d e)"))),
			in(ContextCmdSubst, cmd("d", "e")))}},
		{"and or", "a && b || c", Analysis{Commands: cmds(cmd("a"), cmd("b"), cmd("c"))}},
		{"backticks", "echo `id -u`", Analysis{Commands: cmds(dyn(cmd("echo", "`id -u`")), in(ContextCmdSubst, cmd("id", "-u")))}},
		{"process substitution", "diff <(ls a) <(ls b)", Analysis{Commands: cmds(
			dyn(cmd("diff", "<(ls a)", "<(ls b)")),
			in(ContextProcSubst, cmd("ls", "a")),
			in(ContextProcSubst, cmd("ls", "b")))}},
		{"for", `for f in *; do rm "$f"; done`, Analysis{Commands: cmds(dyn(cmd("rm", `"$f"`)))}},
		{"for with cmdsubst", `for f in $(ls); do rm "$f"; done`, Analysis{Commands: cmds(
			in(ContextCmdSubst, cmd("ls")),
			dyn(cmd("rm", `"$f"`)))}},
		{"c-style for", "for ((i=0; i<3; i++)); do echo $i; done", Analysis{Commands: cmds(dyn(cmd("echo", "$i")))}},
		{"if", "if true; then reboot; fi", Analysis{Commands: cmds(in(ContextCondition, cmd("true")), cmd("reboot"))}},
		{"if elif else", "if a; then b; elif c; then d; else e; fi", Analysis{Commands: cmds(
			in(ContextCondition, cmd("a")), cmd("b"),
			in(ContextCondition, cmd("c")), cmd("d"),
			cmd("e"))}},
		{"while", "while read l; do echo \"$l\"; done < /etc/hosts", Analysis{
			Commands:  cmds(in(ContextCondition, cmd("read", "l")), dyn(cmd("echo", `"$l"`))),
			Redirects: []Redirect{{Op: "<", Target: "/etc/hosts"}}}},
		{"until", "until false; do x; done", Analysis{Commands: cmds(in(ContextCondition, cmd("false")), cmd("x"))}},
		{"case", "case $x in a) rm a;; *) ls;; esac", Analysis{Commands: cmds(cmd("rm", "a"), cmd("ls"))}},
		{"group", "{ a; b; } > out", Analysis{Commands: cmds(cmd("a"), cmd("b")), Redirects: []Redirect{{Op: ">", Target: "out"}}}},
		{"function", "f() { shutdown now; }; f", Analysis{Commands: cmds(in(ContextFunction, cmd("shutdown", "now")), cmd("f"))}},
		{"function keyword", "function g { id; }", Analysis{Commands: cmds(in(ContextFunction, cmd("id")))}},
		{"subshell in background", "(cd / && rm x) &", Analysis{Commands: cmds(
			in(ContextSubshell, cmd("cd", "/")),
			in(ContextSubshell, cmd("rm", "x")))}},
		{"background", "sleep 10 & echo started", Analysis{Commands: cmds(in(ContextBackground, cmd("sleep", "10")), cmd("echo", "started"))}},
		{"coproc", "coproc nc -l 80", Analysis{Commands: cmds(in(ContextBackground, cmd("nc", "-l", "80")))}},
		{"time keyword", "time ls", Analysis{Commands: cmds(cmd("ls"))}},
		{"negation", "! grep -q x f", Analysis{Commands: cmds(cmd("grep", "-q", "x", "f"))}},
		{"test clause", "[[ -f $(id -un) ]]", Analysis{Commands: cmds(in(ContextCmdSubst, cmd("id", "-un")))}},
		{"arithmetic command", "(( x = $(id -u) ))", Analysis{Commands: cmds(in(ContextCmdSubst, cmd("id", "-u")))}},
		{"assignment only", "x=$(id)", Analysis{Commands: cmds(in(ContextCmdSubst, cmd("id")))}},
		{"declare", "export A=$(id) B=2 C", Analysis{Commands: cmds(
			dyn(cmd("export", "A=$(id)", "B=2", "C")),
			in(ContextCmdSubst, cmd("id")))}},
		{"let", "let i++", Analysis{Commands: cmds(dyn(cmd("let", "i++")))}},
		{"nested cmdsubst", "echo $(a $(b))", Analysis{Commands: cmds(
			dyn(cmd("echo", "$(a $(b))")),
			in(ContextCmdSubst, dyn(cmd("a", "$(b)"))),
			in(ContextCmdSubst, cmd("b")))}},
		{"cmdsubst in parameter default", "echo ${x:-$(id)}", Analysis{Commands: cmds(
			dyn(cmd("echo", "${x:-$(id)}")),
			in(ContextCmdSubst, cmd("id")))}},

		// Redirections.
		{"redirect", `echo "x" > /etc/passwd`, Analysis{
			Commands:  cmds(cmd("echo", "x")),
			Redirects: []Redirect{{Op: ">", Target: "/etc/passwd"}}}},
		{"redirect forms", `cmd 2>&1 >>"/var/log/a b" &>/dev/null 3<&- <in 4<>rw >|clobber &>>both`, Analysis{
			Commands: cmds(cmd("cmd")),
			Redirects: []Redirect{
				{Op: "2>&", Target: "1"},
				{Op: ">>", Target: "/var/log/a b"},
				{Op: "&>", Target: "/dev/null"},
				{Op: "3<&", Target: "-"},
				{Op: "<", Target: "in"},
				{Op: "4<>", Target: "rw"},
				{Op: ">|", Target: "clobber"},
				{Op: "&>>", Target: "both"},
			}}},
		{"redirect dynamic target", `ls > "$HOME/x" 2> $(mktemp)`, Analysis{
			Commands: cmds(cmd("ls"), in(ContextCmdSubst, cmd("mktemp"))),
			Redirects: []Redirect{
				{Op: ">", Target: `"$HOME/x"`, Dynamic: true},
				{Op: "2>", Target: "$(mktemp)", Dynamic: true},
			}}},
		{"here-string", `grep x <<< "$(cat f)"`, Analysis{
			Commands:  cmds(cmd("grep", "x"), in(ContextCmdSubst, cmd("cat", "f"))),
			Redirects: []Redirect{{Op: "<<<", Target: `"$(cat f)"`, Dynamic: true}}}},
		{"heredoc", "cat <<EOF\nhello \\$x\nEOF\n", Analysis{
			Commands:  cmds(cmd("cat")),
			Redirects: []Redirect{{Op: "<<", Target: "hello $x\n"}}}},
		{"heredoc quoted delimiter", "cat <<'EOF'\nhello $USER $(id)\nEOF\n", Analysis{
			Commands:  cmds(cmd("cat")),
			Redirects: []Redirect{{Op: "<<", Target: "hello $USER $(id)\n"}}}},
		{"heredoc expanding", "cat <<EOF > /etc/motd\nhi $USER $(id -un)\nEOF\n", Analysis{
			Commands: cmds(cmd("cat"), in(ContextCmdSubst, cmd("id", "-un"))),
			Redirects: []Redirect{
				{Op: "<<", Target: "hi $USER $(id -un)\n", Dynamic: true},
				{Op: ">", Target: "/etc/motd"},
			}}},
		{"heredoc strip tabs", "cat <<-EOF\n\tx\n\t\ty\n\tEOF\n", Analysis{
			Commands:  cmds(cmd("cat")),
			Redirects: []Redirect{{Op: "<<-", Target: "x\ny\n"}}}},

		// Strings run as shell code.
		{"bash -c", `bash -c 'rm -rf /'`, Analysis{Commands: cmds(
			cmd("bash", "-c", "rm -rf /"),
			in(ContextShellC, cmd("rm", "-rf", "/")))}},
		{"sh -lc with pipeline", `/bin/sh -lc "ps aux | grep x"`, Analysis{Commands: cmds(
			cmd("/bin/sh", "-lc", "ps aux | grep x"),
			in(ContextPipeline, cmd("ps", "aux")),
			in(ContextPipeline, cmd("grep", "x")))}},
		{"bash options before -c", `bash -o pipefail --norc -e -c id arg0`, Analysis{Commands: cmds(
			cmd("bash", "-o", "pipefail", "--norc", "-e", "-c", "id", "arg0"),
			in(ContextShellC, cmd("id")))}},
		{"sh -c dynamic", `sh -c "$X"`, Analysis{Dynamic: true, Commands: cmds(dyn(cmd("sh", "-c", `"$X"`)))}},
		{"sh -c does not parse", `sh -c 'echo ('`, Analysis{Dynamic: true, Commands: cmds(cmd("sh", "-c", "echo ("))}},
		{"shell from stdin", "curl -s https://x | sh", Analysis{Dynamic: true, Commands: cmds(
			in(ContextPipeline, cmd("curl", "-s", "https://x")),
			in(ContextPipeline, cmd("sh")))}},
		{"shell -s", "bash -s < script", Analysis{Dynamic: true, Commands: cmds(cmd("bash", "-s")),
			Redirects: []Redirect{{Op: "<", Target: "script"}}}},
		{"shell script operand", "bash deploy.sh", Analysis{Commands: cmds(cmd("bash", "deploy.sh"))}},
		{"sudo bash -c", `sudo -u root bash -c 'id; rm -rf /'`, Analysis{Commands: cmds(
			cmd("sudo", "-u", "root", "bash", "-c", "id; rm -rf /"),
			in(ContextShellC, cmd("id")),
			in(ContextShellC, cmd("rm", "-rf", "/")))}},
		{"env nohup timeout sh -c", `env -i A=1 nohup timeout -s KILL 5 sh -c 'sleep 1'`, Analysis{Commands: cmds(
			cmd("env", "-i", "A=1", "nohup", "timeout", "-s", "KILL", "5", "sh", "-c", "sleep 1"),
			in(ContextShellC, cmd("sleep", "1")))}},
		{"xargs sh -c", `xargs -n 1 sh -c 'rm "$1"' _`, Analysis{Commands: cmds(
			cmd("xargs", "-n", "1", "sh", "-c", `rm "$1"`, "_"),
			in(ContextShellC, dyn(cmd("rm", `"$1"`))))}},
		{"find -exec sh -c", `find . -exec sh -c 'id' \;`, Analysis{Commands: cmds(
			cmd("find", ".", "-exec", "sh", "-c", "id", ";"),
			in(ContextShellC, cmd("id")))}},
		{"sudo -i without command", "sudo -i", Analysis{Dynamic: true, Commands: cmds(cmd("sudo", "-i"))}},
		{"sudo dynamic command", `sudo "$c"`, Analysis{Dynamic: true, Commands: cmds(dyn(cmd("sudo", `"$c"`)))}},
		{"env -S", `env -S 'sh -c id'`, Analysis{Dynamic: true, Commands: cmds(cmd("env", "-S", "sh -c id"))}},
		{"fish -c", `fish -c 'rm -rf /'`, Analysis{Dynamic: true, Commands: cmds(cmd("fish", "-c", "rm -rf /"))}},
		{"fish script", `fish x.fish`, Analysis{Commands: cmds(cmd("fish", "x.fish"))}},
		{"busybox sh", `busybox sh -c id`, Analysis{Commands: cmds(cmd("busybox", "sh", "-c", "id"), in(ContextShellC, cmd("id")))}},
		{"chroot without command", `chroot /mnt`, Analysis{Dynamic: true, Commands: cmds(cmd("chroot", "/mnt"))}},
		{"su -c", `su -c 'systemctl restart x' root`, Analysis{Commands: cmds(
			cmd("su", "-c", "systemctl restart x", "root"),
			in(ContextShellC, cmd("systemctl", "restart", "x")))}},
		{"su interactive", "su - root", Analysis{Dynamic: true, Commands: cmds(cmd("su", "-", "root"))}},
		{"nested shells", `bash -c "sh -c 'id'"`, Analysis{Commands: cmds(
			cmd("bash", "-c", "sh -c 'id'"),
			in(ContextShellC, cmd("sh", "-c", "id")),
			in(ContextShellC, cmd("id")))}},
		{"nested too deep", `sh -c "sh -c \"sh -c 'sh -c \\\"sh -c id\\\"'\""`, Analysis{Dynamic: true, Commands: cmds(
			cmd("sh", "-c", `sh -c "sh -c 'sh -c \"sh -c id\"'"`),
			in(ContextShellC, cmd("sh", "-c", `sh -c 'sh -c "sh -c id"'`)),
			in(ContextShellC, cmd("sh", "-c", `sh -c "sh -c id"`)),
			in(ContextShellC, cmd("sh", "-c", "sh -c id")),
			in(ContextShellC, cmd("sh", "-c", "id")))}},
		{"eval dynamic", `eval "$(curl x)"`, Analysis{Dynamic: true, Commands: cmds(
			dyn(cmd("eval", `"$(curl x)"`)),
			in(ContextCmdSubst, cmd("curl", "x")))}},
		{"eval literal", `eval 'rm -rf' /`, Analysis{Commands: cmds(
			cmd("eval", "rm -rf", "/"),
			in(ContextEval, cmd("rm", "-rf", "/")))}},
		{"trap", `trap 'rm -f /tmp/lock' EXIT`, Analysis{Commands: cmds(
			cmd("trap", "rm -f /tmp/lock", "EXIT"),
			in(ContextEval, cmd("rm", "-f", "/tmp/lock")))}},
		{"trap reset", `trap - EXIT`, Analysis{Commands: cmds(cmd("trap", "-", "EXIT"))}},
		{"command eval", `command eval "$x"`, Analysis{Dynamic: true, Commands: cmds(dyn(cmd("command", "eval", `"$x"`)))}},
		{"command -v", `command -v rm`, Analysis{Commands: cmds(cmd("command", "-v", "rm"))}},
		{"builtin eval literal", `builtin eval id`, Analysis{Commands: cmds(cmd("builtin", "eval", "id"), in(ContextEval, cmd("id")))}},
		{"sudo eval is no builtin", `sudo eval "$x"`, Analysis{Commands: cmds(dyn(cmd("sudo", "eval", `"$x"`)))}},

		// Other dynamic constructs.
		{"source", "source ~/.profile; . ./env.sh", Analysis{Dynamic: true, Commands: cmds(
			dyn(cmd("source", "~/.profile")),
			cmd(".", "./env.sh"))}},
		{"exec redirections only", "exec 3>/tmp/x", Analysis{Dynamic: true,
			Commands:  cmds(cmd("exec")),
			Redirects: []Redirect{{Op: "3>", Target: "/tmp/x"}}}},
		{"exec command", "exec sh -c id", Analysis{Commands: cmds(cmd("exec", "sh", "-c", "id"), in(ContextShellC, cmd("id")))}},
		{"alias", `alias ls='rm -rf /'`, Analysis{Dynamic: true, Commands: cmds(cmd("alias", "ls=rm -rf /"))}},
		{"hash -p", `hash -p /tmp/x ls`, Analysis{Dynamic: true, Commands: cmds(cmd("hash", "-p", "/tmp/x", "ls"))}},
		{"PATH assignment", `PATH=/tmp; ls`, Analysis{Dynamic: true, Commands: cmds(cmd("ls"))}},
		{"PATH export", `export PATH=/opt/bin:$PATH`, Analysis{Dynamic: true, Commands: cmds(dyn(cmd("export", "PATH=/opt/bin:$PATH")))}},
		{"LD_PRELOAD prefix", `LD_PRELOAD=/tmp/x.so ls`, Analysis{Dynamic: true, Commands: cmds(Command{Name: "ls", Env: []string{"LD_PRELOAD=/tmp/x.so"}})}},
		{"LD_PRELOAD through env", `env LD_PRELOAD=/tmp/x.so ls`, Analysis{Dynamic: true, Commands: cmds(cmd("env", "LD_PRELOAD=/tmp/x.so", "ls"))}},
		{"quoted arithmetic", `let 'x=a[$(id)]'`, Analysis{Dynamic: true, Commands: cmds(dyn(cmd("let", "'x=a[$(id)]'")))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.cmdline)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.cmdline, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse(%q) =\n%s\nwant\n%s", tt.cmdline, show(got), show(&tt.want))
			}
		})
	}
}

// show prints an analysis one command or redirection a line.
func show(a *Analysis) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "  Dynamic: %v\n", a.Dynamic)
	for _, c := range a.Commands {
		fmt.Fprintf(&sb, "  %q %q env=%q dynamic=%v context=%q\n", c.Name, c.Args, c.Env, c.Dynamic, c.Context)
	}
	for _, r := range a.Redirects {
		fmt.Fprintf(&sb, "  redirect %q %q dynamic=%v\n", r.Op, r.Target, r.Dynamic)
	}
	return sb.String()
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		want    Error
	}{
		{"unclosed quote", "echo 'x", Error{Message: "reached EOF without closing quote `'`", Line: 1, Col: 6}},
		{"second line", "ls\n  (", Error{Message: "`(` must be followed by a statement list", Line: 2, Col: 3}},
		{"characters not bytes", "echo é; fi", Error{Message: "`fi` can only be used to end an `if`", Line: 1, Col: 9}},
		{"missing done", "for x in a; do echo", Error{Message: "`for` statement must end with `done`", Line: 1, Col: 1}},
		{"too long", strings.Repeat("a", MaxCommandLineBytes+1), Error{Message: "command line too long"}},
		{"NUL", "ls\x00; rm x", Error{Message: "command line contains a NUL byte"}},
		{"not UTF-8", "ls \xff", Error{Message: "command line is not valid UTF-8"}},
		{"nested too deeply", "ls\n" + strings.Repeat("(", 1001), Error{Message: "command line nested too deeply", Line: 2, Col: 1001}},
		{"nested too deeply in quotes", "echo '" + strings.Repeat("{", 1001) + "'", Error{Message: "command line nested too deeply", Line: 1, Col: 1007}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Parse(tt.cmdline)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %v, %v; want an *Error", tt.cmdline, a, err)
			}
			if a != nil {
				t.Errorf("analysis %v with error", a)
			}
			if *pe != tt.want {
				t.Errorf("error %#v, want %#v", *pe, tt.want)
			}
		})
	}
	if _, err := Parse(strings.Repeat("a", MaxCommandLineBytes)); err != nil {
		t.Errorf("longest command line: %v", err)
	}
	deepest := strings.Repeat("(", 1000) + "x" + strings.Repeat(")", 1000) + strings.Repeat(";(x)", 1000)
	if _, err := Parse(deepest); err != nil {
		t.Errorf("1,000 levels: %v", err)
	}
	// Escapes of $'...' write brackets the check of the command line
	// does not see: the string is too deep to parse, hence Dynamic.
	a, err := Parse(`sh -c $'` + strings.Repeat(`\x28`, 1001) + `'`)
	if err != nil || !a.Dynamic || len(a.Commands) != 1 {
		t.Errorf("deep string in sh -c: %v %v", a, err)
	}
}

func TestErrorString(t *testing.T) {
	if got, want := (&Error{Message: "x", Line: 2, Col: 3}).Error(), "shellparse: x at line 2, column 3"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := (&Error{Message: "command line too long"}).Error(), "shellparse: command line too long"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestANSIC(t *testing.T) {
	tests := []struct{ in, want string }{
		{`a\nb\tc`, "a\nb\tc"},
		{`\x41\101\u00e9\U0001F600`, "AAé😀"},
		{`\'\"\\\?`, `'"\?`},
		{`\ca\e\q`, "\x01\x1b\\q"},
		{`x\x`, `x\x`},
		{`a\0b`, "a"},
		{`a\x00b`, "a"},
		{`a\c@b`, "a"},
		{`tail\`, `tail\`},
	}
	for _, tt := range tests {
		if got := ansiC(tt.in); got != tt.want {
			t.Errorf("ansiC(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

var contexts = map[string]bool{
	ContextTop: true, ContextSubshell: true, ContextCmdSubst: true, ContextProcSubst: true,
	ContextPipeline: true, ContextFunction: true, ContextBackground: true,
	ContextCondition: true, ContextShellC: true, ContextEval: true,
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"ls -la /tmp",
		"a; b | c $(d e)",
		`bash -c 'rm -rf /' && sudo -u x sh -c "$X"`,
		"cat <<EOF > /etc/x\n$(id) \\$y\nEOF\n",
		`for f in *; do rm "$f"; done; f() { x; }; f &`,
		`eval 'trap "id" EXIT'; echo $'\x41' {a,b} ~/x`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		a, err := Parse(cmdline)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if a != nil {
				t.Fatalf("analysis with error %v", err)
			}
			return
		}
		for _, c := range a.Commands {
			if !contexts[c.Context] {
				t.Fatalf("unknown context %q", c.Context)
			}
		}
		for _, r := range a.Redirects {
			if r.Op == "" {
				t.Fatalf("redirect without operator: %+v", r)
			}
		}
		if fresh := freshParse(t, cmdline); !reflect.DeepEqual(a, fresh) {
			t.Fatalf("a reused parser gives\n%s\na new one\n%s", show(a), show(fresh))
		}
	})
}

// freshParse analyses cmdline with a parser that was never used before.
func freshParse(t *testing.T, cmdline string) *Analysis {
	t.Helper()
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(cmdline), "")
	if err != nil {
		t.Fatalf("a new parser fails where a reused one did not: %v", err)
	}
	return analyse(f, cmdline)
}

// TestParserReuse checks that a parser taken back after an error gives
// what a new one gives.
func TestParserReuse(t *testing.T) {
	bad := []string{"cat <<EOF\n$(", "echo 'x", "if a; then", "a |", "f() {", "echo ${x", "(("}
	good := "cat <<EOF | sh -c 'a | b' &\n$(id) ${x:-y}\nEOF\nfor i in 1; do (x); done"
	for _, b := range bad {
		for range 4 { // the pool may hold more than one parser
			if _, err := Parse(b); err == nil {
				t.Fatalf("Parse(%q) succeeds", b)
			}
		}
		got, err := Parse(good)
		if err != nil {
			t.Fatalf("after %q: %v", b, err)
		}
		if want := freshParse(t, good); !reflect.DeepEqual(got, want) {
			t.Fatalf("after %q:\n%s\nwant\n%s", b, show(got), show(want))
		}
	}
}

const benchCmdline = "cd /var/log && tail -n 100 syslog | grep error"

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchCmdline)))
	for b.Loop() {
		if _, err := Parse(benchCmdline); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseLargest is the worst case of the size bound: a command line
// of MaxCommandLineBytes.
func BenchmarkParseLargest(b *testing.B) {
	unit := `sudo bash -c 'rm -rf "$x" | grep {a,b}' > /tmp/o; `
	cmdline := strings.Repeat(unit, MaxCommandLineBytes/len(unit))
	b.ReportAllocs()
	b.SetBytes(int64(len(cmdline)))
	for b.Loop() {
		if _, err := Parse(cmdline); err != nil {
			b.Fatal(err)
		}
	}
}
