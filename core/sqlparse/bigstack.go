package sqlparse

/*
#include <stddef.h>

int gw_start_big_stack(size_t stack_bytes);
void gw_release_big_stack(size_t keep);
*/
import "C"

import (
	"errors"
	"sync"

	"github.com/pganalyze/pg_query_go/v6/parser"
)

// cgoMu serialises every call into libpg_query. Each call redirects the
// process-wide file descriptor 2 (stderr) to a pipe and back; two calls
// interleaving on different threads can leave fd 2 pointing at a pipe whose
// reader is closed, and the next write to stderr then kills the process
// with SIGPIPE. The C parser itself is thread-safe. See also callC.
var cgoMu sync.Mutex

// parseProtobuf parses SQL text into pg_query's protobuf encoding.
func parseProtobuf(text string) (buf []byte, err error) {
	cgoMu.Lock()
	defer cgoMu.Unlock()
	if cerr := callC(len(text), func() { buf, err = parser.ParseToProtobuf(text) }); cerr != nil {
		return nil, cerr
	}
	return buf, err
}

// parsePlpgsqlJSON compiles the PL/pgSQL of the DO or CREATE FUNCTION
// statements in text and returns them as JSON.
func parsePlpgsqlJSON(text string) (out string, err error) {
	cgoMu.Lock()
	defer cgoMu.Unlock()
	if cerr := callC(len(text), func() { out, err = parser.ParsePlPgSqlToJSON(text) }); cerr != nil {
		return "", cerr
	}
	return out, err
}

// scanProtobuf splits text into PostgreSQL's tokens.
func scanProtobuf(text string) (buf []byte, err error) {
	cgoMu.Lock()
	defer cgoMu.Unlock()
	if cerr := callC(len(text), func() { buf, err = parser.ScanToProtobuf(text) }); cerr != nil {
		return nil, cerr
	}
	return buf, err
}

// libpg_query turns the tree into protobuf with recursion that has no depth
// check: a left-deep expression such as 1+1+1+... (about 300 bytes of C stack
// per operator, two bytes of text) overflows an 8 MiB thread stack at some
// 25,000 operators and kills the process with SIGSEGV. The grammar itself
// bounds nesting by brackets at 10,000 levels, so left-deep chains are the
// only unbounded case, and they are bounded by the text length.
//
// checkDepth (depth.go) refuses such text before it reaches libpg_query;
// the thread here is for whatever its estimate misses. Text up to
// directCallBytes runs on the calling thread: at most 4,096 levels, about
// 1.2 MiB of stack, which every thread has. Longer text runs on one thread
// with a stack of bigStackBytes (less if that cannot be had), enough for
// MaxTextBytes of the densest chain (some 160 MiB) with room to spare. The
// stack is reserved, not committed, and its pages are handed back after
// each call.
const (
	directCallBytes = 8 << 10
	bigStackBytes   = 512 << 20
	minStackBytes   = 32 << 20
	bigStackKeep    = 1 << 20 // the top of the big stack, kept across calls
)

var (
	bigStackOnce sync.Once
	bigStackErr  error
	bigStackRun  chan func()
)

var errBigStack = errors.New("cannot start the parser thread")

//export gatewaydSqlparseBigStack
func gatewaydSqlparseBigStack() {
	// This runs on the C thread of gw_start_big_stack, which the Go runtime
	// adopted for the call: cgo calls made here run on its stack.
	for fn := range bigStackRun {
		fn()
		C.gw_release_big_stack(C.size_t(bigStackKeep))
	}
}

// callC runs fn, a call into libpg_query on text of the given length, on a
// thread with enough stack for it. Callers hold cgoMu.
func callC(textLen int, fn func()) error {
	if textLen <= directCallBytes {
		fn()
		return nil
	}
	bigStackOnce.Do(func() {
		bigStackRun = make(chan func())
		bigStackErr = errBigStack
		for size := bigStackBytes; size >= minStackBytes; size /= 2 {
			if C.gw_start_big_stack(C.size_t(size)) == 0 {
				bigStackErr = nil
				break
			}
		}
	})
	if bigStackErr != nil {
		return bigStackErr
	}
	done := make(chan struct{})
	bigStackRun <- func() {
		defer close(done)
		fn()
	}
	<-done
	return nil
}
