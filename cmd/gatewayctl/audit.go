package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/gatewayd-access/gatewayd/core/api"
	"github.com/gatewayd-access/gatewayd/core/audit"
)

func (a *app) auditVerify(ctx context.Context, args []string) error {
	c := a.command("audit verify", "audit verify [--file FILE] [--json]")
	c.gatewayFlags()
	file := c.String("file", "", "verify the export in `FILE` offline, without a gateway (\"-\" reads stdin)")
	asJSON := c.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos); err != nil {
		return err
	}

	var res api.VerifyResult
	if *file != "" {
		r, name := a.stdin, "stdin"
		if *file != "-" {
			f, err := os.Open(*file)
			if err != nil {
				return fmt.Errorf("verifying audit export: %w", err)
			}
			defer f.Close()
			r, name = f, *file
		}
		vr, err := audit.VerifyStream(r)
		if err != nil {
			return fmt.Errorf("verifying audit export %s: %w", name, err)
		}
		res = api.VerifyResultOf(vr)
	} else {
		cl, err := a.client()
		if err != nil {
			return err
		}
		// No timeout: verifying a large log takes as long as it takes.
		if err := cl.getJSON(ctx, 0, "/v1/audit/verify", nil, &res); err != nil {
			return fmt.Errorf("verifying the audit log: %w", err)
		}
	}

	if *asJSON {
		if err := printJSON(a.stdout, res); err != nil {
			return err
		}
	} else {
		printVerify(a.stdout, res)
	}
	if !res.OK {
		return errReported
	}
	return nil
}

func printVerify(w io.Writer, res api.VerifyResult) {
	switch {
	case res.OK && res.Events == 0:
		fmt.Fprintln(w, "audit chain OK: 0 events (the log is empty)")
	case res.OK:
		fmt.Fprintf(w, "audit chain OK: %d events, last seq %d, last hash %s\n", res.Events, res.LastSeq, res.LastHash)
	default:
		fmt.Fprintf(w, "audit chain BROKEN at event seq %d: %s\n", res.FirstBroken, cell(res.Reason, 0))
		if res.LastSeq > 0 {
			fmt.Fprintf(w, "the events up to seq %d verify (last good hash %s); nothing from seq %d on can be trusted\n",
				res.LastSeq, res.LastHash, res.FirstBroken)
		} else {
			fmt.Fprintln(w, "no event verifies")
		}
	}
}

func (a *app) auditExport(ctx context.Context, args []string) error {
	c := a.command("audit export", "audit export [-o FILE] [--session ID]")
	c.gatewayFlags()
	out := c.String("o", "", "write to `FILE` (mode 0600) instead of stdout")
	session := c.String("session", "", "only the events of session `ID` (such an export cannot be verified offline)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos); err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if *session != "" {
		q.Set("session_id", *session)
	}
	// No timeout: the export streams for as long as the log is long.
	resp, err := cl.get(ctx, "/v1/audit/export", q)
	if err != nil {
		return fmt.Errorf("exporting the audit log: %w", err)
	}
	defer resp.Body.Close()

	if *out == "" || *out == "-" {
		n, err := copyLines(a.stdout, resp.Body)
		if err != nil {
			return fmt.Errorf("exporting the audit log: %w after %d events; the output is incomplete", err, n)
		}
		return nil
	}
	n, err := writeFileAtomic(*out, func(w io.Writer) (int64, error) { return copyLines(w, resp.Body) })
	if err != nil {
		return fmt.Errorf("exporting the audit log to %s: %w after %d events; nothing was written", *out, err, n)
	}
	fmt.Fprintf(a.stderr, "exported %d events to %s\n", n, *out)
	return nil
}

// copyLines copies r to w and counts the lines.
func copyLines(w io.Writer, r io.Reader) (int64, error) {
	var lines int64
	buf := make([]byte, 64<<10)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
			if _, err := w.Write(buf[:n]); err != nil {
				return lines, err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return lines, nil
		}
		if rerr != nil {
			return lines, rerr
		}
	}
}

// writeFileAtomic writes path through a temporary file (mode 0600) in the
// same directory that replaces path only once write succeeded, so that a
// failed export never leaves a truncated file that looks complete.
func writeFileAtomic(path string, write func(io.Writer) (int64, error)) (n int64, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, err
	}
	if n, err = write(f); err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	return n, os.Rename(f.Name(), path)
}
