package protocolplugin

import (
	"errors"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	pb "github.com/gatewayd-access/gatewayd/sdk/protocol/internal/protocolv1"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// Conversions between the contract's structs and their wire form. Secret
// bytes are copied into a secret.Value and cleared from the message as soon
// as they are decoded, so that no message printed by mistake shows them.

func identityToPB(id protocol.Identity) *pb.Identity {
	return &pb.Identity{Name: id.Name, Email: id.Email, Groups: id.Groups, ExpiresUnixNanos: unixNanos(id.Expires),
		CredentialId: id.CredentialID}
}

func identityFromPB(id *pb.Identity) protocol.Identity {
	if id == nil {
		return protocol.Identity{}
	}
	return protocol.Identity{Name: id.Name, Email: id.Email, Groups: id.Groups, Expires: fromUnixNanos(id.ExpiresUnixNanos),
		CredentialID: id.CredentialId}
}

func authenticateToPB(r protocol.AuthenticateRequest) *pb.AuthenticateRequest {
	return &pb.AuthenticateRequest{Protocol: r.Protocol, ClientAddr: r.ClientAddr, User: r.User,
		Password: []byte(r.Password.Reveal()), PublicKey: r.PublicKey}
}

func authenticateFromPB(r *pb.AuthenticateRequest) protocol.AuthenticateRequest {
	pw := secret.NewValue(r.Password)
	clear(r.Password)
	return protocol.AuthenticateRequest{Protocol: r.Protocol, ClientAddr: r.ClientAddr, User: r.User, Password: pw, PublicKey: r.PublicKey}
}

func openSessionToPB(r protocol.OpenSessionRequest) *pb.OpenSessionRequest {
	return &pb.OpenSessionRequest{Protocol: r.Protocol, ClientAddr: r.ClientAddr, Identity: identityToPB(r.Identity),
		Connection: r.Connection, Tls: r.TLS, Attributes: r.Attributes}
}

func openSessionFromPB(r *pb.OpenSessionRequest) protocol.OpenSessionRequest {
	return protocol.OpenSessionRequest{Protocol: r.Protocol, ClientAddr: r.ClientAddr, Identity: identityFromPB(r.Identity),
		Connection: r.Connection, TLS: r.Tls, Attributes: r.Attributes}
}

func openSessionRespToPB(r *protocol.OpenSessionResponse) *pb.OpenSessionResponse {
	t := r.Target
	return &pb.OpenSessionResponse{
		SessionId: r.SessionID,
		Target: &pb.Target{
			Connection: t.Connection, Address: t.Address, Database: t.Database, User: t.User,
			Credential:         []byte(t.Credential.Reveal()),
			Tls:                &pb.TargetTLS{Mode: t.TLS.Mode, CaFile: t.TLS.CAFile, ServerName: t.TLS.ServerName},
			DialTimeoutNanos:   int64(t.DialTimeout),
			HostKeys:           t.HostKeys,
			AllowForward:       t.AllowForward,
			AllowRemoteForward: t.AllowRemoteForward,
		},
		Policy:            r.Policy,
		Masking:           uint32(r.Masking),
		NotAfterUnixNanos: unixNanos(r.NotAfter),
		EndReason:         r.EndReason,
	}
}

func openSessionRespFromPB(r *pb.OpenSessionResponse) *protocol.OpenSessionResponse {
	resp := &protocol.OpenSessionResponse{SessionID: r.SessionId, Policy: r.Policy, Masking: abi.Subscription(r.Masking),
		NotAfter: fromUnixNanos(r.NotAfterUnixNanos), EndReason: r.EndReason}
	if t := r.Target; t != nil {
		resp.Target = protocol.Target{
			Connection: t.Connection, Address: t.Address, Database: t.Database, User: t.User,
			Credential:         secret.NewValue(t.Credential),
			DialTimeout:        time.Duration(t.DialTimeoutNanos),
			HostKeys:           t.HostKeys,
			AllowForward:       t.AllowForward,
			AllowRemoteForward: t.AllowRemoteForward,
		}
		clear(t.Credential)
		if t.Tls != nil {
			resp.Target.TLS = protocol.TargetTLS{Mode: t.Tls.Mode, CAFile: t.Tls.CaFile, ServerName: t.Tls.ServerName}
		}
	}
	return resp
}

func admitToPB(r protocol.AdmitRequest) *pb.AdmitRequest {
	m := &pb.AdmitRequest{SessionId: r.SessionID, Kind: uint32(r.Kind), Text: r.Text}
	if len(r.Attrs) > 0 {
		m.Attrs = make([]*pb.Attr, len(r.Attrs))
		for i, a := range r.Attrs {
			m.Attrs[i] = &pb.Attr{Key: a.Key, Value: a.Value}
		}
	}
	return m
}

func admitFromPB(r *pb.AdmitRequest) protocol.AdmitRequest {
	req := protocol.AdmitRequest{SessionID: r.SessionId, Kind: abi.FrameKind(r.Kind), Text: r.Text}
	if len(r.Attrs) > 0 {
		req.Attrs = make([]abi.Attr, len(r.Attrs))
		for i, a := range r.Attrs {
			req.Attrs[i] = abi.Attr{Key: a.Key, Value: a.Value}
		}
	}
	return req
}

func admitRespToPB(r *protocol.AdmitResponse) *pb.AdmitResponse {
	return &pb.AdmitResponse{Action: uint32(r.Verdict.Action), Reason: r.Verdict.Reason, Reviewers: r.Verdict.Reviewers, Module: r.Module}
}

func admitRespFromPB(r *pb.AdmitResponse) *protocol.AdmitResponse {
	return &protocol.AdmitResponse{
		Verdict: abi.Verdict{Action: abi.Action(r.Action), Reason: r.Reason, Reviewers: r.Reviewers},
		Module:  r.Module,
	}
}

func recordsToPB(recs []protocol.RequestRecord) *pb.RecordRequestsRequest {
	m := &pb.RecordRequestsRequest{Records: make([]*pb.RequestRecord, len(recs))}
	for i := range recs {
		r := &recs[i]
		m.Records[i] = &pb.RequestRecord{
			SessionId: r.SessionID, Kind: r.Kind, Text: r.Text,
			StartedUnixNanos: r.Started.UnixNano(), DurationNanos: int64(r.Duration),
			Rows: r.Rows, Outcome: r.Outcome, Tag: r.Tag, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
			ReviewId: r.ReviewID,
		}
	}
	return m
}

func recordsFromPB(m *pb.RecordRequestsRequest) []protocol.RequestRecord {
	recs := make([]protocol.RequestRecord, len(m.Records))
	for i, r := range m.Records {
		recs[i] = protocol.RequestRecord{
			SessionID: r.SessionId, Kind: r.Kind, Text: r.Text,
			Started: time.Unix(0, r.StartedUnixNanos), Duration: time.Duration(r.DurationNanos),
			Rows: r.Rows, Outcome: r.Outcome, Tag: r.Tag, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
			ReviewID: r.ReviewId,
		}
	}
	return recs
}

func eventToPB(ev protocol.Event) *pb.Event {
	return &pb.Event{Kind: ev.Kind, SessionId: ev.SessionID, ClientAddr: ev.ClientAddr, Detail: ev.Detail}
}

func eventFromPB(ev *pb.Event) protocol.Event {
	return protocol.Event{Kind: ev.Kind, SessionID: ev.SessionId, ClientAddr: ev.ClientAddr, Detail: ev.Detail}
}

func closeToPB(r protocol.CloseSessionRequest) *pb.CloseSessionRequest {
	return &pb.CloseSessionRequest{SessionId: r.SessionID, Reason: r.Reason, BytesIn: r.BytesIn, BytesOut: r.BytesOut, RequestCount: r.RequestCount}
}

func closeFromPB(r *pb.CloseSessionRequest) protocol.CloseSessionRequest {
	return protocol.CloseSessionRequest{SessionID: r.SessionId, Reason: r.Reason, BytesIn: r.BytesIn, BytesOut: r.BytesOut, RequestCount: r.RequestCount}
}

func recordToPB(r protocol.RecordRequest) *pb.RecordRequest {
	m := &pb.RecordRequest{SessionId: r.SessionID, End: r.End, Events: make([]*pb.RecordEvent, len(r.Events))}
	if st := r.Start; st != nil {
		m.Start = &pb.RecordingStart{Width: int64(st.Width), Height: int64(st.Height), Term: st.Term, Command: st.Command}
	}
	for i, ev := range r.Events {
		m.Events[i] = &pb.RecordEvent{TimeUnixNanos: ev.Time.UnixNano(), Kind: uint32(ev.Kind), Data: ev.Data}
	}
	return m
}

func recordFromPB(m *pb.RecordRequest) protocol.RecordRequest {
	r := protocol.RecordRequest{SessionID: m.SessionId, End: m.End, Events: make([]protocol.RecordEvent, len(m.Events))}
	if st := m.Start; st != nil {
		r.Start = &protocol.RecordingStart{Width: int(st.Width), Height: int(st.Height), Term: st.Term, Command: st.Command}
	}
	for i, ev := range m.Events {
		r.Events[i] = protocol.RecordEvent{Time: time.Unix(0, ev.TimeUnixNanos), Kind: byte(ev.Kind), Data: ev.Data}
	}
	return r
}

// errorToPB keeps which of the contract's errors err is, and its text.
func errorToPB(err error) *pb.Error {
	e := &pb.Error{Message: err.Error()}
	switch {
	case errors.Is(err, protocol.ErrHoldUnavailable):
		e.Kind = pb.Error_KIND_HOLD_UNAVAILABLE
	case errors.Is(err, protocol.ErrApprovalRequired):
		e.Kind = pb.Error_KIND_APPROVAL_REQUIRED
	case errors.Is(err, protocol.ErrUnauthenticated):
		e.Kind = pb.Error_KIND_UNAUTHENTICATED
	case errors.Is(err, protocol.ErrNoAccess):
		e.Kind = pb.Error_KIND_NO_ACCESS
	case errors.Is(err, protocol.ErrUnavailable):
		e.Kind = pb.Error_KIND_UNAVAILABLE
	}
	return e
}

// hostError is an error gatewayd returned from a Host call: the same text,
// and errors.Is still finds the contract's error it wrapped.
type hostError struct {
	msg  string
	kind error
}

func (e *hostError) Error() string { return e.msg }
func (e *hostError) Unwrap() error { return e.kind }

func errorFromPB(e *pb.Error) error {
	var kind error
	switch e.Kind {
	case pb.Error_KIND_UNAUTHENTICATED:
		kind = protocol.ErrUnauthenticated
	case pb.Error_KIND_NO_ACCESS:
		kind = protocol.ErrNoAccess
	case pb.Error_KIND_UNAVAILABLE:
		kind = protocol.ErrUnavailable
	case pb.Error_KIND_HOLD_UNAVAILABLE:
		kind = protocol.ErrHoldUnavailable
	case pb.Error_KIND_APPROVAL_REQUIRED:
		kind = protocol.ErrApprovalRequired
	}
	return &hostError{msg: e.Message, kind: kind}
}

// unixNanos is t on the wire; the zero time is 0.
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func holdToPB(r protocol.HoldRequest) *pb.HoldRequest {
	return &pb.HoldRequest{SessionId: r.SessionID, Request: r.Request, Text: r.Text, Params: r.Params,
		ParamsShown: r.ParamsShown, Reviewers: r.Reviewers, Reason: r.Reason}
}

func holdFromPB(r *pb.HoldRequest) protocol.HoldRequest {
	return protocol.HoldRequest{SessionID: r.SessionId, Request: r.Request, Text: r.Text, Params: r.Params,
		ParamsShown: r.ParamsShown, Reviewers: r.Reviewers, Reason: r.Reason}
}

func holdRespToPB(r *protocol.HoldResponse) *pb.HoldResponse {
	return &pb.HoldResponse{ReviewId: r.ReviewID, Reviewers: r.Reviewers, UntilUnixNanos: unixNanos(r.Until), Released: r.Released}
}

func holdRespFromPB(r *pb.HoldResponse) *protocol.HoldResponse {
	return &protocol.HoldResponse{ReviewID: r.ReviewId, Reviewers: r.Reviewers, Until: fromUnixNanos(r.UntilUnixNanos), Released: r.Released}
}
