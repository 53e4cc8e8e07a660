package ssh_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/core/api"
)

const daveToken = "gwt_dave_ssh_token_4444444444"

// reviewCall makes an API request as dave.
func (e *env) reviewCall(method, path string, out any) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, "http://"+e.api+path, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+daveToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// heldCommand waits for the pending review of an exec command.
func (e *env) heldCommand(cmd string) api.Review {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var list api.ReviewList
		e.reviewCall("GET", "/v1/reviews?status=pending", &list)
		for _, r := range list.Reviews {
			if r.Text == cmd && r.Request == "exec" {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("no pending review of %q", cmd)
	return api.Review{}
}

// TestExecHeldForApproval: an exec command policy sends for review waits,
// with a message on stderr, until a reviewer decides: approved, it runs
// and its output and exit status come back; denied, it never runs.
func TestExecHeldForApproval(t *testing.T) {
	e := start(t, fmt.Sprintf(`
[[identity.static]]
name = "dave"
groups = ["dba"]
token_sha256 = %q

[[policy]]
module = "sqlguard"
connections = ["web-*"]
[policy.config]
review_commands = ["touch"]
reviewers = ["dba"]

[review]
hold_timeout = "30s"
`, sha(daveToken)))
	for _, approve := range []bool{true, false} {
		file := fmt.Sprintf("/tmp/gwtest-held-%d-%v", time.Now().UnixNano(), approve)
		t.Cleanup(func() { _ = os.Remove(file) })
		cmd := "touch " + file + " && echo ran"
		type result struct {
			out string
			err error
		}
		done := make(chan result, 1)
		go func() {
			out, err := e.run("", "ssh", "web-1@127.0.0.1", cmd)
			done <- result{out, err}
		}()
		r := e.heldCommand(cmd)
		time.Sleep(100 * time.Millisecond)
		if _, err := os.Stat(file); err == nil {
			t.Fatal("the held command ran before it was decided")
		}
		verb := "approve"
		if !approve {
			verb = "deny"
		}
		if st := e.reviewCall("POST", "/v1/reviews/"+r.ID+"/"+verb, nil); st != 200 {
			t.Fatalf("%s: %d", verb, st)
		}
		var res result
		select {
		case res = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("ssh did not finish after the decision")
		}
		if !strings.Contains(res.out, "held for approval in review "+r.ID) {
			t.Fatalf("no hold message on stderr: %q", res.out)
		}
		_, statErr := os.Stat(file)
		if approve {
			if res.err != nil || !strings.Contains(res.out, "ran\n") || statErr != nil {
				t.Fatalf("approved: %v %q (file: %v)", res.err, res.out, statErr)
			}
			continue
		}
		ee, ok := res.err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 || !strings.Contains(res.out, "denied by dave") || strings.Contains(res.out, "ran\n") || statErr == nil {
			t.Fatalf("denied: %v %q (file: %v)", res.err, res.out, statErr)
		}
	}
	var released bool
	for _, ev := range e.events("request") {
		if strings.Contains(ev[1], `"review_id"`) && strings.Contains(ev[1], `"kind":"exec"`) {
			released = true
		}
	}
	if !released {
		t.Error("no request event of the released command naming its review")
	}
}

// TestAccessGrantEndsSSHSession: an SSH connection with require_approval
// opens only under an approved access request, and its channels end, with
// the reason on stderr, when the grant expires.
func TestAccessGrantEndsSSHSession(t *testing.T) {
	e := start(t, fmt.Sprintf(`
[[identity.static]]
name = "dave"
groups = ["dba"]
token_sha256 = %q
`, sha(daveToken)))
	out, err := e.run("", "ssh", "web-jit@127.0.0.1", "echo in")
	if err == nil || !strings.Contains(out, "requires an approved access request") {
		t.Fatalf("without a grant: %v %q", err, out)
	}
	req, _ := http.NewRequest("POST", "http://"+e.api+"/v1/requests",
		strings.NewReader(`{"connection": "web-jit", "duration": "3s", "reason": "INC-1"}`))
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var r api.Review
	_ = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("request: %d", resp.StatusCode)
	}
	if st := e.reviewCall("POST", "/v1/reviews/"+r.ID+"/approve", nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	start := time.Now()
	out, err = e.run("", "ssh", "web-jit@127.0.0.1", "echo in; sleep 30")
	ee, ok := err.(*exec.ExitError)
	if !ok || !strings.Contains(out, "in\n") || !strings.Contains(out, "access grant to this connection expired") {
		t.Fatalf("under the grant: %v %q", err, out)
	}
	t.Logf("ended after %v", time.Since(start))
	if ee.ExitCode() != 255 || time.Since(start) > 15*time.Second {
		t.Fatalf("exit %d after %v", ee.ExitCode(), time.Since(start))
	}
	out, err = e.run("", "ssh", "web-jit@127.0.0.1", "echo in")
	if err == nil || !strings.Contains(out, "requires an approved access request") {
		t.Fatalf("after the grant: %v %q", err, out)
	}
}

// TestHeldExecOfClosedChannelNeverRuns: a client that closes the channel
// of its held command, keeping the connection (an OpenSSH ControlMaster
// whose ssh was interrupted, a library's session.Close), withdraws the
// review: the command never runs, even if approved after.
func TestHeldExecOfClosedChannelNeverRuns(t *testing.T) {
	e := start(t, fmt.Sprintf(`
[[identity.static]]
name = "dave"
groups = ["dba"]
token_sha256 = %q

[[policy]]
module = "sqlguard"
connections = ["web-*"]
[policy.config]
review_commands = ["touch"]
reviewers = ["dba"]

[review]
hold_timeout = "30s"
`, sha(daveToken)))
	c, err := e.client(t, "web-1", e.aliceSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	file := fmt.Sprintf("/tmp/gwtest-closed-%d", time.Now().UnixNano())
	t.Cleanup(func() { _ = os.Remove(file) })
	cmd := "touch " + file
	if err := sess.Start(cmd); err != nil {
		t.Fatal(err)
	}
	r := e.heldCommand(cmd)
	_ = sess.Close()
	deadline := time.Now().Add(10 * time.Second)
	var rv api.Review
	for e.reviewCall("GET", "/v1/reviews/"+r.ID, &rv); rv.Status != "cancelled" && time.Now().Before(deadline); e.reviewCall("GET", "/v1/reviews/"+r.ID, &rv) {
		time.Sleep(20 * time.Millisecond)
	}
	st := e.reviewCall("POST", "/v1/reviews/"+r.ID+"/approve", nil)
	time.Sleep(500 * time.Millisecond)
	if _, err := os.Stat(file); err == nil {
		t.Fatalf("the command of a closed channel ran after its approval (review %s, approve: %d)", rv.Status, st)
	}
	if rv.Status != "cancelled" || st != http.StatusConflict {
		t.Fatalf("review = %s, approving: %d; want cancelled, 409", rv.Status, st)
	}
}
