//go:build !linux

package host

import "context"

// withMemory keeps wazero's default: linear memory on the Go heap.
func withMemory(ctx context.Context) context.Context { return ctx }
