package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzRequestDataJSON checks the hand-written encoder against
// encoding/json byte for byte.
func FuzzRequestDataJSON(f *testing.F) {
	f.Add("query", "SELECT '<a>' & \"b\" \\ \n\t\x01\u2028 é", int64(1234), int64(-1), "ok", "SELECT 1", "", "", int64(1700000000123456789))
	f.Add("execute", "\xff\xfe invalid", int64(0), int64(5), "error", "", "22012", "division by zero", int64(0))
	f.Fuzz(func(t *testing.T, kind, text string, dur, rows int64, outcome, tag, code, msg string, nanos int64) {
		d := RequestData{Kind: kind, Text: text, Started: time.Unix(0, nanos).UTC(), Duration: dur, Rows: rows,
			Outcome: outcome, Tag: tag, ErrorCode: code, ErrorMessage: msg}
		if len(code)%2 == 1 {
			d.ReviewID = "0193" + code
		}
		want, err := json.Marshal(d)
		if err != nil {
			t.Skip("not representable in JSON") // years outside 0..9999
		}
		if got := d.appendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("appendJSON = %s\nencoding/json = %s", got, want)
		}
	})
}
