package postgres_test

import (
	"context"
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

// cpuTime is the user and system CPU time of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPGBenchSelect runs pgbench -S through an in-process gateway for
// a fixed time and reports its TPS, so a CPU profile of the benchmark is a
// profile of the relay: go test -bench PGBench -benchtime 1x -cpuprofile cpu.out
//
// The "+modules" runs put the built-in sqlguard policy and pii masking on
// the connection.
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
		{"simple", ""}, {"extended", ""}, {"simple+modules", modules}, {"extended+modules", modules},
	} {
		mode, _, _ := strings.Cut(run.mode, "+")
		b.Run(run.mode, func(b *testing.B) {
			// Like bench/run.sh: client TLS, plain upstream on loopback.
			e := startGatewayWith(b, "", appConnection("bench-db", pgSCRAM.Addr(), `tls = "disable"`)+run.extra)
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
				before := cpuTime(b)
				out := run("-n", "-S", "-M", mode, "-c", "8", "-j", "2", "-T", seconds)
				used := cpuTime(b) - before
				m := tpsLine.FindStringSubmatch(out)
				n := txLine.FindStringSubmatch(out)
				if m == nil || n == nil {
					b.Fatalf("no tps in pgbench output:\n%s", out)
				}
				tps, _ := strconv.ParseFloat(m[1], 64)
				txns, _ := strconv.ParseFloat(n[1], 64)
				b.ReportMetric(tps, "tps")
				// The gateway runs in this process: its CPU time per
				// transaction is the relay's cost, steadier than TPS on a
				// shared machine.
				b.ReportMetric(float64(used.Microseconds())/txns, "gateway-cpu-µs/txn")
			}
		})
	}
}
