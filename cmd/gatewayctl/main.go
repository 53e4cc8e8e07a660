// Command gatewayctl is the engineer's and admin's CLI for gatewayd: it signs
// in through the identity provider and connects on the user's behalf, asks
// for access and decides reviews, lists sessions and their statements,
// verifies and exports the audit log (also offline, from an export), and
// makes tokens for static identities.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const defaultGateway = "http://127.0.0.1:8080"

const usage = `usage: gatewayctl [--gateway URL] [--cacert FILE] <command> [flags]

gatewayctl talks to gatewayd's API. The gateway is --gateway URL, else
$GATEWAYD_ADDR, else ` + defaultGateway + `. Your token is read from
$GATEWAYD_TOKEN (never a flag, so that it stays out of shell history and
ps), else from what gatewayctl login stored. --cacert (or $GATEWAYD_CACERT)
names a PEM file of CA certificates to trust for an https gateway (and, for
gatewayctl connect, for the gateway's PostgreSQL listener).

commands:
  sessions list [--limit N] [--identity NAME] [--json]
        list sessions, newest first (admins see everyone's)
  sessions show ID [--full] [--json]
        a session and its statements: time, duration, rows, outcome, text
  audit verify [--json]
        check the audit log's hash chain through the gateway (admins)
  audit verify --file FILE [--json]
        check an export offline, without a gateway ("-" reads stdin)
  audit export [-o FILE] [--session ID]
        write the audit log as JSON lines to stdout or FILE (admins)
  replay SESSION [--speed X] [--idle-limit D]
        play a session's recording in the terminal with its timing
  replay --file FILE [--speed X] [--idle-limit D]
        play a recording file (asciicast v2, as asciinema writes)
  login [--device] [--no-browser]
        sign in through the identity provider; stores a short-lived token
        and an SSH certificate under ~/.config/gatewayd
  logout
        revoke the stored token at the gateway and forget it
  ls [--json]
        the connections you may use
  connect NAME [--port N]
        a local listener: for PostgreSQL it signs in for you (psql -h
        127.0.0.1 -p N); for SSH it relays to the gateway (ssh with the
        certificate, the command is printed)
  ssh NAME [ssh arguments]
        run ssh to an ssh connection with your certificate
  request CONNECTION --for DURATION --reason TEXT [--json]
        ask for time-boxed access to a connection that requires approval
  review list [--all] [--status S] [--json]
        reviews you asked for or may decide (pending ones unless --all)
  review show ID [--json]
        one review: the access or statement asked for, approvals, status
  review approve ID [--json]
        approve an access request or a held statement (reviewers)
  review deny ID --reason TEXT [--json]
        deny it; the requester sees the reason
  whoami [--json]
        the identity your token belongs to
  token new [--name NAME] [--json]
        make a fresh token and the token_sha256 line for gateway.toml
  token hash
        print the sha256 of a token read from stdin
  version
        print the version
  help
        print this text

Exit status: 0 success, 1 failure or a broken audit chain, 2 usage error.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newApp().run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// app is one run of gatewayctl; tests build their own with buffers.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	random         io.Reader      // token material
	loc            *time.Location // times are shown in it

	// Settings from the global flags, the environment and the command's
	// flags.
	gateway string
	cacert  string
}

func newApp() *app {
	return &app{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		random: rand.Reader,
		loc:    time.Local,
	}
}

// usageError is a command line mistake: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// errReported is returned once the outcome has been printed and only the
// exit status 1 remains to be given (a broken audit chain).
var errReported = errors.New("reported")

// run runs the command line args (without the program name) and returns the
// exit status.
func (a *app) run(ctx context.Context, args []string) int {
	err := a.dispatch(ctx, args)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errReported):
		return 1
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "gatewayctl: %s\nRun 'gatewayctl help' for usage.\n", ue.msg)
		return 2
	default:
		fmt.Fprintf(a.stderr, "gatewayctl: %v\n", err)
		return 1
	}
}

func (a *app) dispatch(ctx context.Context, args []string) error {
	a.gateway = a.getenv("GATEWAYD_ADDR")
	a.cacert = a.getenv("GATEWAYD_CACERT")
	if a.gateway == "" {
		a.gateway = defaultGateway
		a.defaultsFromLogin()
	}

	// Global flags end at the command; the command parses the rest.
	global := a.command("gatewayctl", "")
	global.gatewayFlags()
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(a.stdout, usage)
			return err
		}
		return usageError{err.Error()}
	}
	args = global.Args()
	if len(args) == 0 {
		fmt.Fprint(a.stderr, usage)
		return usageError{"no command given"}
	}
	cmd, rest := args[0], args[1:]
	sub := func() (string, []string) {
		if len(rest) == 0 {
			return "", nil
		}
		return rest[0], rest[1:]
	}
	switch cmd {
	case "sessions":
		switch s, r := sub(); s {
		case "list", "ls":
			return a.sessionsList(ctx, r)
		case "show":
			return a.sessionsShow(ctx, r)
		default:
			return unknownSub("sessions", s, "list, show")
		}
	case "audit":
		switch s, r := sub(); s {
		case "verify":
			return a.auditVerify(ctx, r)
		case "export":
			return a.auditExport(ctx, r)
		default:
			return unknownSub("audit", s, "verify, export")
		}
	case "token":
		switch s, r := sub(); s {
		case "new":
			return a.tokenNew(r)
		case "hash":
			return a.tokenHash(r)
		default:
			return unknownSub("token", s, "new, hash")
		}
	case "login":
		return a.login(ctx, rest)
	case "logout":
		return a.logout(ctx, rest)
	case "ls":
		return a.ls(ctx, rest)
	case "connect":
		return a.connect(ctx, rest)
	case "ssh":
		return a.ssh(ctx, rest)
	case "request":
		return a.request(ctx, rest)
	case "review":
		s, r := sub()
		return a.reviewCmd(ctx, s, r)
	case "whoami":
		return a.whoami(ctx, rest)
	case "replay":
		return a.replay(ctx, rest)
	case "version", "--version":
		fmt.Fprintln(a.stdout, "gatewayctl", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(a.stdout, usage)
		return nil
	default:
		return usagef("unknown command %q", cmd)
	}
}

func unknownSub(cmd, sub, known string) error {
	if sub == "" {
		return usagef("%s: which one? (%s)", cmd, known)
	}
	return usagef("%s: unknown command %q (%s)", cmd, sub, known)
}

// command is the flags of one command.
type command struct {
	*flag.FlagSet
	a        *app
	synopsis string
}

// command returns an empty flag set for a command; synopsis is its usage
// line after "gatewayctl".
func (a *app) command(name, synopsis string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// parse reports errors itself, once.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &command{FlagSet: fs, a: a, synopsis: synopsis}
}

// gatewayFlags adds --gateway and --cacert, so they work before the command
// and after it.
func (c *command) gatewayFlags() {
	c.StringVar(&c.a.gateway, "gateway", c.a.gateway, "gatewayd API `URL` (env GATEWAYD_ADDR)")
	c.StringVar(&c.a.cacert, "cacert", c.a.cacert, "PEM `FILE` of CA certificates to trust for https (env GATEWAYD_CACERT)")
}

// parse parses flags and positional arguments in any order ("show ID
// --full" as well as "show --full ID"); "--" ends the flags. A flag error
// is a usage error (exit 2); -h prints the command's usage (exit 0).
func (c *command) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printUsage(c.a.stdout)
				return nil, err
			}
			return nil, usagef("%s: %v", c.Name(), err)
		}
		rest := c.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (c *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: gatewayctl %s\n", c.synopsis)
	c.SetOutput(w)
	c.PrintDefaults()
	c.SetOutput(io.Discard)
}

// positional checks the number of positional arguments.
func (c *command) positional(pos []string, names ...string) error {
	if len(pos) != len(names) {
		if len(pos) < len(names) {
			return usagef("%s: missing %s (usage: gatewayctl %s)", c.Name(), strings.Join(names[len(pos):], " "), c.synopsis)
		}
		return usagef("%s: unexpected argument %q (usage: gatewayctl %s)", c.Name(), pos[len(names)], c.synopsis)
	}
	return nil
}
