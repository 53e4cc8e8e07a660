package postgres

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// stubHost answers the host calls a parser makes; it is for the parser's
// fuzz and unit tests only.
type stubHost struct{ events []protocol.Event }

func (h *stubHost) Authenticate(context.Context, protocol.AuthenticateRequest) (*protocol.AuthenticateResponse, error) {
	return nil, protocol.ErrUnauthenticated
}
func (h *stubHost) OpenSession(context.Context, protocol.OpenSessionRequest) (*protocol.OpenSessionResponse, error) {
	return nil, protocol.ErrNoAccess
}
func (h *stubHost) Admit(_ context.Context, req protocol.AdmitRequest) (*protocol.AdmitResponse, error) {
	// Statements mentioning "deny" are refused, so the fuzzer walks the
	// refusal path too.
	if strings.Contains(req.Text, "deny") {
		return &protocol.AdmitResponse{Verdict: abi.Verdict{Action: abi.Deny, Reason: "fuzz"}}, nil
	}
	return &protocol.AdmitResponse{Verdict: abi.Verdict{Action: abi.Allow}}, nil
}

func (h *stubHost) Mask(context.Context, protocol.MaskRequest) (*protocol.MaskResponse, error) {
	return &protocol.MaskResponse{}, nil
}
func (h *stubHost) RecordRequests(context.Context, []protocol.RequestRecord) error   { return nil }
func (h *stubHost) CloseSession(context.Context, protocol.CloseSessionRequest) error { return nil }
func (h *stubHost) RecordEvent(_ context.Context, ev protocol.Event) error {
	h.events = append(h.events, ev)
	return nil
}

var _ protocol.Host = (*stubHost)(nil)

// byteConn is a net.Conn reading from a fixed input and discarding writes.
type byteConn struct {
	r   io.Reader
	out bytes.Buffer
}

func (c *byteConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *byteConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *byteConn) Close() error                     { return nil }
func (c *byteConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *byteConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *byteConn) SetDeadline(time.Time) error      { return nil }
func (c *byteConn) SetReadDeadline(time.Time) error  { return nil }
func (c *byteConn) SetWriteDeadline(time.Time) error { return nil }

func quietHandler() *Handler {
	return New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxMessageBytes: 1 << 16})
}

func packet(code uint32, rest ...byte) []byte {
	body := binary.BigEndian.AppendUint32(nil, code)
	body = append(body, rest...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)
}

// FuzzStartup feeds arbitrary bytes to the startup phase: it must never
// panic, and must either refuse or produce a user name.
func FuzzStartup(f *testing.F) {
	f.Add(packet(codeSSLRequest))
	f.Add(packet(codeGSSENCRequest))
	f.Add(packet(codeCancelRequest, 0, 0, 0, 1, 1, 2, 3, 4))
	f.Add(packet(196608, []byte("user\x00alice\x00database\x00app-db\x00\x00")...))
	f.Add(packet(196610, []byte("user\x00alice\x00_pq_.x\x00y\x00\x00")...))
	f.Add(packet(196608, []byte("user\x00alice\x00replication\x00true\x00\x00")...))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		h := quietHandler()
		conn := &byteConn{r: bytes.NewReader(data)}
		s := &clientSession{h: h, host: &stubHost{}, raw: conn, conn: conn, log: h.log}
		st, err := s.negotiate(context.Background())
		if err == nil && st.user == "" {
			t.Fatalf("startup accepted without a user")
		}
		if err == nil {
			for k := range st.params {
				if k == "user" || k == "database" || k == "options" || k == "replication" {
					t.Fatalf("parameter %q passed upstream", k)
				}
			}
		}
	})
}

// FuzzClientMessages feeds an arbitrary client message stream to the
// framing and statement tracking of the relay.
func FuzzClientMessages(f *testing.F) {
	msg := func(typ byte, body string) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(len(body)+4))
		return append(b, body...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(msg('Q', "SELECT 1\x00"))
	f.Add(cat(msg('P', "s1\x00SELECT $1\x00\x00\x00"), msg('B', "p1\x00s1\x00\x00\x00\x00\x00\x00\x00"), msg('E', "p1\x00\x00\x00\x00\x00"), msg('S', "")))
	f.Add(cat(msg('C', "Ss1\x00"), msg('C', "Pp1\x00"), msg('F', "\x00\x00\x00\x01")))
	f.Add([]byte{'Q', 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{'Q', 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		h := quietHandler()
		conn := &byteConn{r: bytes.NewReader(data)}
		s := &clientSession{h: h, host: &stubHost{}, raw: conn, conn: conn, log: h.log}
		s.uw = bufio.NewWriter(io.Discard)
		s.tracker = newTracker(s)
		r := bufio.NewReaderSize(bytes.NewReader(data), ioBufferSize)
		var body []byte
		for i := 0; i < 1000; i++ {
			hd, err := readHeader(r, h.opts.MaxMessageBytes)
			if err != nil {
				return
			}
			if hd.size > h.opts.MaxMessageBytes {
				t.Fatalf("header accepted %d bytes past the bound", hd.size)
			}
			if body, err = readBody(r, hd, body); err != nil {
				return
			}
			if _, err := s.tracker.client(context.Background(), hd.typ, body); err != nil {
				return
			}
			// Drain so the pending queue never fills.
			for s.tracker.head() != nil {
				s.tracker.pop()
			}
		}
	})
}

func TestTagRows(t *testing.T) {
	for tag, want := range map[string]int64{"SELECT 5": 5, "INSERT 0 3": 3, "UPDATE 0": 0, "COPY 10": 10, "CREATE TABLE": -1, "BEGIN": -1} {
		n, ok := tagRows(tag)
		if !ok {
			n = -1
		}
		if n != want {
			t.Errorf("tagRows(%q) = %d, want %d", tag, n, want)
		}
	}
}

func TestReadHeaderBounds(t *testing.T) {
	for _, c := range []struct {
		in      []byte
		wantErr bool
	}{
		{[]byte{'Q', 0, 0, 0, 4}, false},
		{[]byte{'Q', 0, 0, 0, 3}, true},
		{[]byte{'Q', 0xff, 0xff, 0xff, 0xff}, true},
		{[]byte{'Q', 0, 1, 0, 5}, true}, // one byte over a 64 KiB bound
	} {
		_, err := readHeader(bufio.NewReader(bytes.NewReader(c.in)), 1<<16)
		if (err != nil) != c.wantErr {
			t.Errorf("readHeader(%v) err = %v, want error %v", c.in, err, c.wantErr)
		}
	}
}

// maskAllHost masks every value of every batch to "*" and checks that a
// batch is consistent as the handler built it.
type maskAllHost struct {
	stubHost
	t       *testing.T
	changes []abi.Change
}

func (h *maskAllHost) Mask(_ context.Context, req protocol.MaskRequest) (*protocol.MaskResponse, error) {
	b := req.Batch
	h.changes = h.changes[:0]
	for r := 0; r < b.Rows(); r++ {
		for c := range b.Columns {
			b.Value(r, c) // must not panic: every row is complete
			h.changes = append(h.changes, abi.Change{Row: r, Col: c, Value: []byte("*")})
		}
	}
	return &protocol.MaskResponse{Changes: h.changes}, nil
}

// FuzzServerMessages feeds an arbitrary server message stream, after a
// client pipeline, to the masking relay (fromUpstream with every masked
// frame kind on): it must never panic, and every message it writes to the
// client must be well framed.
func FuzzServerMessages(f *testing.F) {
	msg := func(typ byte, body string) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(len(body)+4))
		return append(b, body...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	rowDesc := "\x00\x02email\x00\x00\x00\x40\x01\x00\x01\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x00" +
		"n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x01"
	f.Add(cat(msg('T', rowDesc), msg('D', "\x00\x02\x00\x00\x00\x05a@b.c\x00\x00\x00\x04\x00\x00\x00\x01"), msg('C', "SELECT 1\x00"), msg('Z', "I")))
	f.Add(cat(msg('H', "\x00\x00\x01\x00\x00"), msg('d', "a\tb\n"), msg('c', ""), msg('C', "COPY 1\x00"), msg('Z', "I")))
	f.Add(cat(msg('E', "SERROR\x00C22P02\x00Mbad a@b.c\x00Dkey (x)=(y)\x00\x00"), msg('Z', "I")))
	f.Add(cat(msg('N', "SNOTICE\x00Mhello\x00\x00"), msg('A', "\x00\x00\x00\x01chan\x00payload\x00")))
	f.Add(cat(msg('1', ""), msg('2', ""), msg('t', "\x00\x00"), msg('T', rowDesc), msg('D', "\x00\x02\xff\xff\xff\xff\x00\x00\x00\x00"), msg('s', ""), msg('Z', "T")))
	f.Add(cat(msg('D', "\x00\x01\x00\x00\x00\x01x"), msg('Z', "I")))
	f.Add(cat(msg('T', rowDesc), msg('D', "\x00\x03\x00\x00\x00\x01x"), msg('Z', "I")))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := quietHandler()
		host := &maskAllHost{t: t}
		out := &byteConn{r: bytes.NewReader(nil)}
		s := &clientSession{h: h, host: host, raw: out, conn: out, log: h.log,
			masking: abi.Subscribe(abi.Rows, abi.Copy, abi.Message, abi.Notification)}
		s.uw = bufio.NewWriter(io.Discard)
		s.cw = bufio.NewWriterSize(out, ioBufferSize)
		s.ur = bufio.NewReaderSize(bytes.NewReader(data), ioBufferSize)
		s.tracker = newTracker(s)
		// A client pipeline for the server stream to answer: a simple
		// query, a described and executed portal, a Sync.
		ctx := context.Background()
		for _, m := range []struct {
			typ  byte
			body string
		}{
			{'Q', "SELECT 1\x00"},
			{'P', "s\x00SELECT $1\x00\x00\x00"},
			{'B', "\x00s\x00\x00\x00\x00\x00\x00\x00"},
			{'D', "P\x00"},
			{'E', "\x00\x00\x00\x00\x00"},
			{'S', ""},
		} {
			if _, err := s.tracker.client(ctx, m.typ, []byte(m.body)); err != nil {
				t.Fatal(err)
			}
		}
		_ = s.fromUpstream(ctx)
		_ = s.cw.Flush()
		// What reached the client is a sequence of whole messages; only
		// the last may be cut short, when the server's stream ended
		// inside a message the relay was streaming through.
		w := out.out.Bytes()
		for len(w) > 0 {
			if len(w) < 5 {
				t.Fatalf("truncated message header: %q", w)
			}
			n := int(binary.BigEndian.Uint32(w[1:5]))
			if n < 4 {
				t.Fatalf("message %q of length %d", w[0], n)
			}
			if n-4 > len(w)-5 {
				if len(data) > 0 && bytes.HasSuffix(data, w[5:]) {
					break
				}
				t.Fatalf("message %q of length %d with %d bytes left", w[0], n, len(w)-5)
			}
			w = w[1+n:]
		}
	})
}
