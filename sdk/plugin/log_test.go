package plugin

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// TestLogHandlerSpeaksHCLog: the lines parse as go-plugin's host parses a
// plugin's stderr (its logEntry: "@message", "@level", "@timestamp" in
// hclog's layout, other keys as attributes).
func TestLogHandlerSpeaksHCLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(&buf, slog.LevelDebug))
	tests := []struct {
		log   func(string, ...any)
		level string
	}{
		{log.Debug, "debug"},
		{log.Info, "info"},
		{log.Warn, "warn"},
		{log.Error, "error"},
	}
	for _, tt := range tests {
		buf.Reset()
		tt.log("decrypting", "file", "app.yaml", slog.Group("g", "k", 1))
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%s: %v", buf.String(), err)
		}
		if line["@message"] != "decrypting" || line["@level"] != tt.level || line["file"] != "app.yaml" {
			t.Errorf("line %s", buf.String())
		}
		ts, _ := line["@timestamp"].(string)
		if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", ts); err != nil {
			t.Errorf("@timestamp %q: %v", ts, err)
		}
		if g, _ := line["g"].(map[string]any); g["k"] != 1.0 {
			t.Errorf("group: %s", buf.String())
		}
	}
}
