package config

import (
	"testing"
	"time"
)

func TestByteSizeUnmarshalText(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr bool
	}{
		{"0", 0, false},
		{"1048576", MiB, false},
		{"100B", 100, false},
		{"512KiB", 512 * KiB, false},
		{"16MiB", 16 * MiB, false},
		{"16 MiB", 16 * MiB, false},
		{"1GiB", GiB, false},
		{"8589934591GiB", 8589934591 * GiB, false},
		{"8589934592GiB", 0, true}, // 2^63 overflows int64
		{"99999999999999999999", 0, true},
		{"-1", 0, true},
		{"-1KiB", 0, true},
		{"1.5MiB", 0, true},
		{"100MB", 0, true},
		{"16mib", 0, true},
		{"MiB", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var s ByteSize
			err := s.UnmarshalText([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && s != tt.want {
				t.Errorf("got %d, want %d", s, tt.want)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1000, "1000B"},
		{1536 * KiB, "1536KiB"},
		{16 * MiB, "16MiB"},
		{2 * GiB, "2GiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%d.String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		var back ByteSize
		if err := back.UnmarshalText([]byte(tt.in.String())); err != nil || back != tt.in {
			t.Errorf("round trip of %d: %d, %v", int64(tt.in), back, err)
		}
	}
}

func TestDurationUnmarshalText(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"15s", 15 * time.Second, false},
		{"1m30s", 90 * time.Second, false},
		{"50ms", 50 * time.Millisecond, false},
		{"0s", 0, false},
		{"10", 0, true},
		{"-1s", 0, true},
		{"soon", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && d.Duration != tt.want {
				t.Errorf("got %v, want %v", d.Duration, tt.want)
			}
		})
	}
}
