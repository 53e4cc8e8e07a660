package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatewayd-access/gatewayd/core/api"
)

// Widths (in characters) of the long columns of sessions show, unless
// --full.
const (
	textWidth    = 72
	outcomeWidth = 48
)

func (a *app) sessionsList(ctx context.Context, args []string) error {
	c := a.command("sessions list", "sessions list [--limit N] [--identity NAME] [--json]")
	c.gatewayFlags()
	limit := c.Int("limit", 0, fmt.Sprintf("show at most `N` sessions (default %d, at most %d)", api.DefaultSessionLimit, api.MaxSessionLimit))
	ident := c.String("identity", "", "only the sessions of identity `NAME` (admins)")
	asJSON := c.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos); err != nil {
		return err
	}
	if *limit < 0 || *limit > api.MaxSessionLimit {
		return usagef("sessions list: --limit must be from 1 to %d", api.MaxSessionLimit)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if *ident != "" {
		q.Set("identity", *ident)
	}
	var list api.SessionList
	if err := cl.getJSON(ctx, requestTimeout, "/v1/sessions", q, &list); err != nil {
		return fmt.Errorf("listing sessions: %w", err)
	}
	if *asJSON {
		return printJSON(a.stdout, list)
	}
	if len(list.Sessions) == 0 {
		fmt.Fprintln(a.stdout, "no sessions")
		return nil
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "ID\tIDENTITY\tCONNECTION\tPROTOCOL\tCLIENT\tSTARTED\tDURATION\tREQUESTS\tEND REASON")
	for _, s := range list.Sessions {
		dur := "open"
		if !s.Open() {
			dur = fmtDuration(s.Ended.Sub(s.Started))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n",
			cell(s.ID, 0), cell(s.Identity, 0), cell(s.Connection, 0), cell(s.Protocol, 0),
			cell(s.ClientAddr, 0), a.fmtTime(s.Started, "2006-01-02 15:04:05"), dur, s.Requests,
			orDash(cell(s.EndReason, 0)))
	}
	return tw.Flush()
}

func (a *app) sessionsShow(ctx context.Context, args []string) error {
	c := a.command("sessions show", "sessions show ID [--full] [--json]")
	c.gatewayFlags()
	full := c.Bool("full", false, "do not truncate statement texts and error messages")
	asJSON := c.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos, "ID"); err != nil {
		return err
	}
	id := pos[0]
	cl, err := a.client()
	if err != nil {
		return err
	}
	var d api.SessionDetail
	if err := cl.getJSON(ctx, requestTimeout, "/v1/sessions/"+url.PathEscape(id), nil, &d); err != nil {
		return fmt.Errorf("showing session %s: %w", cell(id, 80), err)
	}
	if *asJSON {
		return printJSON(a.stdout, d)
	}

	s := d.Session
	tw := newTable(a.stdout)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("Session", cell(s.ID, 0))
	who := cell(s.Identity, 0)
	if s.Email != "" {
		who += " <" + cell(s.Email, 0) + ">"
	}
	row("Identity", who)
	row("Connection", fmt.Sprintf("%s (%s)", cell(s.Connection, 0), cell(s.Protocol, 0)))
	row("Client", cell(s.ClientAddr, 0))
	row("Started", a.fmtTime(s.Started, "2006-01-02 15:04:05 MST"))
	if s.Open() {
		row("Ended", "open")
	} else {
		row("Ended", fmt.Sprintf("%s (after %s)", a.fmtTime(s.Ended, "2006-01-02 15:04:05 MST"), fmtDuration(s.Ended.Sub(s.Started))))
		row("End reason", cell(s.EndReason, 0))
		row("Traffic", fmt.Sprintf("%s in, %s out", fmtBytes(s.BytesIn), fmtBytes(s.BytesOut)))
		row("Requests", strconv.FormatInt(s.Requests, 10))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)

	if len(d.Statements) == 0 {
		fmt.Fprintln(a.stdout, "no statements")
		return nil
	}
	tw = newTable(a.stdout)
	fmt.Fprintln(tw, "STARTED\tDURATION\tROWS\tOUTCOME\tTEXT")
	tw2, ow := textWidth, outcomeWidth
	if *full {
		tw2, ow = 0, 0
	}
	for _, st := range d.Statements {
		rows := "-"
		if st.Rows >= 0 {
			rows = strconv.FormatInt(st.Rows, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n",
			a.fmtTime(st.Started, "15:04:05.000"), fmtDuration(time.Duration(st.Duration)), rows,
			cell(outcome(st), ow), cell(st.Text, tw2))
	}
	return tw.Flush()
}

// outcome renders a statement's outcome: ok, error CODE: message,
// interrupted.
func outcome(st api.Statement) string {
	if st.Outcome != "error" {
		return st.Outcome
	}
	o := "error"
	if st.ErrorCode != "" {
		o += " " + st.ErrorCode
	}
	if st.ErrorMessage != "" {
		o += ": " + st.ErrorMessage
	}
	return o
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) fmtTime(t time.Time, layout string) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(a.loc).Format(layout)
}

// cell makes s safe and single-line for a terminal table: control and
// format characters (escape sequences, tabs, newlines, bidi overrides) become
// spaces, runs of white space one space, and, when width > 0, s is cut to
// width characters ending in "…". What the gateway recorded comes from
// clients, so it is never written to the terminal raw.
func cell(s string, width int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	out := b.String()
	if width > 0 && utf8.RuneCountInString(out) > width {
		n := 0
		for i := range out {
			if n == width-1 {
				return out[:i] + "…"
			}
			n++
		}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtDuration rounds d to a precision that suits its size: 512µs, 1.53ms,
// 2.481s, 1h2m3s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// fmtBytes renders n bytes in binary units: 512 B, 1.5 KiB, 3.2 MiB.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (a *app) whoami(ctx context.Context, args []string) error {
	c := a.command("whoami", "whoami [--json]")
	c.gatewayFlags()
	asJSON := c.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos); err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	var w api.Whoami
	if err := cl.getJSON(ctx, requestTimeout, "/v1/whoami", nil, &w); err != nil {
		return fmt.Errorf("asking who you are: %w", err)
	}
	if *asJSON {
		return printJSON(a.stdout, w)
	}
	tw := newTable(a.stdout)
	fmt.Fprintf(tw, "Name\t%s\n", cell(w.Name, 0))
	fmt.Fprintf(tw, "Email\t%s\n", orDash(cell(w.Email, 0)))
	fmt.Fprintf(tw, "Groups\t%s\n", orDash(cell(strings.Join(w.Groups, ", "), 0)))
	fmt.Fprintf(tw, "Admin\t%t\n", w.Admin)
	return tw.Flush()
}
