package ssh

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// envAllowed reports whether a client's env request passes to the target.
func envAllowed(name string) bool {
	return name == "LANG" || name == "TERM" || strings.HasPrefix(name, "LC_")
}

// session serves one "session" channel: a shell, a command or a subsystem.
func (c *clientConn) session(ctx context.Context, nc gossh.NewChannel) {
	up, err := c.open(ctx)
	if err != nil {
		c.refuseChannel(nc, err.Error())
		return
	}
	uch, ureqs, err := up.OpenChannel("session", nil)
	if err != nil {
		c.log.Warn("opening a session channel upstream", "error", err)
		_ = nc.Reject(gossh.ConnectionFailed, "gatewayd could not open a session on the target")
		return
	}
	ch, creqs, err := nc.Accept()
	if err != nil {
		_ = uch.Close()
		return
	}
	s := &channel{c: c, ch: ch, uch: uch, width: 80, height: 24}
	c.addChannel(s)
	defer c.removeChannel(s)
	s.run(ctx, creqs, ureqs)
}

// refuseChannel accepts a channel only to tell the client, in its terminal,
// why nothing will run, then ends it with exit status 255.
func (c *clientConn) refuseChannel(nc gossh.NewChannel, msg string) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go func() {
		for req := range reqs {
			if req.WantReply {
				// Let shell/exec succeed so that the client reads stderr.
				_ = req.Reply(req.Type == "shell" || req.Type == "exec" || req.Type == "subsystem" || req.Type == "pty-req", nil)
			}
			if req.Type == "shell" || req.Type == "exec" || req.Type == "subsystem" {
				fmt.Fprintf(ch.Stderr(), "gatewayd: %s\r\n", msg)
				sendExitStatus(ch, 255)
				_ = ch.Close()
			}
		}
	}()
	// A client that never asks for anything is closed after a while.
	time.AfterFunc(30*time.Second, func() { _ = ch.Close() })
}

func sendExitStatus(ch gossh.Channel, code uint32) {
	_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, code))
}

// channel is one relayed session channel.
type channel struct {
	c   *clientConn
	ch  gossh.Channel // to the client
	uch gossh.Channel // to the target

	mu      sync.Mutex
	term    string
	width   int
	height  int
	started bool // a shell, exec or subsystem was asked for
	record  bool // terminal data is recorded (shell and exec)
	recErr  error
	// subsystem is set once a subsystem started (its data is binary: not
	// masked, not recorded); sftp watches an sftp subsystem's operations.
	subsystem bool
	sftp      *sftpWatch
	// The request to audit when the channel ends: "shell", "exec" or
	// "subsystem", its text, and when it started.
	reqKind   string
	reqText   string
	reqStart  time.Time
	reqReview string // the review that released the request

	// creqs are the client's requests on the channel: the request loop
	// reads them, and holdExec while it waits, to see the channel close.
	creqs <-chan *gossh.Request
	// deferred are requests that came while an exec was held, handled
	// once the hold ends.
	deferred []*gossh.Request
}

func (s *channel) run(ctx context.Context, creqs, ureqs <-chan *gossh.Request) {
	var exits []*gossh.Request
	var exitMu sync.Mutex
	upDone := make(chan struct{})
	var wg sync.WaitGroup

	// Requests from the target: exit status and signal wait until the
	// output before them has been relayed.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for req := range ureqs {
			if req.Type == "exit-status" || req.Type == "exit-signal" {
				exitMu.Lock()
				exits = append(exits, req)
				exitMu.Unlock()
				continue
			}
			ok, _ := s.ch.SendRequest(req.Type, req.WantReply, req.Payload)
			if req.WantReply {
				_ = req.Reply(ok, nil)
			}
		}
	}()
	// Requests from the client.
	s.creqs = creqs
	go func() {
		for req := range creqs {
			s.request(ctx, req)
			for len(s.deferred) > 0 {
				req := s.deferred[0]
				s.deferred = s.deferred[1:]
				s.request(ctx, req)
			}
		}
	}()
	// Data: client to target.
	go func() {
		n, _ := io.Copy(writerFunc(func(p []byte) (int, error) {
			s.mu.Lock()
			sftp := s.sftp
			s.mu.Unlock()
			switch {
			case sftp != nil:
				sftp.client(p)
			case s.hasPTY():
				// Keystrokes of a terminal; without a pty stdin is data
				// (a pipe, a file being copied), not typing.
				if err := s.recordEvent(ctx, protocol.RecordInput, p); err != nil {
					return 0, err
				}
			}
			return s.uch.Write(p)
		}), s.ch)
		s.c.addBytes(n, 0)
		_ = s.uch.CloseWrite()
	}()
	// Data: target to client, stdout and stderr.
	var outWG sync.WaitGroup
	outWG.Add(2)
	go func() {
		defer outWG.Done()
		out := s.output(ctx, s.ch, true)
		n, _ := io.Copy(out, s.uch)
		_ = out.Close()
		s.c.addBytes(0, n)
	}()
	go func() {
		defer outWG.Done()
		out := s.output(ctx, s.ch.Stderr(), false)
		n, _ := io.Copy(out, s.uch.Stderr())
		_ = out.Close()
		s.c.addBytes(0, n)
	}()
	go func() {
		outWG.Wait()
		close(upDone)
	}()
	select {
	case <-upDone:
	case <-ctx.Done():
	}
	// The target's output is all out: its exit status follows it.
	_ = s.uch.Close()
	wg.Wait()
	exitMu.Lock()
	outcome := "ok"
	for _, req := range exits {
		_, _ = s.ch.SendRequest(req.Type, false, req.Payload)
		switch {
		case req.Type == "exit-status" && len(req.Payload) >= 4:
			if code := binary.BigEndian.Uint32(req.Payload); code != 0 {
				outcome = fmt.Sprintf("exit %d", code)
			}
		case req.Type == "exit-signal":
			sig, _, _ := sshString(req.Payload)
			outcome = "signal " + sig
		}
	}
	exitMu.Unlock()
	s.auditRequest(ctx, outcome)
	s.mu.Lock()
	sftp := s.sftp
	s.mu.Unlock()
	if sftp != nil {
		sftp.close()
	}
	_ = s.ch.CloseWrite()
	_ = s.ch.Close()
	s.endRecording(ctx)
}

// hasPTY reports whether the client asked for a terminal.
func (s *channel) hasPTY() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.term != ""
}

// output returns a writer to the client for the target's stdout or stderr.
// On a shell or exec channel it masks (when the session's masking modules
// ask for terminal output), records, then writes; on a subsystem (binary
// data such as sftp) it only watches sftp's file operations. Close it to
// send what masking holds back.
func (s *channel) output(ctx context.Context, w io.Writer, stdout bool) io.WriteCloser {
	send := func(p []byte) error {
		if err := s.recordEvent(ctx, protocol.RecordOutput, p); err != nil {
			return err
		}
		_, err := w.Write(p)
		return err
	}
	var masker *maskingWriter
	if s.c.masking.Has(abi.Output) {
		masker = newMaskingWriter(ctx, s, send)
	}
	return &outputWriter{s: s, w: w, send: send, masker: masker, stdout: stdout}
}

type outputWriter struct {
	s      *channel
	w      io.Writer
	send   func([]byte) error
	masker *maskingWriter
	stdout bool
}

func (o *outputWriter) Write(p []byte) (int, error) {
	o.s.mu.Lock()
	sftp, subsystem := o.s.sftp, o.s.subsystem
	o.s.mu.Unlock()
	if subsystem {
		if sftp != nil && o.stdout {
			sftp.server(p)
		}
		return o.w.Write(p)
	}
	if o.masker != nil {
		return o.masker.Write(p)
	}
	if err := o.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (o *outputWriter) Close() error {
	if o.masker != nil {
		return o.masker.Close()
	}
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// request handles one request of the client on the channel.
func (s *channel) request(ctx context.Context, req *gossh.Request) {
	reply := func(ok bool) {
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
	forward := func() bool {
		ok, err := s.uch.SendRequest(req.Type, req.WantReply, req.Payload)
		if err != nil {
			ok = false
		}
		reply(ok)
		return ok
	}
	switch req.Type {
	case "pty-req":
		term, rest, ok := sshString(req.Payload)
		if ok && len(rest) >= 8 {
			s.mu.Lock()
			s.term = term
			s.width, s.height = int(binary.BigEndian.Uint32(rest)), int(binary.BigEndian.Uint32(rest[4:]))
			s.mu.Unlock()
		}
		forward()
	case "window-change":
		if len(req.Payload) >= 8 {
			cols, rows := binary.BigEndian.Uint32(req.Payload), binary.BigEndian.Uint32(req.Payload[4:])
			s.mu.Lock()
			s.width, s.height = int(cols), int(rows)
			s.mu.Unlock()
			s.recordEvent(ctx, protocol.RecordResize, []byte(fmt.Sprintf("%dx%d", cols, rows)))
		}
		forward()
	case "env":
		name, _, ok := sshString(req.Payload)
		if !ok || !envAllowed(name) {
			reply(false)
			return
		}
		forward()
	case "shell":
		s.start(ctx, req, abi.ShellSession, "", nil, forward)
	case "exec":
		cmd, _, ok := sshString(req.Payload)
		if !ok {
			reply(false)
			return
		}
		s.start(ctx, req, abi.ShellExec, cmd, nil, forward)
	case "subsystem":
		name, _, ok := sshString(req.Payload)
		if !ok {
			reply(false)
			return
		}
		s.start(ctx, req, abi.Subsystem, name, []abi.Attr{{Key: "name", Value: name}}, forward)
	case "signal", "break", "eow@openssh.com":
		forward()
	default:
		// auth-agent-req@openssh.com, x11-req and anything unknown.
		s.c.event(ctx, "request.refused", map[string]string{"request": req.Type})
		reply(false)
	}
}

// start admits a shell, exec or subsystem request through policy and
// forwards it, or tells the client why not.
func (s *channel) start(ctx context.Context, req *gossh.Request, kind abi.FrameKind, text string, attrs []abi.Attr, forward func() bool) {
	s.mu.Lock()
	started := s.started
	s.started = true
	s.mu.Unlock()
	if started {
		if req.WantReply {
			_ = req.Reply(false, nil)
		}
		return
	}
	s.c.countRequest()
	holder, _ := s.c.host.(protocol.Holder)
	resp, err := s.c.host.Admit(ctx, protocol.AdmitRequest{SessionID: s.c.sessionID, Kind: kind, Text: text, Attrs: attrs})
	var msg string
	switch {
	case err != nil:
		s.c.log.Error("request refused: gateway cannot admit it", "error", err)
		msg = "gatewayd cannot record requests now (audit log unavailable); refused"
	case resp.Verdict.Action == abi.Deny:
		msg = "gatewayd policy denied this: " + resp.Verdict.Reason
	case resp.Verdict.Action == abi.Review && kind == abi.ShellExec && holder != nil:
		if req.WantReply {
			_ = req.Reply(true, nil) // the client reads stderr while it waits
		}
		review, refusal := s.holdExec(ctx, holder, text, resp.Verdict)
		if refusal != "" {
			fmt.Fprintf(s.ch.Stderr(), "%s\r\n", refusal)
			sendExitStatus(s.ch, 1)
			_ = s.uch.Close()
			return
		}
		s.mu.Lock()
		s.reqReview = review
		s.mu.Unlock()
		// The client was answered already: the target's answer is ours.
		forward = func() bool {
			ok, err := s.uch.SendRequest(req.Type, true, req.Payload)
			if err != nil || !ok {
				fmt.Fprintf(s.ch.Stderr(), "gatewayd: the target refused the command\r\n")
				sendExitStatus(s.ch, 1)
				_ = s.uch.Close()
				return false
			}
			return true
		}
	case resp.Verdict.Action == abi.Review:
		msg = "gatewayd policy requires approval for this: " + resp.Verdict.Reason + "; it cannot be held for approval here, so it was not run"
	case resp.Verdict.Action != abi.Allow:
		msg = "gatewayd policy ended the session: " + resp.Verdict.Reason
		defer s.c.sconn.Close()
	}
	if msg != "" {
		if req.WantReply {
			_ = req.Reply(true, nil) // so that the client reads the reason
		}
		fmt.Fprintf(s.ch.Stderr(), "%s\r\n", msg)
		sendExitStatus(s.ch, 1)
		_ = s.uch.Close()
		return
	}
	if kind != abi.Subsystem {
		s.startRecording(ctx, text)
	} else {
		s.mu.Lock()
		s.subsystem = true
		if text == "sftp" {
			s.sftp = newSFTPWatch(func(op sftpOp) { s.c.event(ctx, "sftp."+op.Op, op.Detail()) })
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.reqKind, s.reqText, s.reqStart = req.Type, text, time.Now()
	s.mu.Unlock()
	if !forward() {
		s.auditRequest(ctx, "refused by the target")
	}
}

// auditRequest records the channel's shell, exec or subsystem with its
// outcome, once.
func (s *channel) auditRequest(ctx context.Context, outcome string) {
	s.mu.Lock()
	kind, text, started, review := s.reqKind, s.reqText, s.reqStart, s.reqReview
	s.reqKind = ""
	s.mu.Unlock()
	if kind == "" {
		return
	}
	rec := protocol.RequestRecord{SessionID: s.c.sessionID, Kind: kind, Text: text, Started: started,
		Duration: time.Since(started), Rows: -1, Outcome: "ok", ReviewID: review}
	if outcome != "ok" {
		rec.Outcome, rec.Tag = "error", outcome
	}
	if err := s.c.host.RecordRequests(context.WithoutCancel(ctx), []protocol.RequestRecord{rec}); err != nil {
		s.c.log.Error("recording a request", "error", err)
	}
}

// sshString reads an SSH string (uint32 length, bytes).
func sshString(b []byte) (string, []byte, bool) {
	if len(b) < 4 {
		return "", b, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return "", b, false
	}
	return string(b[4 : 4+n]), b[4+n:], true
}

func (c *clientConn) addBytes(in, out int64) {
	c.mu.Lock()
	c.bytesIn += in
	c.bytesOut += out
	c.mu.Unlock()
}

func (c *clientConn) countRequest() {
	c.mu.Lock()
	c.requests++
	c.mu.Unlock()
}

// startRecording starts recording the channel's terminal.
func (s *channel) startRecording(ctx context.Context, command string) {
	rec, ok := s.c.host.(protocol.Recorder)
	if !ok {
		return
	}
	s.mu.Lock()
	start := &protocol.RecordingStart{Width: s.width, Height: s.height, Term: s.term, Command: command}
	s.record = true
	s.mu.Unlock()
	if err := rec.Record(ctx, protocol.RecordRequest{SessionID: s.c.sessionID, Start: start}); err != nil {
		s.recordFailed(err)
	}
}

// recordEvent records terminal data; an error ends the session: nothing
// goes unrecorded.
func (s *channel) recordEvent(ctx context.Context, kind byte, p []byte) error {
	s.mu.Lock()
	record, recErr := s.record, s.recErr
	s.mu.Unlock()
	if recErr != nil {
		return recErr
	}
	if !record || len(p) == 0 {
		return nil
	}
	rec := s.c.host.(protocol.Recorder)
	err := rec.Record(ctx, protocol.RecordRequest{SessionID: s.c.sessionID,
		Events: []protocol.RecordEvent{{Time: time.Now(), Kind: kind, Data: p}}})
	if err != nil {
		s.recordFailed(err)
		return err
	}
	return nil
}

func (s *channel) recordFailed(err error) {
	s.mu.Lock()
	s.recErr = err
	s.mu.Unlock()
	s.c.log.Error("recording failed: ending the session", "error", err)
	fmt.Fprintf(s.ch.Stderr(), "\r\ngatewayd: the session cannot be recorded, so it was ended\r\n")
	_ = s.c.sconn.Close()
}

func (s *channel) endRecording(ctx context.Context) {
	s.mu.Lock()
	record := s.record
	s.mu.Unlock()
	if !record {
		return
	}
	_ = s.c.host.(protocol.Recorder).Record(context.WithoutCancel(ctx), protocol.RecordRequest{SessionID: s.c.sessionID, End: true})
}
