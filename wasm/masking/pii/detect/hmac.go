package detect

import (
	"encoding/binary"
	"math/bits"
)

// A small HMAC-SHA256 (RFC 2104 over FIPS 180-4) for the Hash style.
// crypto/hmac and crypto/sha256 would do, but they bring the FIPS 140
// module along, which adds about 570 KB to the WebAssembly build; this
// file adds a few. The tests check it against crypto/hmac.

// keyedMAC is an HMAC-SHA256 key: the SHA-256 states after the inner and
// outer padded key blocks. A copy of a state hashes one message, so a
// keyedMAC is read-only and needs no allocation.
type keyedMAC struct {
	inner, outer sha256State
}

func newKeyedMAC(key []byte) *keyedMAC {
	var block [64]byte
	if len(key) > len(block) {
		d := newSHA256()
		d.write(key)
		sum := d.sum()
		copy(block[:], sum[:])
	} else {
		copy(block[:], key)
	}
	k := &keyedMAC{inner: newSHA256(), outer: newSHA256()}
	for i := range block {
		block[i] ^= 0x36
	}
	k.inner.write(block[:])
	for i := range block {
		block[i] ^= 0x36 ^ 0x5c
	}
	k.outer.write(block[:])
	return k
}

// sum returns the HMAC-SHA256 of msg.
func (k *keyedMAC) sum(msg []byte) [32]byte {
	in := k.inner
	in.write(msg)
	inner := in.sum()
	out := k.outer
	out.write(inner[:])
	return out.sum()
}

type sha256State struct {
	h    [8]uint32
	buf  [64]byte
	nbuf int
	len  uint64
}

func newSHA256() sha256State {
	return sha256State{h: [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}}
}

func (d *sha256State) write(p []byte) {
	d.len += uint64(len(p))
	if d.nbuf > 0 {
		n := copy(d.buf[d.nbuf:], p)
		d.nbuf += n
		p = p[n:]
		if d.nbuf < len(d.buf) {
			return
		}
		d.block(d.buf[:])
		d.nbuf = 0
	}
	for len(p) >= 64 {
		d.block(p[:64])
		p = p[64:]
	}
	d.nbuf = copy(d.buf[:], p)
}

func (d *sha256State) sum() (out [32]byte) {
	var pad [72]byte
	pad[0] = 0x80
	n := 56 - int(d.len%64)
	if n <= 0 {
		n += 64
	}
	binary.BigEndian.PutUint64(pad[n:], d.len*8)
	d.write(pad[:n+8])
	for i, v := range d.h {
		binary.BigEndian.PutUint32(out[4*i:], v)
	}
	return out
}

var sha256K = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// block hashes one 64-byte block into d.h.
func (d *sha256State) block(p []byte) {
	var w [64]uint32
	for i := range 16 {
		w[i] = binary.BigEndian.Uint32(p[4*i:])
	}
	for i := 16; i < 64; i++ {
		v1, v2 := w[i-2], w[i-15]
		s1 := bits.RotateLeft32(v1, -17) ^ bits.RotateLeft32(v1, -19) ^ v1>>10
		s0 := bits.RotateLeft32(v2, -7) ^ bits.RotateLeft32(v2, -18) ^ v2>>3
		w[i] = s1 + w[i-7] + s0 + w[i-16]
	}
	a, b, c, dd, e, f, g, h := d.h[0], d.h[1], d.h[2], d.h[3], d.h[4], d.h[5], d.h[6], d.h[7]
	for i := range 64 {
		t1 := h + (bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)) +
			(e&f ^ ^e&g) + sha256K[i] + w[i]
		t2 := (bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)) +
			(a&b ^ a&c ^ b&c)
		h, g, f, e, dd, c, b, a = g, f, e, dd+t1, c, b, a, t1+t2
	}
	d.h[0] += a
	d.h[1] += b
	d.h[2] += c
	d.h[3] += dd
	d.h[4] += e
	d.h[5] += f
	d.h[6] += g
	d.h[7] += h
}
