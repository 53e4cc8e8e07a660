package plugin

import (
	"io"
	"log/slog"
	"time"
)

// hclogTime is the timestamp layout go-plugin's host parses in a plugin's
// JSON log lines.
const hclogTime = "2006-01-02T15:04:05.000000Z07:00"

// NewLogHandler returns a slog.Handler for a plugin process that writes JSON
// lines in the shape go-plugin's host reads from a plugin's stderr (hclog's
// "@message", "@level" and "@timestamp" keys). gatewayd logs each line at its
// level, with its attributes and the plugin's name. The Serve functions of
// each plugin kind install one on the plugin's real stderr as slog's
// default, so a plugin author just uses slog.
//
// Never log a secret. secret.Value prints as "[redacted]", which helps.
func NewLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.MessageKey:
				a.Key = "@message"
			case slog.LevelKey:
				a.Key = "@level"
				lv, _ := a.Value.Any().(slog.Level)
				a.Value = slog.StringValue(levelName(lv))
			case slog.TimeKey:
				a.Key = "@timestamp"
				if t, ok := a.Value.Any().(time.Time); ok {
					a.Value = slog.StringValue(t.Format(hclogTime))
				}
			}
			return a
		},
	})
}

// levelName maps a slog level to the nearest hclog level name at or below it.
func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	case l >= slog.LevelDebug:
		return "debug"
	}
	return "trace"
}
