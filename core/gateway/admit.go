package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/policy"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// Reasons the gateway itself gives for refusing a request.
const (
	reasonFault         = "the policy for this connection could not be evaluated"
	reasonFunctionCall  = "FunctionCall messages are refused on connections with masking: their results cannot be masked"
	reasonBinaryCopyOut = "COPY ... TO STDOUT in binary format is refused on connections with masking: binary COPY data cannot be masked"
	reasonGrantExpired  = "the access grant for this connection expired"
	reasonSignInRevoked = "your sign-in was revoked (gatewayctl logout); sign in again with gatewayctl login"
	// gatewayModule names the gateway in policy events it decides itself.
	gatewayModule = "gatewayd"
)

var allowed = abi.Verdict{Action: abi.Allow}

func (h *host) Admit(ctx context.Context, req protocol.AdmitRequest) (*protocol.AdmitResponse, error) {
	if err := h.audit.Healthy(); err != nil {
		h.metrics.AuditUnavailable.Set(1)
		return nil, fmt.Errorf("%w: %v", protocol.ErrUnavailable, err)
	}
	ls := h.session(req.SessionID)
	if ls == nil {
		return nil, fmt.Errorf("gateway: admitting a request of unknown session %q", req.SessionID)
	}
	if ls.expired() {
		reason := reasonGrantExpired
		if ls.endReason != "" {
			reason = ls.endReason
		}
		return h.refuse(ctx, ls, req, gatewayModule, abi.Verdict{Action: abi.Terminate, Reason: reason})
	}
	if h.dir.Revoked(ls.identity.CredentialID) {
		return h.refuse(ctx, ls, req, gatewayModule, abi.Verdict{Action: abi.Terminate, Reason: reasonSignInRevoked})
	}
	ps := ls.policy
	if ps == nil || req.Kind == 0 {
		return &protocol.AdmitResponse{Verdict: allowed}, nil
	}
	masked := ps.Masks() != 0
	if req.Kind == abi.SQLFunctionCall && masked {
		return h.refuse(ctx, ls, req, gatewayModule, abi.Verdict{Action: abi.Deny, Reason: reasonFunctionCall})
	}
	if ps.HasPolicy() {
		d, err := ps.Check(ctx, req.Kind, req.Text, req.Attrs)
		var fault *policy.Fault
		switch {
		case errors.Is(err, policy.ErrUnparsable):
			return h.refuse(ctx, ls, req, gatewayModule, abi.Verdict{Action: abi.Deny,
				Reason: "the statement could not be parsed, and unparsed statements are refused on this connection: " + errors.Unwrap(err).Error()})
		case errors.As(err, &fault):
			h.moduleFault(ctx, ls, fault, req.Kind, "request denied", req.Text)
			return h.refuse(ctx, ls, req, fault.Module, abi.Verdict{Action: abi.Deny, Reason: reasonFault})
		case err != nil:
			h.log.Error("evaluating policy", "session", ls.id, "error", err)
			return h.refuse(ctx, ls, req, gatewayModule, abi.Verdict{Action: abi.Deny, Reason: reasonFault + ": " + err.Error()})
		case d.Verdict.Action != abi.Allow:
			return h.refuse(ctx, ls, req, d.Module, d.Verdict)
		}
	}
	if masked && (req.Kind == abi.SQLQuery || req.Kind == abi.SQLParse) && binaryCopyOut(h.policy, req.Text) {
		return h.refuse(ctx, ls, req, gatewayModule, abi.Verdict{Action: abi.Deny, Reason: reasonBinaryCopyOut})
	}
	return &protocol.AdmitResponse{Verdict: allowed}, nil
}

// binaryCopyOut reports whether text holds a COPY ... TO STDOUT in binary
// format. The parse is cached, so text policy already parsed costs a lookup.
func binaryCopyOut(e *policy.Engine, text string) bool {
	if !containsFold(text, "copy") {
		return false
	}
	parsed, err := e.Statements(text)
	if err != nil {
		return false // the server refuses it too
	}
	for _, st := range parsed {
		if st.Copy != nil && !st.Copy.From && st.Copy.Format == "binary" {
			return true
		}
	}
	return false
}

// containsFold reports whether text holds word in any case, without
// copying text (it runs on every statement of a masked session).
func containsFold(text, word string) bool {
	for i := 0; i+len(word) <= len(text); i++ {
		if strings.EqualFold(text[i:i+len(word)], word) {
			return true
		}
	}
	return false
}

// refuse audits a verdict other than allow and returns it.
func (h *host) refuse(ctx context.Context, ls *liveSession, req protocol.AdmitRequest, module string, v abi.Verdict) (*protocol.AdmitResponse, error) {
	h.metrics.PolicyVerdicts.WithLabelValues(ls.protocol, v.Action.String()).Inc()
	h.log.Info("request refused by policy", "session", ls.id, "connection", ls.connection, "user", ls.identity.Name,
		"module", module, "verdict", v.Action.String(), "reason", v.Reason)
	err := h.appendEvent(ctx, audit.Record{
		Kind: audit.KindPolicy, SessionID: ls.id, Identity: ls.identity.Name, Connection: ls.connection,
		Data: audit.PolicyData{Module: module, Verdict: v.Action.String(), Reason: v.Reason, Reviewers: v.Reviewers,
			Request: req.Kind.String(), Text: req.Text},
	})
	if err != nil {
		// The request is refused either way; the session cannot go on
		// without its audit trail.
		return nil, fmt.Errorf("%w: %v", protocol.ErrUnavailable, err)
	}
	return &protocol.AdmitResponse{Verdict: v, Module: module}, nil
}

// moduleFault audits a module that failed.
func (h *host) moduleFault(ctx context.Context, ls *liveSession, f *policy.Fault, kind abi.FrameKind, effect, text string) {
	h.metrics.ModuleFaults.WithLabelValues(f.Module, f.Reason).Inc()
	h.log.Error("module fault", "session", ls.id, "module", f.Module, "fault", f.Reason, "error", f.Err, "effect", effect)
	if err := h.appendEvent(ctx, audit.Record{
		Kind: audit.KindModuleFault, SessionID: ls.id, Identity: ls.identity.Name, Connection: ls.connection,
		Data: audit.ModuleFaultData{Module: f.Module, SHA256: f.SHA256, Fault: f.Reason, Detail: firstLine(f.Err.Error()),
			Frame: kind.String(), Effect: effect, Text: text},
	}); err != nil {
		h.log.Error("auditing module fault", "error", err)
	}
}

// errMasking is returned when a batch cannot be masked; the handler ends
// the session with its text.
var errMasking = errors.New("the result could not be masked, so the session was ended")

func (h *host) Mask(ctx context.Context, req protocol.MaskRequest) (*protocol.MaskResponse, error) {
	ls := h.session(req.SessionID)
	if ls == nil || ls.policy == nil {
		return nil, fmt.Errorf("gateway: masking for unknown session %q", req.SessionID)
	}
	res, err := ls.policy.Mask(ctx, req.Batch)
	var fault *policy.Fault
	switch {
	case errors.As(err, &fault):
		h.moduleFault(ctx, ls, fault, req.Batch.Kind, "session ended", "")
		return nil, fmt.Errorf("%w (masking module %s failed)", errMasking, fault.Module)
	case err != nil:
		h.log.Error("masking", "session", ls.id, "error", err)
		return nil, fmt.Errorf("%w: %v", errMasking, err)
	case res.Terminate:
		if _, err := h.refuse(ctx, ls, protocol.AdmitRequest{Kind: req.Batch.Kind}, res.Module,
			abi.Verdict{Action: abi.Terminate, Reason: res.Reason}); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("session ended by masking module %s: %s", res.Module, res.Reason)
	}
	return &protocol.MaskResponse{Changes: res.Changes}, nil
}

// firstLine drops a guest stack trace from an error text.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
