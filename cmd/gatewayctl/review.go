package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd-access/gatewayd/core/api"
)

// request asks for time-boxed access to a connection that requires
// approval.
func (a *app) request(ctx context.Context, args []string) error {
	c := a.command("request", "request CONNECTION --for DURATION --reason TEXT [--json]")
	c.gatewayFlags()
	dur := c.Duration("for", 0, "how long the access is for, e.g. `1h`")
	reason := c.String("reason", "", "why you need access (a ticket, an incident)")
	asJSON := c.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos, "CONNECTION"); err != nil {
		return err
	}
	if *dur <= 0 {
		return usagef("request: --for must be a positive duration such as 1h")
	}
	if strings.TrimSpace(*reason) == "" {
		return usagef("request: --reason is required")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	var rv api.Review
	if _, err := cl.postJSON(ctx, "/v1/requests", api.AccessRequest{Connection: pos[0], Duration: dur.String(), Reason: *reason}, &rv, http.StatusCreated); err != nil {
		return fmt.Errorf("requesting access: %w", err)
	}
	if *asJSON {
		return printJSON(a.stdout, rv)
	}
	fmt.Fprintf(a.stdout, "access request %s for %s (%s) is waiting for %d approval(s) from %s\n",
		rv.ID, rv.Connection, time.Duration(rv.Duration), rv.MinApprovals, strings.Join(rv.Reviewers, ", "))
	return nil
}

// reviewCmd runs review list, show, approve and deny.
func (a *app) reviewCmd(ctx context.Context, sub string, args []string) error {
	switch sub {
	case "list", "ls":
		return a.reviewList(ctx, args)
	case "show":
		return a.reviewShow(ctx, args)
	case "approve":
		return a.reviewDecide(ctx, args, true)
	case "deny":
		return a.reviewDecide(ctx, args, false)
	default:
		return unknownSub("review", sub, "list, show, approve, deny")
	}
}

func (a *app) reviewList(ctx context.Context, args []string) error {
	c := a.command("review list", "review list [--all] [--status S] [--json]")
	c.gatewayFlags()
	all := c.Bool("all", false, "every status, not only pending reviews")
	status := c.String("status", "", "only reviews with status `S` (pending, approved, denied, cancelled, expired)")
	limit := c.Int("limit", 0, "show at most `N` reviews")
	asJSON := c.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos); err != nil {
		return err
	}
	q := url.Values{}
	switch {
	case *status != "":
		q.Set("status", *status)
	case !*all:
		q.Set("status", "pending")
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	var list api.ReviewList
	if err := cl.getJSON(ctx, requestTimeout, "/v1/reviews", q, &list); err != nil {
		return fmt.Errorf("listing reviews: %w", err)
	}
	if *asJSON {
		return printJSON(a.stdout, list)
	}
	if len(list.Reviews) == 0 {
		fmt.Fprintln(a.stdout, "no reviews")
		return nil
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "ID\tKIND\tSTATUS\tIDENTITY\tCONNECTION\tCREATED\tAPPROVALS\tYOU\tWHAT")
	for _, r := range list.Reviews {
		you := "-"
		if r.CanDecide {
			you = "can decide"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", cell(r.ID, 0), r.Kind, r.Status,
			cell(r.Identity, 0), cell(r.Connection, 0), a.fmtTime(r.Created, "2006-01-02 15:04:05"),
			len(r.Approvals), r.MinApprovals, you, cell(what(r), textWidth))
	}
	return tw.Flush()
}

// what summarises a review: the statement and its parameters, or the
// access asked for.
func what(r api.Review) string {
	if r.Kind == "access" {
		return fmt.Sprintf("access for %s: %s", time.Duration(r.Duration), r.Reason)
	}
	s := r.Text
	if len(r.Params) > 0 {
		s += " " + strings.Join(r.Params, " ")
	}
	return s
}

func (a *app) reviewShow(ctx context.Context, args []string) error {
	c := a.command("review show", "review show ID [--json]")
	c.gatewayFlags()
	asJSON := c.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos, "ID"); err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	var r api.Review
	if err := cl.getJSON(ctx, requestTimeout, "/v1/reviews/"+url.PathEscape(pos[0]), nil, &r); err != nil {
		return fmt.Errorf("reading review: %w", err)
	}
	if *asJSON {
		return printJSON(a.stdout, r)
	}
	a.printReview(r)
	return nil
}

func (a *app) printReview(r api.Review) {
	tw := newTable(a.stdout)
	fmt.Fprintf(tw, "Review\t%s\n", r.ID)
	fmt.Fprintf(tw, "Kind\t%s\n", r.Kind)
	fmt.Fprintf(tw, "Status\t%s\n", r.Status)
	fmt.Fprintf(tw, "Identity\t%s\n", cell(r.Identity, 0))
	fmt.Fprintf(tw, "Connection\t%s\n", cell(r.Connection, 0))
	if r.SessionID != "" {
		fmt.Fprintf(tw, "Session\t%s\n", r.SessionID)
	}
	if r.Kind == "access" {
		fmt.Fprintf(tw, "For\t%s\n", time.Duration(r.Duration))
	} else {
		fmt.Fprintf(tw, "Request\t%s\n", r.Request)
		fmt.Fprintf(tw, "Text\t%s\n", cell(r.Text, 0))
		if len(r.Params) > 0 {
			fmt.Fprintf(tw, "Parameters\t%s\n", cell(strings.Join(r.Params, " "), 0))
		}
	}
	fmt.Fprintf(tw, "Reason\t%s\n", orDash(cell(r.Reason, 0)))
	fmt.Fprintf(tw, "Reviewers\t%s (%d approval(s) needed)\n", strings.Join(r.Reviewers, ", "), r.MinApprovals)
	var by []string
	for _, ap := range r.Approvals {
		by = append(by, ap.Reviewer)
	}
	fmt.Fprintf(tw, "Approved by\t%s\n", orDash(strings.Join(by, ", ")))
	if r.DeniedBy != "" {
		fmt.Fprintf(tw, "Denied by\t%s: %s\n", r.DeniedBy, cell(r.DenyReason, 0))
	}
	fmt.Fprintf(tw, "Created\t%s\n", a.fmtTime(r.Created, time.RFC3339))
	if !r.Expires.IsZero() {
		label := "Expires"
		if r.Kind == "access" && r.Status == "approved" {
			label = "Access until"
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, a.fmtTime(r.Expires, time.RFC3339))
	}
	if !r.Released.IsZero() {
		fmt.Fprintf(tw, "Released\t%s\n", a.fmtTime(r.Released, time.RFC3339))
	}
	_ = tw.Flush()
}

func (a *app) reviewDecide(ctx context.Context, args []string, approve bool) error {
	name, synopsis := "review approve", "review approve ID [--json]"
	if !approve {
		name, synopsis = "review deny", "review deny ID --reason TEXT [--json]"
	}
	c := a.command(name, synopsis)
	c.gatewayFlags()
	reason := ""
	if !approve {
		c.StringVar(&reason, "reason", "", "why it is denied (the requester sees it)")
	}
	asJSON := c.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos, "ID"); err != nil {
		return err
	}
	if !approve && strings.TrimSpace(reason) == "" {
		return usagef("review deny: --reason is required")
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	verb := "approve"
	if !approve {
		verb = "deny"
	}
	var r api.Review
	if _, err := cl.postJSON(ctx, "/v1/reviews/"+url.PathEscape(pos[0])+"/"+verb, api.Decision{Reason: reason}, &r, http.StatusCreated); err != nil {
		return fmt.Errorf("%s review: %w", map[bool]string{true: "approving", false: "denying"}[approve], err)
	}
	if *asJSON {
		return printJSON(a.stdout, r)
	}
	switch r.Status {
	case "approved":
		fmt.Fprintf(a.stdout, "review %s approved\n", r.ID)
	case "denied":
		fmt.Fprintf(a.stdout, "review %s denied\n", r.ID)
	default:
		fmt.Fprintf(a.stdout, "review %s: your approval is recorded (%d of %d)\n", r.ID, len(r.Approvals), r.MinApprovals)
	}
	return nil
}
