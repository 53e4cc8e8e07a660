package ssh

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// maxDeferredRequests bounds the channel requests kept while an exec is
// held.
const maxDeferredRequests = 64

// holdExec holds an exec request that policy sent for review (see
// protocol.Holder): the client is told on stderr which review it waits
// for, and the command goes to the target only once approved. It returns
// the review that released the command, or the message refusing it. A
// client that goes away while it waits withdraws the review.
func (s *channel) holdExec(ctx context.Context, holder protocol.Holder, cmd string, v abi.Verdict) (string, string) {
	resp, err := holder.Hold(ctx, protocol.HoldRequest{SessionID: s.c.sessionID, Request: "exec", Text: cmd,
		Reviewers: v.Reviewers, Reason: v.Reason})
	if err != nil {
		s.c.log.Error("holding a command for review", "error", err)
		return "", "gatewayd policy requires approval for this, and it cannot be held for approval now; it was not run"
	}
	if resp.Released {
		fmt.Fprintf(s.ch.Stderr(), "gatewayd: running the command approved in review %s; that approval is now used\r\n", resp.ReviewID)
		return resp.ReviewID, ""
	}
	wait := time.Until(resp.Until).Round(time.Second)
	fmt.Fprintf(s.ch.Stderr(), "gatewayd: the command is held for approval in review %s (reviewers: %s); waiting up to %s\r\n",
		resp.ReviewID, strings.Join(resp.Reviewers, ", "), wait)
	s.c.log.Info("command held for review", "review", resp.ReviewID)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// left is set by the watch when the client went away; it is read once
	// the watch has ended.
	var left bool
	stop, watching := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watching)
		for {
			select {
			case <-s.c.gone:
				// The connection's end says the client left, and so does
				// the channel's close (a multiplexed ssh interrupted, a
				// library's session.Close); the end of its stdin does not
				// (ssh -n, a script's empty input).
				left = true
				cancel()
				return
			case req, ok := <-s.creqs:
				if !ok {
					left = true
					cancel()
					return
				}
				// Handled after the hold, in order; past a bound, refused.
				if len(s.deferred) < maxDeferredRequests {
					s.deferred = append(s.deferred, req)
				} else if req.WantReply {
					_ = req.Reply(false, nil)
				}
			case <-stop:
				return
			}
		}
	}()
	out, err := holder.AwaitHold(wctx, protocol.AwaitHoldRequest{SessionID: s.c.sessionID, ReviewID: resp.ReviewID})
	close(stop)
	<-watching
	switch {
	case left || ctx.Err() != nil:
		return "", "the client went away"
	case err != nil:
		s.c.log.Error("waiting for a review", "review", resp.ReviewID, "error", err)
		return "", fmt.Sprintf("gatewayd could not wait for review %s; the command was not run", resp.ReviewID)
	}
	switch out.Outcome {
	case protocol.HoldApproved:
		s.c.log.Info("held command approved", "review", resp.ReviewID, "reviewer", out.Reviewer)
		fmt.Fprintf(s.ch.Stderr(), "gatewayd: review %s approved by %s; running the command\r\n", resp.ReviewID, out.Reviewer)
		return resp.ReviewID, ""
	case protocol.HoldTimedOut:
		return "", fmt.Sprintf("gatewayd: review %s was not decided within %s, so the command was not run; if it is approved later, you may run the same command once more on this connection", resp.ReviewID, wait)
	default:
		msg := fmt.Sprintf("gatewayd: review %s was denied", resp.ReviewID)
		if out.Reviewer != "" {
			msg += " by " + out.Reviewer
		}
		if out.Reason != "" {
			msg += ": " + out.Reason
		}
		return "", msg + "; the command was not run"
	}
}

// expire ends the connection when its access ends (its grant expires, or
// the credential it signed in with), telling each open channel why: reason,
// or the grant's expiry when reason is "".
func (c *clientConn) expire(notAfter time.Time, reason string) {
	if reason == "" {
		reason = fmt.Sprintf("your access grant to this connection expired at %s; request access again with gatewayctl request",
			notAfter.UTC().Format(time.RFC3339))
	}
	c.mu.Lock()
	for s := range c.channels {
		fmt.Fprintf(s.ch.Stderr(), "\r\ngatewayd: %s; the session was ended\r\n", reason)
		sendExitStatus(s.ch, 255)
	}
	up := c.up
	c.mu.Unlock()
	c.log.Info("access grant expired; ending session")
	_ = c.sconn.Close()
	// The target's side ends too: a command still running there is not
	// left to finish under an expired grant.
	if up != nil {
		_ = up.Close()
	}
}

func (c *clientConn) addChannel(s *channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels == nil {
		c.channels = map[*channel]struct{}{}
	}
	c.channels[s] = struct{}{}
}

func (c *clientConn) removeChannel(s *channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.channels, s)
}
