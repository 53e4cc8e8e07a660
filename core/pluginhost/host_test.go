package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/gatewayd-access/gatewayd/internal/testlog"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/gatewayd-access/gatewayd/core/audit"
	"github.com/gatewayd-access/gatewayd/core/config"
	"github.com/gatewayd-access/gatewayd/internal/plugintest"
	"github.com/gatewayd-access/gatewayd/sdk/plugin"
	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/secret/secretplugin"
)

// The test plugins, built once by TestMain.
var (
	echoPath, echoSum string
	hangPath, hangSum string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatewayd-pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	echoPath, echoSum, err = plugintest.Build("./testdata/echo", dir, "echo")
	if err == nil {
		hangPath, hangSum, err = plugintest.Build("./testdata/hang", dir, "hang")
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// records is an in-memory Auditor.
type records struct {
	mu   sync.Mutex
	list []audit.Record
}

func (r *records) Append(_ context.Context, rec audit.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
	return nil
}

func (r *records) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var k []string
	for _, rec := range r.list {
		k = append(k, rec.Kind)
	}
	return k
}

func (r *records) of(kind string) []audit.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.Record
	for _, rec := range r.list {
		if rec.Kind == kind {
			out = append(out, rec)
		}
	}
	return out
}

func defaultSets() map[string]map[int]goplugin.PluginSet {
	return map[string]map[int]goplugin.PluginSet{plugin.KindSecret: secretplugin.VersionedPlugins()}
}

func echoPlugin(name string) config.Plugin {
	return config.Plugin{
		Name: name, Kind: plugin.KindSecret, Path: echoPath, SHA256: echoSum,
		StartTimeout: config.Duration{Duration: 10 * time.Second},
		CallTimeout:  config.Duration{Duration: 10 * time.Second},
	}
}

type env struct {
	h     *Host
	audit *records
	logs  *testlog.Buffer
	dir   string
}

func start(t *testing.T, opts Options) (*env, error) {
	t.Helper()
	e := &env{audit: &records{}, logs: &testlog.Buffer{}, dir: t.TempDir()}
	if opts.Sets == nil {
		opts.Sets = defaultSets()
	}
	opts.Audit = e.audit
	opts.Log = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.Dir == "" {
		opts.Dir = e.dir
	}
	h, err := Start(context.Background(), opts)
	if err != nil {
		return e, err
	}
	e.h = h
	t.Cleanup(func() {
		_ = h.Close(context.Background())
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs.String())
		}
	})
	return e, nil
}

func mustStart(t *testing.T, opts Options) *env {
	t.Helper()
	e, err := start(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) resolve(t *testing.T, scheme, ref string) (string, error) {
	t.Helper()
	b, ok := e.h.SecretBackends()[scheme]
	if !ok {
		t.Fatalf("no backend %q", scheme)
	}
	resp, err := b.Resolve(context.Background(), secret.ResolveRequest{Reference: ref})
	if err != nil {
		return "", err
	}
	return resp.Value.Reveal(), nil
}

func (e *env) mustResolve(t *testing.T, scheme, ref string) string {
	t.Helper()
	v, err := e.resolve(t, scheme, ref)
	if err != nil {
		t.Fatalf("resolving %s:%s: %v", scheme, ref, err)
	}
	return v
}

func (e *env) pid(t *testing.T, scheme string) int {
	t.Helper()
	pid, err := strconv.Atoi(e.mustResolve(t, scheme, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// alive reports whether process pid exists (go-plugin reaps its children).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// eventually retries cond for up to 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartAndResolve(t *testing.T) {
	e := mustStart(t, Options{Plugins: []config.Plugin{echoPlugin("echo"), echoPlugin("echo2")}})
	if got := e.mustResolve(t, "echo", "db#pw"); got != "value-of-db#pw" {
		t.Errorf("got %q", got)
	}
	if e.pid(t, "echo") == e.pid(t, "echo2") {
		t.Error("two plugins share a process")
	}
	_, err := e.resolve(t, "echo", "missing")
	if !errors.Is(err, secret.ErrNotFound) || !strings.Contains(err.Error(), `secret plugin "echo"`) {
		t.Errorf("missing: %v", err)
	}
	if got := e.mustResolve(t, "echo", "cwd"); got != e.dir {
		t.Errorf("working directory %q, want %q", got, e.dir)
	}
	starts := e.audit.of(audit.KindPluginStart)
	if len(starts) != 2 {
		t.Fatalf("plugin.start events: %v", e.audit.kinds())
	}
	d := starts[0].Data.(audit.PluginStartData)
	if d.Kind != "secret" || d.Path != echoPath || d.SHA256 != echoSum || d.PID == 0 || d.Version != 1 || d.Took <= 0 {
		t.Errorf("plugin.start data %+v", d)
	}
	p, err := e.h.Lookup("echo", plugin.KindSecret)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := p.Instance(context.Background())
	if err != nil || inst.PID() != e.pid(t, "echo") || inst.Version() != 1 || inst.Client() == nil || inst.Exited() {
		t.Fatalf("Instance: %+v, %v", inst, err)
	}
	if _, ok := inst.Raw().(secret.Backend); !ok {
		t.Errorf("Raw is %T", inst.Raw())
	}
	if _, err := e.h.Lookup("echo", plugin.KindProtocol); !errors.Is(err, ErrNoSuchPlugin) {
		t.Errorf("Lookup of the wrong kind: %v", err)
	}
	if _, err := e.h.Lookup("nope", plugin.KindSecret); !errors.Is(err, ErrNoSuchPlugin) {
		t.Errorf("Lookup of an unknown name: %v", err)
	}
}

// TestEnvironment: a plugin gets PATH, HOME, its table's env and go-plugin's
// handshake variables, and nothing else of gatewayd's environment.
func TestEnvironment(t *testing.T) {
	t.Setenv("GWTEST_GATEWAY_ONLY_SECRET", "must-not-leak")
	t.Setenv("HOME", "/home/gatewayd-test")
	pc := echoPlugin("echo")
	pc.Env = map[string]string{"SOPS_AGE_KEY_FILE": "/etc/gatewayd/age.key", "HOME": "/var/lib/plugin"}
	e := mustStart(t, Options{Plugins: []config.Plugin{pc}})
	names := strings.Split(e.mustResolve(t, "echo", "env"), ",")
	var own []string
	for _, n := range names {
		if !strings.HasPrefix(n, "PLUGIN_") && n != plugin.Handshake.MagicCookieKey {
			own = append(own, n)
		}
	}
	if want := []string{"HOME", "PATH", "SOPS_AGE_KEY_FILE"}; !slices.Equal(own, want) {
		t.Errorf("plugin environment %v, want %v plus go-plugin's", names, want)
	}
	if got := e.mustResolve(t, "echo", "getenv:HOME"); got != "/var/lib/plugin" {
		t.Errorf("HOME = %q: the table's env must win", got)
	}
}

// TestChecksumMismatch: a binary that does not match its sha256 is refused
// before it runs, with an error naming the plugin and both hashes.
func TestChecksumMismatch(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "it-ran")
	script := filepath.Join(dir, "plugin.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sum, err := plugintest.FileSHA256(script)
	if err != nil {
		t.Fatal(err)
	}
	pc := echoPlugin("tampered")
	pc.Path = script
	pc.SHA256 = echoSum
	_, err = start(t, Options{Plugins: []config.Plugin{echoPlugin("good"), pc}})
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("err = %v, want ErrChecksumMismatch", err)
	}
	for _, s := range []string{`"tampered"`, script, sum, echoSum, "refusing to run it"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Error("the mismatching binary ran")
	}
}

// TestStartTimeout: a plugin that never completes its handshake fails the
// start after start_timeout, and its process is killed.
func TestStartTimeout(t *testing.T) {
	pc := echoPlugin("sleepy")
	pc.Path, pc.SHA256 = hangPath, hangSum
	pc.StartTimeout.Duration = 300 * time.Millisecond
	begin := time.Now()
	e, err := start(t, Options{Plugins: []config.Plugin{pc}})
	took := time.Since(begin)
	if !errors.Is(err, ErrStartTimeout) || !strings.Contains(err.Error(), `"sleepy"`) || !strings.Contains(err.Error(), "300ms") {
		t.Fatalf("err = %v", err)
	}
	if took > 3*time.Second {
		t.Errorf("start took %v with a 300ms start_timeout", took)
	}
	eventually(t, "the hanging process to be killed", func() bool { return len(processesOf(hangPath)) == 0 })
	if strings.Contains(e.logs.String(), `"level":"INFO","msg":"plugin started"`) {
		t.Error("logged as started")
	}
}

// processesOf returns the pids running the executable at path.
func processesOf(path string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", ent.Name(), "exe")); err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestNotAPlugin: an executable that is no plugin fails the start clearly.
func TestNotAPlugin(t *testing.T) {
	dir := t.TempDir()
	for name, script := range map[string]string{
		"chatty":  "#!/bin/sh\necho hello\nsleep 5\n",
		"quitter": "#!/bin/sh\necho 'cannot start: no config' >&2\nexit 3\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			sum, _ := plugintest.FileSHA256(path)
			pc := echoPlugin(name)
			pc.Path, pc.SHA256 = path, sum
			e, err := start(t, Options{Plugins: []config.Plugin{pc}})
			want := map[string]string{"chatty": "not a gatewayd plugin", "quitter": "exit status 3"}[name]
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), name) {
				t.Fatalf("err = %v, want it to say %q", err, want)
			}
			if name == "quitter" && !strings.Contains(e.logs.String(), "cannot start: no config") {
				t.Errorf("the plugin's stderr is not in the log:\n%s", e.logs)
			}
		})
	}
}

func TestUnknownKind(t *testing.T) {
	pc := echoPlugin("pg")
	pc.Kind = plugin.KindProtocol
	_, err := start(t, Options{Plugins: []config.Plugin{pc}})
	if err == nil || !strings.Contains(err.Error(), `no support for plugins of kind "protocol"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestCallTimeout: a call past call_timeout fails clearly; the plugin lives on.
func TestCallTimeout(t *testing.T) {
	pc := echoPlugin("echo")
	pc.CallTimeout.Duration = 200 * time.Millisecond
	e := mustStart(t, Options{Plugins: []config.Plugin{pc}})
	pid := e.pid(t, "echo")
	begin := time.Now()
	_, err := e.resolve(t, "echo", "sleep:5s")
	if !errors.Is(err, ErrCallTimeout) || !strings.Contains(err.Error(), `"echo"`) || !strings.Contains(err.Error(), "200ms") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("timed out after %v", took)
	}
	if e.mustResolve(t, "echo", "sleep:10ms") != "slept" || e.pid(t, "echo") != pid {
		t.Error("the plugin did not survive a timed-out call")
	}
}

// TestKillRestartRetry: kill -9 of the plugin; the next lookup is answered by
// a new process, and the crash and restart are audited and hooked.
func TestKillRestartRetry(t *testing.T) {
	e := mustStart(t, Options{Plugins: []config.Plugin{echoPlugin("echo")}})
	var mu sync.Mutex
	var crashes []Crash
	e.h.OnCrash(func(c Crash) {
		mu.Lock()
		crashes = append(crashes, c)
		mu.Unlock()
	})
	p, _ := e.h.Lookup("echo", plugin.KindSecret)
	old, err := p.Instance(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pid := e.pid(t, "echo")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// At once: the lookup meets the dead process or waits for the new one.
	newPID := e.pid(t, "echo")
	if newPID == pid {
		t.Fatal("answered by the killed process")
	}
	select {
	case <-old.Done():
	default:
		t.Error("the old instance's Done is not closed")
	}
	eventually(t, "the crash hook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(crashes) == 1
	})
	if c := crashes[0]; c.Plugin != "echo" || c.Instance != old || !strings.Contains(c.Reason, "signal: killed") {
		t.Errorf("crash %+v", c)
	}
	crash := e.audit.of(audit.KindPluginCrash)
	restart := e.audit.of(audit.KindPluginRestart)
	if len(crash) != 1 || len(restart) != 1 {
		t.Fatalf("events %v", e.audit.kinds())
	}
	if d := crash[0].Data.(audit.PluginCrashData); d.PID != pid || d.Reason != "exited: signal: killed" || d.Plugin != "echo" {
		t.Errorf("plugin.crash %+v", d)
	}
	if d := restart[0].Data.(audit.PluginRestartData); d.PID != newPID || d.Outcome != "ok" || d.Attempt != 1 || d.Backoff != 0 {
		t.Errorf("plugin.restart %+v", d)
	}
}

// TestCrashDuringCallRetriesOnce: a call whose process dies under it is
// retried once on a new process, and not again.
func TestCrashDuringCallRetriesOnce(t *testing.T) {
	e := mustStart(t, Options{Plugins: []config.Plugin{echoPlugin("echo")}})
	_, err := e.resolve(t, "echo", "exit:7")
	if !errors.Is(err, plugin.ErrUnavailable) {
		t.Fatalf("err = %v, want plugin.ErrUnavailable", err)
	}
	eventually(t, "two crashes and restarts", func() bool {
		return len(e.audit.of(audit.KindPluginCrash)) == 2 && len(e.audit.of(audit.KindPluginRestart)) == 2
	})
	for _, r := range e.audit.of(audit.KindPluginCrash) {
		if d := r.Data.(audit.PluginCrashData); d.Reason != "exited: exit status 7" {
			t.Errorf("crash reason %q", d.Reason)
		}
	}
	if got := e.mustResolve(t, "echo", "after"); got != "value-of-after" {
		t.Errorf("after the crashes: %q", got)
	}
}

// TestHealthCheck: a plugin that stops answering (SIGSTOP) fails its health
// check and is replaced.
func TestHealthCheck(t *testing.T) {
	pc := echoPlugin("echo")
	pc.CallTimeout.Duration = 300 * time.Millisecond
	e := mustStart(t, Options{Plugins: []config.Plugin{pc}, HealthInterval: 100 * time.Millisecond})
	pid := e.pid(t, "echo")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a restart", func() bool { return len(e.audit.of(audit.KindPluginRestart)) == 1 })
	d := e.audit.of(audit.KindPluginCrash)[0].Data.(audit.PluginCrashData)
	if !strings.HasPrefix(d.Reason, "health check failed") {
		t.Errorf("crash reason %q", d.Reason)
	}
	if e.pid(t, "echo") == pid {
		t.Error("still the stopped process")
	}
	eventually(t, "the stopped process to be gone", func() bool { return !alive(pid) })
}

// TestRestartBackoff: a plugin that cannot be started again is retried with
// growing waits, lookups fail meanwhile, and it comes back once it can.
func TestRestartBackoff(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "echo")
	data, err := os.ReadFile(echoPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	pc := echoPlugin("echo")
	pc.Path = exe
	pc.StartTimeout.Duration = 500 * time.Millisecond
	e := mustStart(t, Options{Plugins: []config.Plugin{pc}, MaxBackoff: 400 * time.Millisecond})
	pid := e.pid(t, "echo")

	// Swap the binary for another, then kill the plugin: each restart
	// attempt is refused on its checksum.
	if err := os.WriteFile(exe+".new", []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(exe+".new", exe); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, "four failed restarts", func() bool { return len(e.audit.of(audit.KindPluginRestart)) >= 4 })
	var backoffs []time.Duration
	for _, r := range e.audit.of(audit.KindPluginRestart)[:4] {
		d := r.Data.(audit.PluginRestartData)
		if d.Outcome != "failed" || !strings.Contains(d.Error, "sha256") {
			t.Errorf("restart %+v", d)
		}
		backoffs = append(backoffs, time.Duration(d.Backoff))
	}
	if want := []time.Duration{0, 250 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond}; !slices.Equal(backoffs, want) {
		t.Errorf("backoffs %v, want %v", backoffs, want)
	}
	_, err = e.resolve(t, "echo", "x")
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("lookup while the plugin cannot start: %v", err)
	}

	// Put the right binary back: the next attempt succeeds.
	if err := os.WriteFile(exe+".new", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(exe+".new", exe); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a successful restart", func() bool {
		rs := e.audit.of(audit.KindPluginRestart)
		return rs[len(rs)-1].Data.(audit.PluginRestartData).Outcome == "ok"
	})
	if got := e.mustResolve(t, "echo", "back"); got != "value-of-back" {
		t.Errorf("after recovery: %q", got)
	}
}

// TestLogs: the plugin's slog lines, stdout and stderr reach gatewayd's log
// with the plugin's name.
func TestLogs(t *testing.T) {
	e := mustStart(t, Options{Plugins: []config.Plugin{echoPlugin("echo")}})
	e.mustResolve(t, "echo", "log:hello-from-plugin")
	type line struct {
		Level, Msg, Plugin, Kind, Stream, Ref string
	}
	find := func(msg string) (line, bool) {
		for l := range strings.Lines(e.logs.String()) {
			var v line
			if json.Unmarshal([]byte(l), &v) == nil && v.Msg == msg {
				return v, true
			}
		}
		return line{}, false
	}
	eventually(t, "the plugin's lines", func() bool {
		_, a := find("hello-from-plugin")
		_, b := find("stdout hello-from-plugin")
		_, c := find("stderr hello-from-plugin")
		return a && b && c
	})
	if l, _ := find("hello-from-plugin"); l.Level != "WARN" || l.Plugin != "echo" || l.Kind != "secret" || l.Ref != "log:hello-from-plugin" || l.Stream != "stderr" {
		t.Errorf("slog line %+v", l)
	}
	if l, _ := find("stdout hello-from-plugin"); l.Level != "INFO" || l.Plugin != "echo" || l.Stream != "stdout" {
		t.Errorf("stdout line %+v", l)
	}
	if l, _ := find("stderr hello-from-plugin"); l.Level != "INFO" || l.Plugin != "echo" || l.Stream != "stderr" {
		t.Errorf("stderr line %+v", l)
	}
}

// TestClose stops every process; the plugin is unusable afterwards.
func TestClose(t *testing.T) {
	e := mustStart(t, Options{Plugins: []config.Plugin{echoPlugin("echo")}})
	pid := e.pid(t, "echo")
	p, _ := e.h.Lookup("echo", plugin.KindSecret)
	if err := e.h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the process to exit", func() bool { return !alive(pid) })
	if _, err := p.Instance(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Instance after Close: %v", err)
	}
	if _, err := e.resolve(t, "echo", "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("lookup after Close: %v", err)
	}
	if got := e.audit.of(audit.KindPluginCrash); len(got) != 0 {
		t.Errorf("Close recorded crashes: %v", got)
	}
}

func TestSanitize(t *testing.T) {
	long := strings.Repeat("é", 400)
	got := sanitize("line1\nline2\x1b[31m\xff" + long)
	if strings.ContainsAny(got, "\n\x1b") || len(got) > maxErrorText+len("…") || !strings.HasPrefix(got, "line1 line2 [31m?") {
		t.Errorf("sanitize = %q (%d bytes)", got, len(got))
	}
}
