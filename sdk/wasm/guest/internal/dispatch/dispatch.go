// Package dispatch is the guest side of every module export: it decodes the
// host's input with package abi, calls the module's functions and encodes
// their output into a reused buffer. The wasm exports (package exports) and
// the native harness (guest.Instance) both run through it, so a module's
// native tests exercise the same encoding as its compiled .wasm.
package dispatch

import (
	"bytes"
	"fmt"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// Module is guest.Module (the two convert into each other).
type Module struct {
	Subscribe abi.Subscription
	Init      func(config []byte) error
	Policy    func(req *abi.Request) abi.Verdict
	Mask      func(b *abi.Batch, c *abi.Changes)
}

// Subscriptions a module gets when it names none (all request kinds with a
// Policy, all response kinds with a Mask): every bit of each half, so that
// kinds added by a later patch version reach it too.
const (
	allRequests  abi.Subscription = 0x000000ff
	allResponses abi.Subscription = 0xffffff00
)

// minBuffer is the smallest input buffer handed out, so that small inputs
// of different sizes share one allocation.
const minBuffer = 4 << 10

// Dispatcher is one instance of a module: its buffers and decoded values,
// reused from call to call. It is not safe for concurrent use (calls into
// an instance never overlap).
type Dispatcher struct {
	m          Module
	registered bool

	in  []byte // handed to the host by Buffer; valid until the next Buffer
	out []byte // the last output; valid until the next call

	req     abi.Request
	batch   abi.Batch
	changes abi.Changes
}

// New returns a dispatcher calling m.
func New(m Module) *Dispatcher { return &Dispatcher{m: m, registered: true} }

// Registered is the dispatcher behind the wasm exports: the module given to
// Register.
var Registered Dispatcher

// Register makes m the module behind the wasm exports; it panics when called
// twice.
func Register(m Module) {
	if Registered.registered {
		panic("guest: Register called twice")
	}
	Registered.m, Registered.registered = m, true
}

// Buffer is gw_buffer: a buffer of size bytes (at least one byte of
// capacity, so it has an address) for the next call's input. It stays
// valid, and is reused, until the next call to Buffer.
func (d *Dispatcher) Buffer(size int) []byte {
	if cap(d.in) < size || cap(d.in) == 0 {
		d.in = make([]byte, max(size, minBuffer))
	}
	return d.in[:size:cap(d.in)]
}

// input is the n bytes the host wrote into the buffer.
func (d *Dispatcher) input(export string, n int) []byte {
	if n < 0 || n > cap(d.in) {
		panic(fmt.Sprintf("guest: %s called with %d bytes of input but gw_buffer handed out %d", export, n, cap(d.in)))
	}
	return d.in[:n]
}

// Init is gw_init: it configures the module with the JSON config in the
// first n bytes of the buffer and returns an encoded abi.InitResult.
func (d *Dispatcher) Init(n int) []byte {
	config := bytes.Clone(d.input(abi.ExportInit, n)) // the module may keep it
	res := abi.InitResult{Subscribe: d.subscription()}
	if err := d.check(res.Subscribe); err != nil {
		res = abi.InitResult{Status: 1, Message: err.Error()}
	} else if d.m.Init != nil {
		if err := d.m.Init(config); err != nil {
			res = abi.InitResult{Status: 1, Message: err.Error()}
		}
	}
	d.out = abi.AppendInitResult(d.out[:0], &res)
	return d.out
}

func (d *Dispatcher) subscription() abi.Subscription {
	if d.m.Subscribe != 0 {
		return d.m.Subscribe
	}
	var s abi.Subscription
	if d.m.Policy != nil {
		s |= allRequests
	}
	if d.m.Mask != nil {
		s |= allResponses
	}
	return s
}

// check refuses a module that cannot serve what it subscribes to.
func (d *Dispatcher) check(s abi.Subscription) error {
	switch {
	case !d.registered:
		return fmt.Errorf("guest: no module registered: call guest.Register from an init func of package main")
	case d.m.Policy == nil && d.m.Mask == nil:
		return fmt.Errorf("guest: the module has neither a Policy nor a Mask function")
	case s.Requests() && d.m.Policy == nil:
		return fmt.Errorf("guest: the module subscribes to request frames (%#x) but has no Policy function", uint32(s))
	case s.Responses() && d.m.Mask == nil:
		return fmt.Errorf("guest: the module subscribes to response frames (%#x) but has no Mask function", uint32(s))
	}
	return nil
}

// Policy is gw_policy: it decodes the request in the first n bytes of the
// buffer, asks the module and returns the encoded abi.Verdict.
func (d *Dispatcher) Policy(n int) []byte {
	if d.m.Policy == nil {
		panic("guest: gw_policy called but the module has no Policy function")
	}
	if err := abi.DecodeRequest(d.input(abi.ExportPolicy, n), &d.req); err != nil {
		panic(fmt.Sprintf("guest: gw_policy input: %v", err))
	}
	v := d.m.Policy(&d.req)
	d.out = abi.AppendVerdict(d.out[:0], &v)
	return d.out
}

// Mask is gw_mask: it decodes the batch in the first n bytes of the buffer,
// lets the module record its changes and returns the encoded abi.Changes.
// Changes the host would refuse (out of order, out of range, an action
// other than allow or terminate) panic here with a message saying which.
func (d *Dispatcher) Mask(n int) []byte {
	if d.m.Mask == nil {
		panic("guest: gw_mask called but the module has no Mask function")
	}
	if err := abi.DecodeBatch(d.input(abi.ExportMask, n), &d.batch); err != nil {
		panic(fmt.Sprintf("guest: gw_mask input: %v", err))
	}
	d.changes.Reset()
	d.m.Mask(&d.batch, &d.changes)
	if err := checkChanges(&d.changes, d.batch.Rows(), len(d.batch.Columns)); err != nil {
		panic(err.Error())
	}
	d.out = abi.AppendChanges(d.out[:0], &d.changes)
	return d.out
}

func checkChanges(c *abi.Changes, rows, cols int) error {
	if c.Action != abi.Allow && c.Action != abi.Terminate {
		return fmt.Errorf("guest: Mask answered %v; a masking module answers only allow or terminate", c.Action)
	}
	prevRow, prevCol := -1, -1
	for _, ch := range c.List {
		if ch.Row < 0 || ch.Row >= rows || ch.Col < 0 || ch.Col >= cols {
			return fmt.Errorf("guest: Mask changed (row %d, col %d) outside the %d×%d batch", ch.Row, ch.Col, rows, cols)
		}
		if ch.Row < prevRow || ch.Row == prevRow && ch.Col <= prevCol {
			return fmt.Errorf("guest: Mask changed (row %d, col %d) after (row %d, col %d): changes must be in increasing (row, col) order, each value once", ch.Row, ch.Col, prevRow, prevCol)
		}
		prevRow, prevCol = ch.Row, ch.Col
	}
	return nil
}
