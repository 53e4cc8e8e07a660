package host

import (
	"context"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// withMemory makes the instances created with ctx keep their linear memory
// in its own mapping instead of the Go heap: the whole limit is reserved up
// front (address space only; pages exist once the guest touches them), so
// the memory never moves as it grows, the garbage collector never scans or
// doubles it, and it returns to the system the moment the instance closes.
func withMemory(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(mmapMemory))
}

func mmapMemory(_, max uint64) experimental.LinearMemory {
	if max == 0 || max > 1<<32 {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return &mapping{b: b}
}

type mapping struct{ b []byte }

func (m *mapping) Reallocate(size uint64) []byte {
	if m.b == nil || size > uint64(len(m.b)) {
		return nil
	}
	return m.b[:size]
}

func (m *mapping) Free() {
	if m.b != nil {
		_ = syscall.Munmap(m.b)
		m.b = nil
	}
}
