package gateway

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gatewayd-access/gatewayd/core/recording"
	"github.com/gatewayd-access/gatewayd/sdk/protocol"
)

// maxRecordingBytes bounds one session's recording; past it the session is
// ended (a recording cut short would be no recording).
const maxRecordingBytes = 1 << 30

// recordingsDir is where session recordings are kept.
func (h *host) recordingsDir() string { return filepath.Join(h.cfg.Gateway.DataDir, "recordings") }

// Record appends terminal events to a session's recording, an asciicast v2
// file in data_dir/recordings named after the session.
func (h *host) Record(_ context.Context, req protocol.RecordRequest) error {
	ls := h.session(req.SessionID)
	if ls == nil {
		return fmt.Errorf("gateway: recording for unknown session %q", req.SessionID)
	}
	ls.recMu.Lock()
	defer ls.recMu.Unlock()
	if st := req.Start; st != nil {
		if ls.rec == nil {
			hdr := recording.Header{Width: st.Width, Height: st.Height, Command: st.Command,
				Title: ls.identity.Name + " on " + ls.connection}
			if st.Term != "" {
				hdr.Env = map[string]string{"TERM": st.Term}
			}
			w, err := recording.Create(h.recordingsDir(), ls.id, hdr, maxRecordingBytes)
			if err != nil {
				return err
			}
			ls.rec = w
		} else {
			// Another channel of the session: marked in the same recording.
			label := "shell"
			if st.Command != "" {
				label = "exec: " + st.Command
			}
			if err := ls.rec.Mark(label); err != nil {
				return err
			}
		}
	}
	if ls.rec == nil {
		if len(req.Events) > 0 {
			return errors.New("gateway: recording events before the recording started")
		}
		return nil
	}
	for _, ev := range req.Events {
		code := string(ev.Kind)
		if !strings.Contains("oirm", code) || len(code) != 1 {
			return fmt.Errorf("gateway: unknown recording event kind %q", ev.Kind)
		}
		if err := ls.rec.Write(ev.Time, code, ev.Data); err != nil {
			return err
		}
	}
	if req.End {
		return ls.rec.Flush()
	}
	return nil
}

// endRecording closes a session's recording when the session closes.
func (h *host) endRecording(ls *liveSession) {
	ls.recMu.Lock()
	defer ls.recMu.Unlock()
	if ls.rec == nil {
		return
	}
	if err := ls.rec.Close(); err != nil {
		h.log.Error("closing recording", "session", ls.id, "error", err)
	}
	ls.rec = nil
}

var _ protocol.Recorder = (*host)(nil)
