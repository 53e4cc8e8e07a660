package protocolplugin_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/protocol"
	"github.com/gatewayd-access/gatewayd/sdk/protocol/protocolplugin"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
)

// nopHost answers every call at once.
type nopHost struct{ fakeHost }

func (*nopHost) Admit(context.Context, protocol.AdmitRequest) (*protocol.AdmitResponse, error) {
	return &protocol.AdmitResponse{Verdict: abi.Verdict{Action: abi.Allow}}, nil
}

func (*nopHost) RecordRequests(context.Context, []protocol.RequestRecord) error { return nil }

// BenchmarkHostCalls measures what a statement's Host calls cost through
// the plugin transport: sessions each make an Admit and a RecordRequests
// per iteration, concurrently, as pgbench's clients do. It reports the CPU
// time of both processes per iteration.
func BenchmarkHostCalls(b *testing.B) {
	for _, sessions := range []int{1, 8} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			pc, c, _ := launch(b, protocolplugin.Config{})
			pid := pc.ReattachConfig().Pid
			host := &nopHost{}
			ss := make([]*session, sessions)
			for i := range ss {
				ss[i] = connect(b, context.Background(), c, host)
			}
			per := b.N/sessions + 1
			b.ResetTimer()
			cpu0 := bothCPU(b, pid)
			start := time.Now()
			var wg sync.WaitGroup
			for _, s := range ss {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if got := s.do(fmt.Sprintf("bench %d", per)); got != "done" {
						b.Errorf("bench: %q", got)
					}
				}()
			}
			wg.Wait()
			took := time.Since(start)
			cpu := bothCPU(b, pid) - cpu0
			n := float64(per * sessions)
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/iter")
			b.ReportMetric(n/took.Seconds(), "iter/s")
		})
	}
}

func bothCPU(b *testing.B, pid int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) + time.Duration(ut+st)*10*time.Millisecond
}
