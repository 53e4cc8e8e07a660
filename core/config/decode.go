package config

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// decoder turns the parsed TOML tree into a Config. It walks the tree itself
// rather than calling toml's struct decoding because that stops at the first
// value of the wrong type and cannot tell which [[connection]] a key came
// from; the walk reports every problem, each with its own line.
type decoder struct {
	file    string
	lines   map[string]int  // key path -> line, see keyLines
	present map[string]bool // key paths that appear in the file
	bad     map[string]bool // key paths whose value was refused
	errs    []*Error
}

func newDecoder(file, text string) *decoder {
	return &decoder{
		file:    file,
		lines:   keyLines(text),
		present: make(map[string]bool),
		bad:     make(map[string]bool),
	}
}

// lineOf returns the line of path, or of its closest ancestor that has one.
func (d *decoder) lineOf(path string) int {
	for p := path; p != ""; p = parentKey(p) {
		if l, ok := d.lines[p]; ok {
			return l
		}
	}
	return 0
}

// errAt records a problem at the line of path.
func (d *decoder) errAt(path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: d.lineOf(path), Msg: fmt.Sprintf(format, args...)})
}

// usable reports whether path was given and its value accepted.
func (d *decoder) usable(path string) bool { return d.present[path] && !d.bad[path] }

// where locates a value during the walk.
type where struct {
	path  string // key path with 0-based indices, as in keyLines
	plain string // dotted key without indices: "connection.address"
	disp  string // dotted key with 1-based indices: "connection[2].address"
	// subject names the array-of-tables element the value is in, such as
	// `connection[2] ("app-db")`; rel is the key relative to it (or the whole
	// key when there is no subject).
	subject string
	rel     string
}

func (w where) key(k string) where {
	w.path = joinKey(w.path, k)
	w.plain = joinKey(w.plain, k)
	w.disp = joinKey(w.disp, k)
	w.rel = joinKey(w.rel, k)
	return w
}

func (w where) index(i int, elem any, table bool) where {
	w.path = indexKey(w.path, i)
	w.disp = w.disp + "[" + strconv.Itoa(i+1) + "]"
	if !table {
		w.rel = w.rel + "[" + strconv.Itoa(i+1) + "]"
		return w
	}
	w.subject = w.disp
	if m, ok := elem.(map[string]any); ok {
		if name, ok := m["name"].(string); ok && name != "" {
			w.subject += fmt.Sprintf(" (%q)", name)
		}
	}
	w.rel = ""
	return w
}

// prefix is what messages about w start with.
func (w where) prefix() string {
	if w.subject == "" {
		return ""
	}
	return w.subject + ": "
}

// keyErr records a problem with the value at w.
func (d *decoder) keyErr(w where, format string, args ...any) {
	d.bad[w.path] = true
	d.errAt(w.path, "%skey %q: %s", w.prefix(), w.rel, fmt.Sprintf(format, args...))
}

// typeErr records a value of the wrong type. The value itself is never
// shown: it may be a secret written where a reference belongs.
func (d *decoder) typeErr(w where, want string, v any) {
	d.keyErr(w, "want %s, have %s", want, tomlType(v))
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "date-time"
	case []any:
		return "array"
	case []map[string]any:
		return "array of tables"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

func (d *decoder) decode(raw map[string]any, cfg *Config) {
	d.table(where{}, raw, reflect.ValueOf(cfg).Elem())
}

// table decodes the TOML table m into the struct rv.
func (d *decoder) table(w where, m map[string]any, rv reflect.Value) {
	fields := fieldsOf(rv.Type())
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		kw := w.key(k)
		idx, ok := fields[k]
		if !ok {
			d.bad[kw.path] = true
			d.errAt(kw.path, "unknown key %q", kw.plain)
			continue
		}
		d.present[kw.path] = true
		d.value(kw, m[k], rv.FieldByIndex(idx))
	}
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	// anyTable is a free-form table handed on as it is (a module's config).
	anyTable = reflect.TypeFor[map[string]any]()
)

// value decodes v into rv and reports whether it was accepted.
func (d *decoder) value(w where, v any, rv reflect.Value) bool {
	if rv.Kind() == reflect.Pointer {
		nv := reflect.New(rv.Type().Elem())
		if !d.value(w, v, nv.Elem()) {
			return false
		}
		rv.Set(nv)
		return true
	}
	if reflect.PointerTo(rv.Type()).Implements(textUnmarshaler) {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case int64:
			s = strconv.FormatInt(x, 10)
		default:
			d.typeErr(w, "string", v)
			return false
		}
		if err := rv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.keyErr(w, "%v", err)
			return false
		}
		return true
	}
	if rv.Type() == anyTable {
		m, ok := v.(map[string]any)
		if !ok {
			d.typeErr(w, "table", v)
			return false
		}
		rv.Set(reflect.ValueOf(m))
		return true
	}
	switch rv.Kind() {
	case reflect.Map:
		// A table of values of one type, such as a plugin's env.
		m, ok := v.(map[string]any)
		if !ok || rv.Type().Key().Kind() != reflect.String {
			d.typeErr(w, "table", v)
			return false
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out := reflect.MakeMapWithSize(rv.Type(), len(m))
		ok = true
		for _, k := range keys {
			ev := reflect.New(rv.Type().Elem()).Elem()
			if !d.value(w.key(k), m[k], ev) {
				ok = false
				continue
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()), ev)
		}
		rv.Set(out)
		return ok
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.typeErr(w, "table", v)
			return false
		}
		d.table(w, m, rv)
		return true
	case reflect.Slice:
		var elems []any
		switch x := v.(type) {
		case []any:
			elems = x
		case []map[string]any:
			for _, e := range x {
				elems = append(elems, e)
			}
		default:
			d.typeErr(w, "array", v)
			return false
		}
		table := rv.Type().Elem().Kind() == reflect.Struct
		s := reflect.MakeSlice(rv.Type(), len(elems), len(elems))
		ok := true
		for i, e := range elems {
			if !d.value(w.index(i, e, table), e, s.Index(i)) {
				ok = false
			}
		}
		rv.Set(s)
		return ok
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.typeErr(w, "string", v)
			return false
		}
		rv.SetString(s)
		return true
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.typeErr(w, "boolean", v)
			return false
		}
		rv.SetBool(b)
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			d.typeErr(w, "integer", v)
			return false
		}
		if rv.OverflowInt(n) {
			d.keyErr(w, "%d is out of range", n)
			return false
		}
		rv.SetInt(n)
		return true
	case reflect.Float32, reflect.Float64:
		switch x := v.(type) {
		case float64:
			rv.SetFloat(x)
		case int64:
			rv.SetFloat(float64(x))
		default:
			d.typeErr(w, "float", v)
			return false
		}
		return true
	}
	d.keyErr(w, "cannot decode into %s", rv.Type())
	return false
}

// fieldsOf maps the toml keys of struct type t to field indices, following
// embedded structs as toml does.
func fieldsOf(t reflect.Type) map[string][]int {
	fields := make(map[string][]int)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			for k, idx := range fieldsOf(f.Type) {
				fields[k] = append([]int{i}, idx...)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		fields[tag] = []int{i}
	}
	return fields
}
