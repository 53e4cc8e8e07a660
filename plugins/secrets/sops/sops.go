// Package sops is the "sops" secret backend: values from files encrypted
// with sops (github.com/getsops/sops), as in
// secret = "sops:secrets/app.yaml#app_db". It runs out of process, as the
// plugin binary cmd/gatewayd-secret-sops, so that gatewayd does not link
// sops and every cloud SDK it brings.
//
// A reference is PATH#KEY. PATH is the encrypted file, relative to the
// plugin's working directory (gatewayd runs plugins in the directory of
// gateway.toml) or absolute; its extension says its format: .yaml or .yml,
// .json, or .env (dotenv). KEY is a top-level key, or a dotted path into
// nested maps ("db.app.password"); a top-level key that itself contains
// dots wins over the path. The value must be a string, number or boolean.
//
// Keys to decrypt come from sops' usual sources in the plugin's
// environment; for age, SOPS_AGE_KEY_FILE (set it in the [[plugin]] table's
// env). The file is read and decrypted on every lookup (gatewayd caches the
// answer), so a re-encrypted or rotated file takes effect without a
// restart. No value, and no part of the decrypted file, ever appears in an
// error or a log line.
package sops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	sopsv3 "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	"github.com/getsops/sops/v3/decrypt"
	"go.yaml.in/yaml/v3"

	"github.com/gatewayd-access/gatewayd/sdk/secret"
)

// Scheme is the reference scheme the plugin is usually given as its name.
const Scheme = "sops"

// MaxFileSize bounds an encrypted file.
const MaxFileSize = 4 << 20

// Backend resolves references to values in sops files. The zero value is
// ready to use.
type Backend struct{}

// New returns a Backend.
func New() *Backend { return &Backend{} }

// Resolve decrypts the file named by req.Reference and returns the value
// of its key. A missing file or key is secret.ErrNotFound. Errors name the
// file and the key, never a value.
func (b *Backend) Resolve(ctx context.Context, req secret.ResolveRequest) (*secret.ResolveResponse, error) {
	i := strings.LastIndexByte(req.Reference, '#')
	if i <= 0 || i == len(req.Reference)-1 {
		return nil, fmt.Errorf("sops: reference %q: want PATH#KEY, such as secrets/app.yaml#app_db: %w", req.Reference, secret.ErrNotFound)
	}
	path, key := req.Reference[:i], req.Reference[i+1:]
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sops: reading %s: %w", path, err)
	}
	format, err := formatOf(path)
	if err != nil {
		return nil, err
	}
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	clear, err := decrypt.DataWithFormat(data, format)
	defer func() { clearBytes(clear) }()
	if err != nil {
		return nil, decryptError(path, err)
	}
	v, err := lookup(clear, format, path, key)
	if err != nil {
		return nil, err
	}
	defer clearBytes(v)
	if len(v) == 0 {
		return nil, fmt.Errorf("sops: %s: key %q is empty: %w", path, key, secret.ErrNotFound)
	}
	return &secret.ResolveResponse{Value: secret.NewValue(v)}, nil
}

// formatOf picks the sops format from the file's extension.
func formatOf(path string) (formats.Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return formats.Yaml, nil
	case ".json":
		return formats.Json, nil
	case ".env":
		return formats.Dotenv, nil
	}
	return 0, fmt.Errorf("sops: %s: unknown format, want a .yaml, .yml, .json or .env file: %w", path, secret.ErrNotFound)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sops: opening %s: %w", path, secret.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sops: opening %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("sops: reading %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("sops: %s is larger than %d bytes", path, MaxFileSize)
	}
	return data, nil
}

// decryptError describes a failed decryption without anything sops put in
// its message that derives from the cleartext (the integrity check's
// message carries hashes of the values).
func decryptError(path string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, sopsv3.MetadataNotFound):
		return fmt.Errorf("sops: %s has no sops metadata: it is not encrypted with sops", path)
	case strings.Contains(msg, "Error getting data key"):
		// Which key groups and keys were tried and why each failed, for
		// example no age identity matching the file's recipients.
		first, _, _ := strings.Cut(msg, "\n")
		return fmt.Errorf("sops: decrypting %s: %s (is SOPS_AGE_KEY_FILE set in the plugin's env and does it hold a key the file was encrypted for?)", path, first)
	case strings.Contains(msg, "integrity"), strings.Contains(msg, "mac"):
		return fmt.Errorf("sops: decrypting %s: integrity check failed: the file was changed without sops", path)
	}
	return fmt.Errorf("sops: decrypting %s: the file is not a valid sops-encrypted file or could not be decrypted", path)
}

// lookup finds key in the decrypted document and returns its value.
func lookup(doc []byte, format formats.Format, path, key string) ([]byte, error) {
	notFound := fmt.Errorf("sops: %s: no key %q: %w", path, key, secret.ErrNotFound)
	if format == formats.Dotenv {
		for line := range bytes.Lines(doc) {
			k, v, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte("="))
			if ok && string(k) == key {
				return append([]byte(nil), v...), nil
			}
		}
		return nil, notFound
	}
	var tree map[string]any
	var err error
	if format == formats.Json {
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		err = dec.Decode(&tree)
	} else {
		err = yaml.Unmarshal(doc, &tree)
	}
	if err != nil {
		// The parser's message may quote the document: leave it out.
		return nil, fmt.Errorf("sops: %s: the decrypted document is not a map of keys", path)
	}
	v, ok := tree[key]
	if !ok {
		var cur any = tree
		for seg := range strings.SplitSeq(key, ".") {
			m, isMap := asMap(cur)
			if !isMap {
				return nil, notFound
			}
			if cur, ok = m[seg]; !ok {
				return nil, notFound
			}
		}
		v = cur
	}
	switch x := v.(type) {
	case string:
		return []byte(x), nil
	case json.Number:
		return []byte(x.String()), nil
	case int:
		return []byte(strconv.Itoa(x)), nil
	case int64:
		return []byte(strconv.FormatInt(x, 10)), nil
	case uint64:
		return []byte(strconv.FormatUint(x, 10)), nil
	case float64:
		return []byte(strconv.FormatFloat(x, 'g', -1, 64)), nil
	case bool:
		return []byte(strconv.FormatBool(x)), nil
	case nil:
		return nil, notFound
	}
	if _, isMap := asMap(v); isMap {
		return nil, fmt.Errorf("sops: %s: key %q is a map, not a value; name a key inside it with a dotted path: %w", path, key, secret.ErrNotFound)
	}
	return nil, fmt.Errorf("sops: %s: key %q is a %s, not a string, number or boolean: %w", path, key, kindOf(v), secret.ErrNotFound)
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

func kindOf(v any) string {
	if _, ok := v.([]any); ok {
		return "list"
	}
	return "value of another type"
}

// clearBytes overwrites b, a copy of cleartext, before it is dropped.
func clearBytes(b []byte) { clear(b) }

var _ secret.Backend = (*Backend)(nil)
