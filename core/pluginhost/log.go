package pluginhost

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// hcLogger adapts go-plugin's hclog logging to gatewayd's slog, for one
// plugin. go-plugin logs two things through it: the plugin's stderr, line by
// line, on a sub-logger named after the executable (JSON lines at their
// level with their attributes, other lines at info; a panic's lines at
// error), and its own chatter, which goes to debug.
type hcLogger struct {
	log    *slog.Logger // carries plugin= and kind=
	name   string
	stderr string // the name of the stderr sub-logger
	args   []any
}

func newHCLogger(log *slog.Logger, path string) *hcLogger {
	return &hcLogger{log: log, stderr: filepath.Base(path)}
}

func (l *hcLogger) Log(level hclog.Level, msg string, args ...any) {
	all := append(append([]any{}, l.args...), args...)
	lv := slog.LevelDebug
	if l.name == l.stderr {
		all = dropKey(all, "timestamp") // go-plugin's copy of the line's own
		lv = slogLevel(level)
		if level == hclog.Debug && len(args) == 0 {
			// A line that is not JSON: go-plugin files it under debug, but
			// it is all a plugin not written with the SDK can say.
			lv = slog.LevelInfo
		}
		all = append(all, "stream", "stderr")
	} else {
		all = append(all, "component", "go-plugin")
	}
	l.log.Log(context.Background(), lv, msg, all...)
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// dropKey removes the pair whose key is k from key/value args.
func dropKey(args []any, k string) []any {
	for i := 0; i+1 < len(args); i += 2 {
		if s, ok := args[i].(string); ok && s == k {
			return append(args[:i:i], args[i+2:]...)
		}
	}
	return args
}

func (l *hcLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *hcLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *hcLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *hcLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *hcLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

// Every level is on: slog's handler decides what is written.
func (l *hcLogger) IsTrace() bool                    { return true }
func (l *hcLogger) IsDebug() bool                    { return true }
func (l *hcLogger) IsInfo() bool                     { return true }
func (l *hcLogger) IsWarn() bool                     { return true }
func (l *hcLogger) IsError() bool                    { return true }
func (l *hcLogger) GetLevel() hclog.Level            { return hclog.Trace }
func (l *hcLogger) SetLevel(hclog.Level)             {}
func (l *hcLogger) ImpliedArgs() []any               { return l.args }
func (l *hcLogger) Name() string                     { return l.name }
func (l *hcLogger) ResetNamed(n string) hclog.Logger { c := *l; c.name = n; return &c }

func (l *hcLogger) Named(n string) hclog.Logger {
	c := *l
	if c.name != "" {
		n = c.name + "." + n
	}
	c.name = n
	return &c
}

func (l *hcLogger) With(args ...any) hclog.Logger {
	c := *l
	c.args = append(append([]any{}, l.args...), args...)
	return &c
}

func (l *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *hcLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return newLineLogger(l.log, "go-plugin")
}

var _ hclog.Logger = (*hcLogger)(nil)

// maxLine bounds a line kept while waiting for its end.
const maxLine = 64 << 10

// lineLogger logs what is written to it, a line at a time, at info. It takes
// a plugin's stdout and stderr as go-plugin forwards them once the plugin
// serves (the SDK's Serve sends slog to the real stderr instead, which
// hcLogger handles).
type lineLogger struct {
	log    *slog.Logger
	stream string

	mu  sync.Mutex
	buf []byte
}

func newLineLogger(log *slog.Logger, stream string) *lineLogger {
	return &lineLogger{log: log, stream: stream}
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLine {
				w.flush()
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineLogger) flush() {
	line := bytes.TrimRight(w.buf, "\r")
	if len(line) > 0 {
		w.log.Info(string(line), "stream", w.stream)
	}
	w.buf = w.buf[:0]
}
