package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// jsonAppender is implemented by payloads on the data path (one event per
// statement) that encode themselves without reflection. The bytes must be
// exactly what encoding/json produces for the same value; a test checks it.
type jsonAppender interface {
	appendJSON(b []byte) []byte
}

func (d RequestData) appendJSON(b []byte) []byte {
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, d.Kind)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, d.Text)
	b = append(b, `,"started":"`...)
	b = d.Started.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","duration_ns":`...)
	b = strconv.AppendInt(b, d.Duration, 10)
	b = append(b, `,"rows":`...)
	b = strconv.AppendInt(b, d.Rows, 10)
	b = append(b, `,"outcome":`...)
	b = appendJSONString(b, d.Outcome)
	if d.Tag != "" {
		b = append(b, `,"tag":`...)
		b = appendJSONString(b, d.Tag)
	}
	if d.ErrorCode != "" {
		b = append(b, `,"error_code":`...)
		b = appendJSONString(b, d.ErrorCode)
	}
	if d.ErrorMessage != "" {
		b = append(b, `,"error_message":`...)
		b = appendJSONString(b, d.ErrorMessage)
	}
	if d.ReviewID != "" {
		b = append(b, `,"review_id":`...)
		b = appendJSONString(b, d.ReviewID)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json does:
// HTML-sensitive characters, control characters, U+2028 and U+2029
// escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
