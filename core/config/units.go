package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// UnmarshalText parses a Go duration such as "15s" or "1m30s". Negative
// durations are refused.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a number and a unit, such as \"10s\" or \"1m30s\"", s)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as UnmarshalText reads it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Byte size units. Only binary units are accepted: "MB" is ambiguous.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

var byteUnits = []struct {
	suffix string
	size   ByteSize
}{
	{"GiB", GiB},
	{"MiB", MiB},
	{"KiB", KiB},
	{"B", 1},
}

// UnmarshalText parses a size: a plain number of bytes ("1048576") or a
// whole number with a binary unit ("512KiB", "16MiB", "1GiB", "100B").
// Negative sizes, fractions and decimal units ("MB") are refused.
func (s *ByteSize) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	num, unit := text, ByteSize(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(text, u.suffix) {
			num, unit = strings.TrimSpace(strings.TrimSuffix(text, u.suffix)), u.size
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange):
		return fmt.Errorf("invalid size %q: too large", text)
	case err != nil:
		return fmt.Errorf("invalid size %q: want a whole number of bytes or of KiB, MiB or GiB, such as \"16MiB\"", text)
	case n < 0:
		return fmt.Errorf("invalid size %q: must not be negative", text)
	case n > math.MaxInt64/int64(unit):
		return fmt.Errorf("invalid size %q: too large", text)
	}
	*s = ByteSize(n) * unit
	return nil
}

// String writes the size with the largest binary unit that divides it
// exactly: "16MiB", "1536KiB", "1000B".
func (s ByteSize) String() string {
	for _, u := range byteUnits {
		if s != 0 && s%u.size == 0 {
			return strconv.FormatInt(int64(s/u.size), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// MarshalText writes the size as String does.
func (s ByteSize) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

var (
	_ encoding.TextUnmarshaler = (*Duration)(nil)
	_ encoding.TextMarshaler   = Duration{}
	_ encoding.TextUnmarshaler = (*ByteSize)(nil)
	_ encoding.TextMarshaler   = ByteSize(0)
)
