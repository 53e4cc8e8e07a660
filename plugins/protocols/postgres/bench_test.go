package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	tpsLine = regexp.MustCompile(`tps = ([0-9.]+)`)
	txLine  = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
)

// cpuTime is the user and system CPU time of the gateway so far: this
// process, plus the plugin process when the handler runs out of process;
// and the plugin process's alone.
func cpuTime(b *testing.B, e *env) (gateway, plugin time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	if e.plugin != nil {
		plugin = processCPU(b, e.plugin.pid())
	}
	return time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) + plugin, plugin
}

// processCPU is the user and system CPU time of another process so far,
// from /proc/PID/stat.
func processCPU(b *testing.B, pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// BenchmarkPGBenchSelect runs pgbench -S through an in-process gateway for
// a fixed time and reports its TPS, so a CPU profile of the benchmark is a
// profile of the relay: go test -bench PGBench -benchtime 1x -cpuprofile cpu.out
//
// The "+plugin" runs serve the listener through the external plugin binary
// instead (as every run does with GATEWAYD_TEST_POSTGRES_PLUGIN set), and
// report the plugin process's share of the gateway's CPU time. The
// "+modules" runs put the built-in sqlguard policy and pii masking on the
// connection.
func BenchmarkPGBenchSelect(b *testing.B) {
	modules := `
[[policy]]
module = "sqlguard"
connections = ["bench-db"]
[policy.config]
deny_kinds = ["GRANT", "REVOKE"] # pgbench -i drops and truncates

[[masking]]
module = "pii"
connections = ["bench-db"]
`
	for _, run := range []struct{ mode, extra string }{
		{"simple", ""}, {"extended", ""}, {"simple+plugin", ""}, {"extended+plugin", ""},
		{"simple+modules", modules}, {"extended+modules", modules},
	} {
		mode, variant, _ := strings.Cut(run.mode, "+")
		b.Run(run.mode, func(b *testing.B) {
			// Like bench/run.sh: client TLS, plain upstream on loopback.
			e := startGatewayMode(b, "", appConnection("bench-db", pgSCRAM.Addr(), `tls = "disable"`)+run.extra,
				externalMode() || variant == "plugin")
			host, port, _ := net.SplitHostPort(e.addr)
			run := func(args ...string) string {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				all := append([]string{"-h", host, "-p", port, "-U", "alice"}, args...)
				cmd := exec.CommandContext(ctx, filepath.Join(pgSCRAM.BinDir(), "pgbench"), append(all, "bench-db")...)
				cmd.Env = append(os.Environ(), "PGPASSWORD="+aliceToken, "PGSSLMODE=require", "PGGSSENCMODE=disable")
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("pgbench %v: %v\n%s", args, err, out)
				}
				return string(out)
			}
			run("-i", "-s", "1", "-q")
			seconds := os.Getenv("GWBENCH_SECONDS")
			if seconds == "" {
				seconds = "10"
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before, pluginBefore := cpuTime(b, e)
				out := run("-n", "-S", "-M", mode, "-c", "8", "-j", "2", "-T", seconds)
				after, pluginAfter := cpuTime(b, e)
				used, pluginUsed := after-before, pluginAfter-pluginBefore
				m := tpsLine.FindStringSubmatch(out)
				n := txLine.FindStringSubmatch(out)
				if m == nil || n == nil {
					b.Fatalf("no tps in pgbench output:\n%s", out)
				}
				tps, _ := strconv.ParseFloat(m[1], 64)
				txns, _ := strconv.ParseFloat(n[1], 64)
				b.ReportMetric(tps, "tps")
				// The gateway runs in this process (and the plugin's, out
				// of process): its CPU time per transaction is the relay's
				// cost, steadier than TPS on a shared machine.
				b.ReportMetric(float64(used.Microseconds())/txns, "gateway-cpu-µs/txn")
				if e.plugin != nil {
					b.ReportMetric(float64(pluginUsed.Microseconds())/txns, "plugin-cpu-µs/txn")
				}
			}
		})
	}
}
