// Package guest is the Go SDK for gatewayd policy and masking modules: a
// module fills in a Module and registers it; the SDK provides the exports of
// the ABI (../ABI.md) for GOOS=wasip1 GOARCH=wasm -buildmode=c-shared.
//
// A module's main package registers it from an init func, since a reactor's
// main is never run:
//
//	func init() { guest.Register(guest.Module{Mask: mask}) }
//
//	func main() {}
//
// A panic in a module function is not recovered: the call traps, and the
// gateway fails closed (the request is denied or the session ended) and
// discards the instance.
package guest

import (
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest/internal/dispatch"
	_ "github.com/gatewayd-access/gatewayd/sdk/wasm/guest/internal/exports" // the wasm exports
)

// Module is a policy module, a masking module or both. Each instance of the
// compiled module serves one session; its package-level variables are the
// instance's state.
type Module struct {
	// Subscribe is the set of frame kinds the module is called for. Zero
	// means every request kind if Policy is set, plus every response kind
	// if Mask is set. Subscribing to a request kind needs Policy, to a
	// response kind Mask.
	Subscribe abi.Subscription

	// Init, if set, is called once per instance, before any other call,
	// with the module's config table from gateway.toml as a JSON object
	// ("{}" when there is none). An error refuses the config: the gateway
	// does not start, and reports the error's text.
	Init func(config []byte) error

	// Policy judges a request frame. The request and its slices are
	// reused by the next call; its strings are the module's to keep.
	Policy func(req *abi.Request) abi.Verdict

	// Mask masks a batch of response rows: it records each value it
	// changes in c, which arrives Reset, in increasing (row, col) order,
	// and only values that change. The batch's values alias the input
	// buffer, reused by the next call: copy what must outlive the call.
	// A value given to c.Set must stay unchanged until Mask returns.
	// To end the session instead, set c.Action to abi.Terminate and
	// c.Reason.
	Mask func(b *abi.Batch, c *abi.Changes)
}

// Register makes m the module that the compiled .wasm runs. Call it once,
// from an init func of the main package.
func Register(m Module) { dispatch.Register(dispatch.Module(m)) }

// Instance is an instance of a Module running in this process behind the
// same dispatcher as the compiled module's exports: the host's view of the
// ABI without WebAssembly. It exists for test harnesses (package
// wasmtest); module authors do not need it.
//
// Each method is the export of the same name, in and out as encoded bytes:
// Buffer returns the input buffer (valid until the next Buffer), the others
// take the input's length and return the output (valid until the next
// call). A panic in the module propagates, as a trap would. Package-level
// state of the module is shared by every Instance in the process.
type Instance struct{ d *dispatch.Dispatcher }

// NewInstance returns an unconfigured instance of m: call Init first.
func NewInstance(m Module) *Instance { return &Instance{dispatch.New(dispatch.Module(m))} }

// Buffer is gw_buffer.
func (i *Instance) Buffer(size int) []byte { return i.d.Buffer(size) }

// Init is gw_init.
func (i *Instance) Init(n int) []byte { return i.d.Init(n) }

// Policy is gw_policy.
func (i *Instance) Policy(n int) []byte { return i.d.Policy(n) }

// Mask is gw_mask.
func (i *Instance) Mask(n int) []byte { return i.d.Mask(n) }
