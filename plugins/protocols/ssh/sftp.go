package ssh

import (
	"encoding/binary"
	"strconv"
	"sync"
)

// SFTP packet types (draft-ietf-secsh-filexfer-02, version 3, as OpenSSH).
const (
	fxpOpen     = 3
	fxpClose    = 4
	fxpRead     = 5
	fxpWrite    = 6
	fxpSetstat  = 9
	fxpOpendir  = 11
	fxpRemove   = 13
	fxpMkdir    = 14
	fxpRmdir    = 15
	fxpRename   = 18
	fxpSymlink  = 20
	fxpExtended = 200
	fxpHandle   = 102
	fxpData     = 103
	sftpMaxHead = 8 << 10 // what is kept of a packet to read its fields
	sftpMaxOpen = 1024    // handles followed at once
)

// sftpOp is one file operation seen in an sftp session.
type sftpOp struct {
	Op     string // "open", "remove", "rename", "mkdir", "rmdir", "setstat", "symlink", "opendir"
	Path   string
	Target string // rename's new path, symlink's target
	// For a file, when it is closed: bytes read and written through it.
	Read, Written int64
	Mode          string // "read", "write", "read-write"
}

// Detail is the op as an audit event's detail.
func (o sftpOp) Detail() map[string]string {
	d := map[string]string{"op": o.Op, "path": o.Path}
	if o.Target != "" {
		d["target"] = o.Target
	}
	if o.Op == "file" {
		d["mode"] = o.Mode
		d["bytes_read"] = strconv.FormatInt(o.Read, 10)
		d["bytes_written"] = strconv.FormatInt(o.Written, 10)
	}
	return d
}

// sftpWatch follows an sftp session's packets in both directions, without
// changing them, and reports file operations: paths and sizes. Memory is
// bounded: only the head of each packet is kept.
type sftpWatch struct {
	mu      sync.Mutex
	report  func(sftpOp)
	opens   map[uint32]sftpOp  // request id -> the open asked for
	reads   map[uint32]string  // READ request id -> handle
	files   map[string]*sftpOp // handle -> open file
	toSrv   sftpStream
	fromSrv sftpStream
}

func newSFTPWatch(report func(sftpOp)) *sftpWatch {
	return &sftpWatch{report: report, opens: map[uint32]sftpOp{}, reads: map[uint32]string{}, files: map[string]*sftpOp{}}
}

// sftpStream splits one direction into packets.
type sftpStream struct {
	head []byte // the packet being read, up to sftpMaxHead bytes
	need int    // bytes of the current packet still to come (after the head)
	size int    // the current packet's length
}

// feed passes bytes of one direction; onPacket gets each packet's head
// (type byte first) and its full length.
func (s *sftpStream) feed(p []byte, onPacket func(head []byte, size int)) {
	for len(p) > 0 {
		if s.size == 0 { // reading the 4-byte length
			for len(s.head) < 4 && len(p) > 0 {
				s.head = append(s.head, p[0])
				p = p[1:]
			}
			if len(s.head) < 4 {
				return
			}
			s.size = int(binary.BigEndian.Uint32(s.head))
			s.head = s.head[:0]
			s.need = s.size
			if s.size == 0 {
				continue
			}
		}
		take := min(len(p), s.need)
		if room := sftpMaxHead - len(s.head); room > 0 {
			s.head = append(s.head, p[:min(take, room)]...)
		}
		s.need -= take
		p = p[take:]
		if s.need == 0 {
			onPacket(s.head, s.size)
			s.head, s.size = s.head[:0], 0
		}
	}
}

// client observes bytes from the client.
func (w *sftpWatch) client(p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.toSrv.feed(p, w.request)
}

// server observes bytes from the server.
func (w *sftpWatch) server(p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fromSrv.feed(p, w.response)
}

func (w *sftpWatch) request(h []byte, size int) {
	r := sftpReader{b: h}
	typ := r.byte()
	id := r.u32()
	switch typ {
	case fxpOpen:
		path := r.str()
		flags := r.u32()
		mode := "read"
		switch {
		case flags&1 != 0 && flags&2 != 0:
			mode = "read-write"
		case flags&2 != 0:
			mode = "write"
		}
		if r.ok && len(w.opens) < sftpMaxOpen {
			w.opens[id] = sftpOp{Op: "file", Path: path, Mode: mode}
		}
	case fxpRead:
		handle := r.str()
		if r.ok && len(w.reads) < sftpMaxOpen {
			w.reads[id] = handle
		}
	case fxpWrite:
		handle := r.str()
		r.u64() // offset
		n := r.u32()
		if f := w.files[handle]; r.ok && f != nil {
			f.Written += int64(n)
		}
	case fxpClose:
		handle := r.str()
		if f := w.files[handle]; r.ok && f != nil {
			w.report(*f)
			delete(w.files, handle)
		}
	case fxpRemove, fxpMkdir, fxpRmdir, fxpSetstat, fxpOpendir:
		path := r.str()
		if r.ok {
			w.report(sftpOp{Op: map[byte]string{fxpRemove: "remove", fxpMkdir: "mkdir", fxpRmdir: "rmdir",
				fxpSetstat: "setstat", fxpOpendir: "opendir"}[typ], Path: path})
		}
	case fxpExtended:
		// OpenSSH's clients rename and link through extensions.
		name := r.str()
		switch name {
		case "posix-rename@openssh.com", "hardlink@openssh.com":
			a, b := r.str(), r.str()
			if r.ok {
				op := "rename"
				if name == "hardlink@openssh.com" {
					op = "hardlink"
				}
				w.report(sftpOp{Op: op, Path: a, Target: b})
			}
		}
	case fxpRename, fxpSymlink:
		a, b := r.str(), r.str()
		if r.ok {
			op := "rename"
			if typ == fxpSymlink {
				op = "symlink"
			}
			w.report(sftpOp{Op: op, Path: a, Target: b})
		}
	}
	_ = size
}

func (w *sftpWatch) response(h []byte, size int) {
	r := sftpReader{b: h}
	typ := r.byte()
	id := r.u32()
	switch typ {
	case fxpHandle:
		handle := r.str()
		if op, ok := w.opens[id]; ok && r.ok {
			delete(w.opens, id)
			if len(w.files) < sftpMaxOpen {
				w.files[handle] = &op
			}
		}
	case fxpData:
		n := r.u32()
		if handle, ok := w.reads[id]; ok {
			delete(w.reads, id)
			if f := w.files[handle]; r.ok && f != nil {
				f.Read += int64(n)
			}
		}
	default:
		// A STATUS answers an open or read that failed.
		delete(w.opens, id)
		delete(w.reads, id)
	}
	_ = size
}

// close reports the files still open when the session ends.
func (w *sftpWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for h, f := range w.files {
		w.report(*f)
		delete(w.files, h)
	}
}

// sftpReader reads the fields of a packet head; a field past the end
// clears ok.
type sftpReader struct {
	b  []byte
	ok bool
}

func (r *sftpReader) byte() byte {
	if len(r.b) < 1 {
		return 0
	}
	r.ok = true
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *sftpReader) u32() uint32 {
	if len(r.b) < 4 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *sftpReader) u64() uint64 {
	if len(r.b) < 8 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *sftpReader) str() string {
	n := r.u32()
	if !r.ok || uint64(n) > uint64(len(r.b)) {
		r.ok = false
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
