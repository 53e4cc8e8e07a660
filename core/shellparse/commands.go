package shellparse

import (
	"path"
	"strings"
)

// inspect looks at what a simple command runs beyond itself: strings run as
// shell code, files sourced, shells reading standard input, commands behind
// wrappers. builtins is false for a command run by a program (sudo eval is
// no eval), true for one run by the shell.
func (w *walker) inspect(argv []arg, redirected, builtins bool) {
	if len(argv) == 0 {
		return
	}
	if !argv[0].lit {
		w.a.Dynamic = true // which program runs is unknown
		return
	}
	name, args := argv[0].text, argv[1:]
	if builtins {
		switch name {
		case "eval":
			w.eval(args)
			return
		case "source", ".":
			if len(args) > 0 {
				w.a.Dynamic = true
			}
			return
		case "trap":
			w.trap(args)
			return
		case "alias":
			for _, a := range args {
				if !a.lit || strings.Contains(a.text, "=") {
					w.a.Dynamic = true
				}
			}
			return
		case "hash", "enable":
			flag := "p" // hash -p path name
			if name == "enable" {
				flag = "f" // enable -f file.so name
			}
			for _, a := range args {
				if !a.lit || (strings.HasPrefix(a.text, "-") && strings.Contains(a.text, flag)) {
					w.a.Dynamic = true
				}
			}
			return
		case "exec":
			if len(args) == 0 && redirected {
				w.a.Dynamic = true
				return
			}
			w.wrapped(args, wrappers["exec"], false) // exec runs programs only
			return
		case "command":
			for _, a := range args {
				if !a.lit || !strings.HasPrefix(a.text, "-") || a.text == "--" {
					break
				}
				if strings.ContainsAny(a.text, "vV") {
					return // command -v: looks the name up, runs nothing
				}
			}
			w.wrapped(args, wrappers["command"], true)
			return
		case "builtin":
			w.inspect(args, false, true)
			return
		}
	}
	base := path.Base(name)
	switch {
	case shells[base]:
		w.shell(args, true)
	case foreignShells[base]:
		w.shell(args, false)
	case base == "su" || base == "runuser":
		w.su(args)
	case base == "find":
		w.find(args)
	default:
		if spec, ok := wrappers[base]; ok && base != "exec" && base != "command" {
			w.wrapped(args, spec, false)
		}
	}
}

// shells are the programs that take -c command_string like sh.
var shells = map[string]bool{
	"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true,
	"ksh93": true, "mksh": true, "ash": true, "rbash": true, "lksh": true,
	"posh": true, "yash": true, "oksh": true,
}

// foreignShells take -c command_string too, in a language this package does
// not parse: a command string is Dynamic.
var foreignShells = map[string]bool{
	"fish": true, "csh": true, "tcsh": true, "rc": true, "es": true,
	"nu": true, "elvish": true, "xonsh": true, "pwsh": true,
}

// eval runs its arguments joined by spaces.
func (w *walker) eval(args []arg) {
	if len(args) > 0 && args[0].lit && args[0].text == "--" {
		args = args[1:]
	}
	code := make([]string, len(args))
	for i, a := range args {
		if !a.lit {
			w.a.Dynamic = true
			return
		}
		code[i] = a.text
	}
	if len(code) > 0 {
		w.runString(strings.Join(code, " "), ContextEval)
	}
}

// trap [-lpP] [--] [action sigspec...]: the action runs on the signals.
func (w *walker) trap(args []arg) {
	for len(args) > 0 {
		a := args[0]
		if !a.lit {
			break
		}
		if a.text == "--" {
			args = args[1:]
			break
		}
		if len(a.text) < 2 || a.text[0] != '-' {
			break
		}
		if strings.ContainsAny(a.text, "lpP") {
			return // lists, sets nothing
		}
		args = args[1:]
	}
	if len(args) < 2 { // trap, or trap sigspec: resets
		return
	}
	switch {
	case !args[0].lit:
		w.a.Dynamic = true
	case args[0].text != "-" && args[0].text != "":
		w.runString(args[0].text, ContextEval)
	}
}

// shell looks at the arguments of sh, bash... for the string of -c, which
// it parses when parse is set.
func (w *walker) shell(args []arg, parse bool) {
	c, stdin := false, false
	i := 0
options:
	for ; i < len(args); i++ {
		a := args[i]
		if !a.lit {
			w.a.Dynamic = true // an option we cannot read
			return
		}
		switch t := a.text; {
		case t == "--" || t == "-":
			i++
			break options
		case strings.HasPrefix(t, "--"):
			if t == "--rcfile" || t == "--init-file" {
				i++
			}
		case len(t) > 1 && (t[0] == '-' || t[0] == '+'):
			for _, f := range t[1:] {
				switch f {
				case 'c':
					c = true
				case 's', 'i':
					stdin = true
				case 'o', 'O':
					i++ // -o option-name
				}
			}
		default:
			break options
		}
	}
	operands := args[min(i, len(args)):]
	switch {
	case c:
		if len(operands) == 0 {
			return // bash: -c: option requires an argument
		}
		if !operands[0].lit || !parse {
			w.a.Dynamic = true
			return
		}
		w.runString(operands[0].text, ContextShellC)
	case stdin || len(operands) == 0:
		w.a.Dynamic = true // commands from standard input
	}
}

// su and runuser run -c string with the user's shell, or else a shell
// reading standard input.
func (w *walker) su(args []arg) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !a.lit {
			w.a.Dynamic = true
			return
		}
		t := a.text
		var code *arg
		switch {
		case t == "--":
			i = len(args)
		case t == "-c" || t == "--command" || t == "--session-command":
			if i+1 < len(args) {
				code = &args[i+1]
			}
			i++
		case strings.HasPrefix(t, "--command=") || strings.HasPrefix(t, "--session-command="):
			code = &arg{text: t[strings.IndexByte(t, '=')+1:], lit: true}
		case strings.HasPrefix(t, "--"):
		case len(t) > 1 && t[0] == '-':
			for j := 1; j < len(t); j++ {
				switch t[j] {
				case 'g', 'G', 's', 'w', 'u':
					if j+1 == len(t) {
						i++
					}
					j = len(t)
				case 'c':
					if j+1 < len(t) {
						code = &arg{text: t[j+1:], lit: true}
					} else if i+1 < len(args) {
						code = &args[i+1]
						i++
					}
					j = len(t)
				}
			}
		}
		if code != nil {
			if !code.lit {
				w.a.Dynamic = true
				return
			}
			w.runString(code.text, ContextShellC)
			return
		}
	}
	w.a.Dynamic = true // an interactive shell, fed by standard input
}

// find runs the commands of -exec, -execdir, -ok and -okdir.
func (w *walker) find(args []arg) {
	for i := 0; i < len(args); i++ {
		if !args[i].lit {
			continue
		}
		switch args[i].text {
		case "-exec", "-execdir", "-ok", "-okdir":
			j := i + 1
			for j < len(args) && !(args[j].lit && (args[j].text == ";" || args[j].text == "+")) {
				j++
			}
			w.inspect(args[i+1:j], false, false)
			i = j
		}
	}
}

// wrapper describes a program that runs a command given as its operands.
type wrapper struct {
	valueShort  string   // short options that take a value
	valueLong   []string // long options that take a value as the next argument
	dynamicOpts []string // options that make the wrapped command unknowable
	shellOpts   string   // short options that run a shell when no command follows
	positional  int      // operands before the command (timeout's duration)
	assignments bool     // NAME=value operands before the command
	shellIfNone bool     // runs a shell when no command follows
	dashOption  bool     // "-" is an option (env's -i), not the command
}

var wrappers = map[string]wrapper{
	"sudo": {valueShort: "ughpCrtUTDR", valueLong: []string{"--user", "--group", "--host",
		"--prompt", "--close-from", "--role", "--type", "--other-user",
		"--command-timeout", "--chdir", "--chroot"}, shellOpts: "si", assignments: true},
	"doas":    {valueShort: "uC", shellOpts: "s"},
	"env":     {valueShort: "uCS", valueLong: []string{"--unset", "--chdir", "--split-string"}, dynamicOpts: []string{"-S", "--split-string"}, assignments: true, dashOption: true},
	"nohup":   {},
	"nice":    {valueShort: "n", valueLong: []string{"--adjustment"}},
	"ionice":  {valueShort: "cnp", valueLong: []string{"--class", "--classdata", "--pid", "--pgid", "--uid"}},
	"timeout": {valueShort: "sk", valueLong: []string{"--signal", "--kill-after"}, positional: 1},
	"stdbuf":  {valueShort: "ioe", valueLong: []string{"--input", "--output", "--error"}},
	"setsid":  {},
	"chroot":  {valueLong: []string{"--userspec", "--groups"}, positional: 1, shellIfNone: true},
	"xargs": {valueShort: "ILnPsdaE", valueLong: []string{"--arg-file", "--delimiter",
		"--max-lines", "--max-args", "--max-procs", "--max-chars", "--process-slot-var"}},
	"time":    {valueShort: "fo", valueLong: []string{"--format", "--output"}},
	"busybox": {},
	"exec":    {valueShort: "a"},
	"command": {},
}

// dynamic reports whether the argument t is one of the dynamic options:
// --long, --long=value, or a cluster of short options holding -x.
func (spec wrapper) dynamic(t string) bool {
	for _, d := range spec.dynamicOpts {
		switch {
		case t == d || strings.HasPrefix(t, d+"="):
			return true
		case len(d) == 2 && len(t) > 1 && t[0] == '-' && t[1] != '-' && strings.Contains(t, d[1:]):
			return true
		}
	}
	return false
}

// wrapped finds the command a wrapper runs and inspects it.
func (w *walker) wrapped(args []arg, spec wrapper, builtins bool) {
	shell := false
	i := 0
options:
	for ; i < len(args); i++ {
		a := args[i]
		if !a.lit {
			w.a.Dynamic = true // an option or a command we cannot read
			return
		}
		t := a.text
		if spec.dynamic(t) {
			w.a.Dynamic = true
			return
		}
		switch {
		case t == "--":
			i++
			break options
		case t == "-" && spec.dashOption:
		case strings.HasPrefix(t, "--"):
			for _, l := range spec.valueLong {
				if t == l {
					i++
				}
			}
		case len(t) > 1 && t[0] == '-':
			for j := 1; j < len(t); j++ {
				if strings.IndexByte(spec.shellOpts, t[j]) >= 0 {
					shell = true
				}
				if strings.IndexByte(spec.valueShort, t[j]) >= 0 {
					if j+1 == len(t) {
						i++ // the value is the next argument
					}
					break
				}
			}
		default:
			break options
		}
	}
	for n := 0; n < spec.positional && i < len(args); n++ {
		i++
	}
	for spec.assignments && i < len(args) && args[i].lit && isAssignment(args[i].text) {
		if execVariable(args[i].text[:strings.IndexByte(args[i].text, '=')]) {
			w.a.Dynamic = true
		}
		i++
	}
	if i >= len(args) {
		if shell || spec.shellIfNone {
			w.a.Dynamic = true
		}
		return
	}
	w.inspect(args[i:], false, builtins)
}

// isAssignment reports whether s is NAME=value.
func isAssignment(s string) bool {
	eq := strings.IndexByte(s, '=')
	if eq <= 0 {
		return false
	}
	for i, c := range s[:eq] {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
