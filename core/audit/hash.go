package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/gatewayd-access/gatewayd/core/store"
)

// hashDomain opens every hashed encoding. It names the encoding's version, so
// that a future encoding can never produce the same input bytes as this one.
const hashDomain = "gatewayd.audit.v1"

// Hash returns the hash of ev chained to prevHash: the lowercase hex SHA-256
// of the byte string
//
//	str("gatewayd.audit.v1")
//	str(prevHash)                 the previous event's Hash in hex, "" for seq 1
//	u64(seq)
//	u64(time)                     Unix nanoseconds (UTC), as two's complement
//	str(kind)
//	str(session_id)
//	str(identity)
//	str(connection)
//	str(data)                     the stored JSON bytes, exactly
//
// where u64(n) is n as 8 bytes big-endian and str(s) is u64(len(s))
// followed by the bytes of s (strings as their UTF-8 bytes). Every field is
// length-prefixed, so no two different events encode to the same bytes.
// ev.PrevHash and ev.Hash are not part of the input. docs/audit.md repeats
// this definition for auditors.
func Hash(prevHash string, ev store.Event) string {
	var out [sha256.Size * 2]byte
	return string(hashEvent(out[:0], nil, prevHash, &ev))
}

// hashEvent appends the hex hash of ev chained to prevHash to dst. buf is
// scratch space for the encoding; it is returned grown so that callers can
// reuse it and hash without allocating.
func hashEvent(dst []byte, buf *[]byte, prevHash string, ev *store.Event) []byte {
	var scratch []byte
	if buf != nil {
		scratch = (*buf)[:0]
	}
	scratch = appendEncoding(scratch, prevHash, ev)
	sum := sha256.Sum256(scratch)
	if buf != nil {
		*buf = scratch
	}
	return hex.AppendEncode(dst, sum[:])
}

// appendEncoding appends the hash input of ev (see Hash) to b.
func appendEncoding(b []byte, prevHash string, ev *store.Event) []byte {
	b = appendString(b, hashDomain)
	b = appendString(b, prevHash)
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(ev.Time.UnixNano()))
	b = appendString(b, ev.Kind)
	b = appendString(b, ev.SessionID)
	b = appendString(b, ev.Identity)
	b = appendString(b, ev.Connection)
	b = binary.BigEndian.AppendUint64(b, uint64(len(ev.Data)))
	return append(b, ev.Data...)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}
