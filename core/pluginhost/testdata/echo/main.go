// Command echo is a secret plugin for the plugin host's tests. References:
//
//	pid          the process id
//	env          the names of the process's environment variables
//	cwd          the working directory
//	getenv:NAME  the value of variable NAME
//	sleep:DUR    answers after DUR, or fails when the call's context ends
//	exit:N       exits with status N in the middle of the call
//	log:MSG      logs MSG with slog, writes it to stdout and stderr, answers "logged"
//	missing      secret.ErrNotFound
//	anything else: "value-of-" and the reference
//
// With the argument -slow-start=DUR it waits before serving.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd-access/gatewayd/sdk/secret"
	"github.com/gatewayd-access/gatewayd/sdk/secret/secretplugin"
)

type echo struct{}

func (echo) Resolve(ctx context.Context, req secret.ResolveRequest) (*secret.ResolveResponse, error) {
	kind, arg, _ := strings.Cut(req.Reference, ":")
	v := "value-of-" + req.Reference
	switch kind {
	case "pid":
		v = strconv.Itoa(os.Getpid())
	case "env":
		var names []string
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			names = append(names, k)
		}
		slices.Sort(names)
		v = strings.Join(names, ",")
	case "cwd":
		v, _ = os.Getwd()
	case "getenv":
		v = os.Getenv(arg)
	case "sleep":
		d, err := time.ParseDuration(arg)
		if err != nil {
			return nil, err
		}
		select {
		case <-time.After(d):
			v = "slept"
		case <-ctx.Done():
			return nil, fmt.Errorf("echo: sleeping: %w", ctx.Err())
		}
	case "exit":
		n, _ := strconv.Atoi(arg)
		os.Exit(n)
	case "log":
		slog.Warn(arg, "ref", req.Reference)
		fmt.Println("stdout " + arg)
		fmt.Fprintln(os.Stderr, "stderr "+arg)
		v = "logged"
	case "missing":
		return nil, fmt.Errorf("echo: no %q: %w", req.Reference, secret.ErrNotFound)
	}
	return &secret.ResolveResponse{Value: secret.NewValue([]byte(v))}, nil
}

func main() {
	slow := flag.Duration("slow-start", 0, "wait this long before serving")
	flag.Parse()
	time.Sleep(*slow)
	secretplugin.Serve(echo{})
}
