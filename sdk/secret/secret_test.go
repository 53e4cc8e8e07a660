package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValueNeverPrintsItself(t *testing.T) {
	const pw = "hunter2-very-secret"
	v := NewValue([]byte(pw))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("resolved", "value", v, "response", ResolveResponse{Value: v})
	slog.New(slog.NewTextHandler(&logs, nil)).Info("resolved", "value", v)
	js, err := json.Marshal(map[string]any{"v": v, "r": ResolveResponse{Value: v}})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":     fmt.Sprintf("%v", v),
		"%+v":    fmt.Sprintf("%+v", v),
		"%#v":    fmt.Sprintf("%#v", v),
		"%s":     fmt.Sprintf("%s", v),
		"%q":     fmt.Sprintf("%q", v),
		"%x":     fmt.Sprintf("%x", v),
		"%d":     fmt.Sprintf("%d", v),
		"struct": fmt.Sprintf("%+v", ResolveResponse{Value: v}),
		"error":  fmt.Errorf("wrapping %v: %w", v, errors.New("x")).Error(),
		"slog":   logs.String(),
		"json":   string(js),
	}
	for name, out := range outputs {
		if strings.Contains(out, pw) || strings.Contains(out, fmt.Sprintf("%x", pw)) {
			t.Errorf("%s prints the secret: %s", name, out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s does not print the placeholder: %s", name, out)
		}
	}
	if v.Reveal() != pw {
		t.Fatalf("Reveal = %q", v.Reveal())
	}
}

func TestNewValueCopies(t *testing.T) {
	b := []byte("abc")
	v := NewValue(b)
	b[0] = 'x'
	if v.Reveal() != "abc" || v.IsZero() || !NewValue(nil).IsZero() {
		t.Fatal("NewValue must copy its input")
	}
}
