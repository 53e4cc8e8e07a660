package main

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/gatewayd-access/gatewayd/sdk/wasm/abi"
	"github.com/gatewayd-access/gatewayd/sdk/wasm/guest"
	"github.com/gatewayd-access/gatewayd/wasm/masking/pii/detect"
)

// PostgreSQL type OIDs whose values are scanned for personal data by
// content. Numbers, dates, booleans, uuids and network addresses are not:
// a masked value would no longer be valid for its type.
//
// scalarText types have the same bytes in binary format as in text format.
var scalarText = map[uint32]bool{
	0: true, 18: true, 19: true, 25: true, 114: true, 142: true, 705: true, 1042: true, 1043: true,
}

// textOnly types are scanned in text format only: record and arrays of text
// types (their binary format is structured), jsonb (binary: a version byte
// then the text, handled apart).
var textOnly = map[uint32]bool{
	3802: true, 2249: true, 1009: true, 1014: true, 1015: true, 199: true, 3807: true, 143: true, 2287: true,
}

const jsonbOID = 3802

// A column rule masks whole values of the columns it names.
type columnRule struct {
	Names []string `json:"names"` // globs, lower case
	Kind  string   `json:"kind"`
	Style string   `json:"style"`

	kind   detect.Kind
	masker *detect.Masker
}

type config struct {
	// Detect lists the kinds found by content; default all.
	Detect []string `json:"detect"`
	// Style is the default mask style: "full", "partial" or "hash".
	Style string `json:"style"`
	// Styles overrides the style per kind.
	Styles map[string]string `json:"styles"`
	// HashKey keys the hash style; required when a style is "hash".
	HashKey string `json:"hash_key"`
	// Columns are rules by column name; default rules cover the usual
	// names (email, ssn, phone, card_number, iban, ...).
	Columns []columnRule `json:"columns"`
	// SkipColumns are globs of columns never scanned by content.
	SkipColumns []string `json:"skip_columns"`
}

var defaultColumns = []columnRule{
	{Names: []string{"email", "e_mail", "email_address", "*_email"}, Kind: "email"},
	{Names: []string{"ssn", "social_security_number", "*_ssn"}, Kind: "ssn"},
	{Names: []string{"phone", "phone_number", "mobile", "*_phone"}, Kind: "phone"},
	{Names: []string{"card_number", "credit_card", "cc_number", "pan"}, Kind: "card"},
	{Names: []string{"iban"}, Kind: "iban"},
}

// masker is a parsed config.
type masker struct {
	content *detect.Masker // nil when no kinds are detected by content
	perKind []*detect.Masker
	set     detect.Set
	columns []columnRule
	skip    []string

	// per batch: what to do with each column, the masked values, and
	// where each is in buf
	plan []colPlan
	buf  []byte
	list []pending
}

// pending is a masked value in masker.buf (start < 0: NULL).
type pending struct{ row, col, start, end int }

type colPlan struct {
	rule    *columnRule
	scan    bool
	jsonb   bool // binary jsonb: a version byte, then text
	nullify bool // a binary value of another type under a column rule
}

func newMasker(raw []byte) (*masker, error) {
	var c config
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("pii config: %v", err)
	}
	if c.Style == "" {
		c.Style = "partial"
	}
	m := &masker{skip: lower(c.SkipColumns)}
	if c.Detect == nil {
		m.set = detect.All
	} else {
		for _, k := range c.Detect {
			kind, ok := detect.ParseKind(k)
			if !ok {
				return nil, fmt.Errorf("pii config: detect: unknown kind %q", k)
			}
			m.set |= detect.SetOf(kind)
		}
	}
	style := func(kind detect.Kind, override string) (detect.Style, error) {
		name := c.Style
		if s, ok := c.Styles[kind.String()]; ok {
			name = s
		}
		if override != "" {
			name = override
		}
		st, ok := detect.ParseStyle(name)
		if !ok {
			return 0, fmt.Errorf("pii config: unknown style %q (full, partial, hash)", name)
		}
		if st == detect.Hash && c.HashKey == "" {
			return 0, fmt.Errorf("pii config: style \"hash\" needs hash_key")
		}
		return st, nil
	}
	for k := range c.Styles {
		if _, ok := detect.ParseKind(k); !ok {
			return nil, fmt.Errorf("pii config: styles: unknown kind %q", k)
		}
	}
	// One masker per kind, since styles may differ by kind.
	m.perKind = make([]*detect.Masker, 16)
	uniform := true
	var first detect.Style
	for k := detect.Kind(1); k < 16; k++ {
		if _, ok := detect.ParseKind(k.String()); !ok {
			continue
		}
		st, err := style(k, "")
		if err != nil {
			return nil, err
		}
		if first == 0 {
			first = st
		} else if st != first {
			uniform = false
		}
		m.perKind[k] = detect.NewMasker(detect.SetOf(k), st, []byte(c.HashKey))
	}
	if m.set != 0 {
		if uniform {
			m.content = detect.NewMasker(m.set, first, []byte(c.HashKey))
		} // else styles differ: scan kind by kind

	}
	if c.Columns == nil {
		c.Columns = defaultColumns
	}
	for _, r := range c.Columns {
		kind, ok := detect.ParseKind(r.Kind)
		if !ok {
			return nil, fmt.Errorf("pii config: columns: unknown kind %q", r.Kind)
		}
		st, err := style(kind, r.Style)
		if err != nil {
			return nil, err
		}
		if len(r.Names) == 0 {
			return nil, fmt.Errorf("pii config: columns: a rule for %s has no names", r.Kind)
		}
		for _, n := range r.Names {
			if _, err := path.Match(n, ""); err != nil {
				return nil, fmt.Errorf("pii config: columns: bad pattern %q", n)
			}
		}
		r.Names = lower(r.Names)
		r.kind = kind
		r.masker = detect.NewMasker(detect.SetOf(kind), st, []byte(c.HashKey))
		m.columns = append(m.columns, r)
	}
	return m, nil
}

func lower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

func matches(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// planColumns decides once per batch what to do with each column.
func (m *masker) planColumns(cols []abi.Column) {
	m.plan = m.plan[:0]
	for _, c := range cols {
		name := strings.ToLower(c.Name)
		p := colPlan{}
		for i := range m.columns {
			if name != "" && matches(m.columns[i].Names, name) {
				p.rule = &m.columns[i]
				break
			}
		}
		// User-defined types (composites, enums, domains) are scanned in
		// text format.
		text := scalarText[c.Type] || c.Format == 0 && (textOnly[c.Type] || c.Type >= 16384)
		if c.Format == 1 && c.Type == jsonbOID {
			text, p.jsonb = true, true
		}
		switch {
		case p.rule != nil && !text:
			// A value of another type cannot hold a mask: it is withheld.
			p.nullify = true
		case p.rule == nil && text && !matches(m.skip, name):
			p.scan = m.set != 0
		}
		m.plan = append(m.plan, p)
	}
}

// mask masks a batch.
func (m *masker) mask(b *abi.Batch, out *abi.Changes) {
	m.planColumns(b.Columns)
	m.buf = m.buf[:0]
	list := m.list[:0]
	for r := 0; r < b.Rows(); r++ {
		for c, p := range m.plan {
			if p.rule == nil && !p.scan {
				continue
			}
			v, null := b.Value(r, c)
			if null {
				continue
			}
			start := len(m.buf)
			changed := false
			switch {
			case p.nullify:
				list = append(list, pending{r, c, -1, -1})
				continue
			case p.jsonb:
				if len(v) == 0 {
					continue
				}
				m.buf = append(m.buf, v[0])
				v = v[1:]
			}
			if p.rule != nil {
				m.buf = p.rule.masker.MaskWhole(m.buf, v, p.rule.kind)
				changed = true
			} else {
				m.buf, changed = m.scan(m.buf, v)
			}
			if !changed {
				m.buf = m.buf[:start]
				continue
			}
			list = append(list, pending{r, c, start, len(m.buf)})
		}
	}
	m.list = list
	// m.buf may have moved while growing: slice it only now.
	for _, p := range list {
		if p.start < 0 {
			out.SetNull(p.row, p.col)
			continue
		}
		out.Set(p.row, p.col, m.buf[p.start:p.end:p.end])
	}
}

// scan masks v by content, appending to dst.
func (m *masker) scan(dst, v []byte) ([]byte, bool) {
	if m.content != nil {
		return m.content.Mask(dst, v)
	}
	// Styles differ by kind: apply each kind's masker in turn.
	cur := v
	changed := false
	var tmp []byte
	for k := detect.Kind(1); k < 16; k++ {
		km := m.perKind[k]
		if km == nil || !m.set.Has(k) {
			continue
		}
		var ok bool
		tmp, ok = km.Mask(tmp[:0], cur)
		if ok {
			cur = append([]byte(nil), tmp...)
			changed = true
		}
	}
	if !changed {
		return dst, false
	}
	return append(dst, cur...), true
}

// Module is pii as a guest module.
func Module() guest.Module {
	var m *masker
	return guest.Module{
		Subscribe: abi.Subscribe(abi.Rows, abi.Copy, abi.Message, abi.Notification, abi.Output),
		Init: func(raw []byte) error {
			var err error
			m, err = newMasker(raw)
			return err
		},
		Mask: func(b *abi.Batch, c *abi.Changes) { m.mask(b, c) },
	}
}
