package ssh

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestForwardLists(t *testing.T) {
	allow := []string{"10.0.0.0/8:5432", "db.internal:*", "127.0.0.1:8080"}
	for _, tc := range []struct {
		host   string
		port   uint32
		local  bool // direct-tcpip
		remote bool // tcpip-forward
	}{
		{"10.1.2.3", 5432, true, true},
		{"10.1.2.3", 5433, false, false},
		{"db.internal", 1, true, true},
		{"db.internal", 0, true, true},
		{"DB.internal", 1, false, false},
		{"127.0.0.1", 8080, true, true},
		{"127.0.0.1", 0, false, false}, // port 0 passes only "*"
		{"localhost", 8080, false, false},
		{"", 8080, false, false},
	} {
		if got := forwardAllowed(allow, tc.host, tc.port); got != tc.local {
			t.Errorf("forwardAllowed(%q, %d) = %v", tc.host, tc.port, got)
		}
		if got := remoteForwardAllowed(allow, tc.host, tc.port); got != tc.remote {
			t.Errorf("remoteForwardAllowed(%q, %d) = %v", tc.host, tc.port, got)
		}
	}
	// Link-local destinations are refused for local forwarding whatever
	// the list says.
	for _, h := range []string{"169.254.169.254", "fe80::1", "0.0.0.0"} {
		if forwardAllowed([]string{"0.0.0.0/0:*", "::/0:*", h + ":*"}, h, 80) {
			t.Errorf("forward to %s allowed", h)
		}
	}
}

func hostPortPayload(host string, port uint32, rest []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(host)))
	b = append(b, host...)
	b = binary.BigEndian.AppendUint32(b, port)
	return append(b, rest...)
}

func FuzzParseHostPort(f *testing.F) {
	f.Add(hostPortPayload("127.0.0.1", 8080, nil))
	f.Add(hostPortPayload("localhost", 0, hostPortPayload("10.0.0.1", 5555, nil)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0, 0, 0, 1, 'a', 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		host, port, rest, ok := parseHostPort(b)
		if !ok {
			return
		}
		if again := hostPortPayload(host, port, rest); !bytes.Equal(again, b) {
			t.Fatalf("parse of %x does not re-encode: %q %d %x", b, host, port, rest)
		}
	})
}
