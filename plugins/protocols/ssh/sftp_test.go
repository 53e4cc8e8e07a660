package ssh

import (
	"encoding/binary"
	"testing"
)

func sftpPacket(typ byte, fields ...any) []byte {
	body := []byte{typ}
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			body = binary.BigEndian.AppendUint32(body, v)
		case uint64:
			body = binary.BigEndian.AppendUint64(body, v)
		case string:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// The watch follows packets cut anywhere between reads.
func TestSFTPWatchAcrossChunks(t *testing.T) {
	var ops []sftpOp
	w := newSFTPWatch(func(op sftpOp) { ops = append(ops, op) })
	open := sftpPacket(fxpOpen, uint32(1), "/etc/app.conf", uint32(2), uint32(0))
	req := append(open, sftpPacket(fxpWrite, uint32(2), "h1", uint64(0), string(make([]byte, 20000)))...)
	req = append(req, sftpPacket(fxpClose, uint32(3), "h1")...)
	answered := false
	for i := 0; i < len(req); i += 7 { // 7-byte reads
		w.client(req[i:min(i+7, len(req))])
		if !answered && i+7 >= len(open) { // the server answers the open
			w.server(sftpPacket(fxpHandle, uint32(1), "h1"))
			answered = true
		}
	}
	if len(ops) != 1 || ops[0].Path != "/etc/app.conf" || ops[0].Written != 20000 || ops[0].Mode != "write" {
		t.Fatalf("ops %+v", ops)
	}
}

func FuzzSFTPWatch(f *testing.F) {
	f.Add(sftpPacket(fxpOpen, uint32(1), "/x", uint32(1), uint32(0)), sftpPacket(fxpHandle, uint32(1), "h"))
	f.Add(sftpPacket(fxpExtended, uint32(1), "posix-rename@openssh.com", "/a", "/b"), sftpPacket(fxpData, uint32(9), "zz"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, toServer, toClient []byte) {
		w := newSFTPWatch(func(sftpOp) {})
		w.client(toServer)
		w.server(toClient)
		w.close()
		if len(w.toSrv.head) > sftpMaxHead || len(w.fromSrv.head) > sftpMaxHead || len(w.files) > sftpMaxOpen {
			t.Fatalf("unbounded state: heads %d %d, files %d", len(w.toSrv.head), len(w.fromSrv.head), len(w.files))
		}
	})
}
