package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/BurntSushi/toml"
)

// Error is one problem found in a configuration file. Load and Parse return
// every problem they find, joined with errors.Join and sorted by line; use
// errors.As to get at one.
type Error struct {
	File string // the path given to Load or Parse
	Line int    // 1-based; 0 when no line applies
	Msg  string // names the key; never contains a secret
}

func (e *Error) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Option adjusts what Load and Parse accept.
type Option func(*options)

type options struct {
	schemes []string
	modules []string
}

// WithBuiltinModules sets the names of the built-in WASM modules a
// [[policy]] or [[masking]] table may name. Without it they are "pii" and
// "sqlguard".
func WithBuiltinModules(names ...string) Option {
	return func(o *options) { o.modules = slices.Clone(names) }
}

// WithSecretSchemes sets the secret reference schemes that have a backend,
// for example the ones a secrets resolver reports. Without it the known
// schemes are "env" and "file".
func WithSecretSchemes(schemes ...string) Option {
	return func(o *options) { o.schemes = slices.Clone(schemes) }
}

// Load reads, checks and completes the configuration file at path.
func Load(path string, opts ...Option) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: reading configuration: %w", err)
	}
	return Parse(path, data, opts...)
}

// Parse checks and completes the configuration data read from path. path
// names the file in errors, and relative paths in the configuration (such
// as gateway.data_dir) are taken relative to its directory.
//
// Unknown keys, values of the wrong type, missing required keys, invalid
// values and references to things that do not exist are all errors; Parse
// reports every one it finds, each as an *Error with the file and line.
func Parse(path string, data []byte, opts ...Option) (*Config, error) {
	o := options{schemes: []string{"env", "file"}, modules: []string{"pii", "sqlguard"}}
	for _, opt := range opts {
		opt(&o)
	}

	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: path, Line: pe.Position.Line, Msg: pe.Message}
		}
		return nil, &Error{File: path, Msg: err.Error()}
	}

	d := newDecoder(path, string(data))
	cfg := &Config{Path: path}
	d.decode(raw, cfg)
	d.complete(cfg, &o)
	if err := d.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ConnectionByName returns the connection called name.
func (c *Config) ConnectionByName(name string) (*Connection, bool) {
	for i := range c.Connection {
		if c.Connection[i].Name == name {
			return &c.Connection[i], true
		}
	}
	return nil, false
}

// Dir returns the absolute directory of the configuration file, which
// relative paths in it are taken relative to. gatewayd runs its plugins in
// it.
func (c *Config) Dir() string { return c.dir() }

// dir returns the absolute directory of the configuration file.
func (c *Config) dir() string {
	p, err := filepath.Abs(c.Path)
	if err != nil {
		return filepath.Dir(c.Path)
	}
	return filepath.Dir(p)
}

// err joins the problems found, sorted by line (problems with no line last).
func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	sort.SliceStable(d.errs, func(i, j int) bool {
		a, b := d.errs[i].Line, d.errs[j].Line
		if (a == 0) != (b == 0) {
			return b == 0
		}
		return a < b
	})
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}
