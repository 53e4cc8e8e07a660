package sqlparse

import (
	"fmt"
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The walk goes over libpg_query's protobuf bytes with a table built from
// pg_query's descriptors, instead of decoding the whole tree into messages
// and walking it with protoreflect: that took two thirds of the Go time of a
// short statement. Only the messages the analysis reads are decoded.

// maxTreeDepth bounds the nesting of the walk, as protobuf's decoder bounds
// its own recursion.
const maxTreeDepth = 10000

// msgInfo describes one pg_query message type.
type msgInfo struct {
	typ       protoreflect.MessageType
	children  []*msgInfo // by field number: the type of each message field
	statement bool       // statementKind names it
	special   special
}

type special uint8

const (
	specialNone special = iota
	specialRangeVar
	specialFuncCall
	specialDoStmt
	specialDropStmt
	specialCopyStmt
)

var (
	infos = map[protoreflect.FullName]*msgInfo{}

	nodeInfo *msgInfo

	fieldParseResultStmts = field("ParseResult", "stmts")
	fieldRawStmtStmt      = field("RawStmt", "stmt")
	fieldNodeString       = field("Node", "string")
	fieldNodeList         = field("Node", "list")
	fieldStringSval       = field("String", "sval")
	fieldListItems        = field("List", "items")
	fieldRangeVarCatalog  = field("RangeVar", "catalogname")
	fieldRangeVarSchema   = field("RangeVar", "schemaname")
	fieldRangeVarRel      = field("RangeVar", "relname")
	fieldFuncCallName     = field("FuncCall", "funcname")
	fieldDropStmtObjects  = field("DropStmt", "objects")
	fieldCopyStmtQuery    = field("CopyStmt", "query")
	fieldCopyStmtWhere    = field("CopyStmt", "where_clause")
)

func init() {
	var all []protoreflect.MessageDescriptor
	var collect func(protoreflect.MessageDescriptors)
	collect = func(msgs protoreflect.MessageDescriptors) {
		for i := 0; i < msgs.Len(); i++ {
			all = append(all, msgs.Get(i))
			collect(msgs.Get(i).Messages())
		}
	}
	collect(pg_query.File_pg_query_proto.Messages())
	for _, md := range all {
		info := &msgInfo{}
		if !md.IsMapEntry() {
			mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
			if err != nil {
				panic(fmt.Sprintf("sqlparse: pg_query message %s: %v", md.FullName(), err))
			}
			info.typ = mt
			kind, _ := statementKind(mt.Zero().Interface())
			info.statement = kind != ""
		}
		infos[md.FullName()] = info
	}
	for _, md := range all {
		info := infos[md.FullName()]
		fields := md.Fields()
		for j := 0; j < fields.Len(); j++ {
			fd := fields.Get(j)
			if fd.Kind() != protoreflect.MessageKind {
				continue
			}
			child, ok := infos[fd.Message().FullName()]
			if !ok {
				panic(fmt.Sprintf("sqlparse: pg_query field %s has no message type", fd.FullName()))
			}
			for int(fd.Number()) >= len(info.children) {
				info.children = append(info.children, nil)
			}
			info.children[fd.Number()] = child
		}
	}
	infoOf := func(name string) *msgInfo { return infos[protoreflect.FullName("pg_query."+name)] }
	nodeInfo = infoOf("Node")
	infoOf("RangeVar").special = specialRangeVar
	infoOf("FuncCall").special = specialFuncCall
	infoOf("DoStmt").special = specialDoStmt
	infoOf("DropStmt").special = specialDropStmt
	infoOf("CopyStmt").special = specialCopyStmt
}

// field returns the number of a field of a pg_query message.
func field(message, name string) protowire.Number {
	md := pg_query.File_pg_query_proto.Messages().ByName(protoreflect.Name(message))
	if md == nil {
		panic("sqlparse: pg_query has no message " + message)
	}
	fd := md.Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		panic("sqlparse: pg_query message " + message + " has no field " + name)
	}
	return fd.Number()
}

// malformed is the error for a tree the walk cannot read, which libpg_query
// does not produce.
func malformed() error {
	return &Error{Message: "statement cannot be analysed: malformed parse tree"}
}

// forEachField calls fn with each field of a protobuf message.
func forEachField(buf []byte, fn func(num protowire.Number, typ protowire.Type, value []byte) error) error {
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return malformed()
		}
		buf = buf[n:]
		var value []byte
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(buf)
			if m < 0 {
				return malformed()
			}
			value, n = v, m
		} else {
			n = protowire.ConsumeFieldValue(num, typ, buf)
			if n < 0 {
				return malformed()
			}
			value = buf[:n]
		}
		buf = buf[n:]
		if err := fn(num, typ, value); err != nil {
			return err
		}
	}
	return nil
}

// child is the message type of field num of info, nil when it is not a
// message field.
func (info *msgInfo) child(num protowire.Number, typ protowire.Type) *msgInfo {
	if typ != protowire.BytesType || int(num) >= len(info.children) {
		return nil
	}
	return info.children[num]
}

// forEachStatement calls fn with each top-level statement of a ParseResult:
// the bytes and type of the message its RawStmt's Node holds.
func forEachStatement(tree []byte, fn func(stmt []byte, info *msgInfo) error) error {
	return forEachField(tree, func(num protowire.Number, typ protowire.Type, raw []byte) error {
		if num != fieldParseResultStmts || typ != protowire.BytesType {
			return nil
		}
		return forEachField(raw, func(num protowire.Number, typ protowire.Type, node []byte) error {
			if num != fieldRawStmtStmt || typ != protowire.BytesType {
				return nil
			}
			stmt, info, err := nodeContent(node)
			if err != nil || info == nil {
				return err
			}
			return fn(stmt, info)
		})
	})
}

// nodeContent returns the message a Node holds; info is nil for an empty
// Node.
func nodeContent(node []byte) (content []byte, info *msgInfo, err error) {
	err = forEachField(node, func(num protowire.Number, typ protowire.Type, value []byte) error {
		if c := nodeInfo.child(num, typ); c != nil {
			content, info = value, c
		}
		return nil
	})
	return content, info, err
}

// shallow decodes the scalar fields of a message; its message fields are
// present but empty, so that presence and list lengths still show.
func shallow(buf []byte, info *msgInfo) (proto.Message, error) {
	out := make([]byte, 0, 64)
	err := forEachField(buf, func(num protowire.Number, typ protowire.Type, value []byte) error {
		out = protowire.AppendTag(out, num, typ)
		switch {
		case info.child(num, typ) != nil:
			out = protowire.AppendVarint(out, 0)
		case typ == protowire.BytesType:
			out = protowire.AppendBytes(out, value)
		default:
			out = append(out, value...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m := info.typ.New().Interface()
	if err := proto.Unmarshal(out, m); err != nil {
		return nil, malformed()
	}
	return m, nil
}

// without returns a message without the fields numbered drop.
func without(buf []byte, drop ...protowire.Number) []byte {
	out := make([]byte, 0, len(buf))
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return out
		}
		m := protowire.ConsumeFieldValue(num, typ, buf[n:])
		if m < 0 {
			return out
		}
		if !slices.Contains(drop, num) {
			out = append(out, buf[:n+m]...)
		}
		buf = buf[n+m:]
	}
	return out
}

// stringField returns string field num of a message.
func stringField(buf []byte, want protowire.Number) (s string, err error) {
	err = forEachField(buf, func(num protowire.Number, typ protowire.Type, value []byte) error {
		if num == want && typ == protowire.BytesType {
			s = string(value)
		}
		return nil
	})
	return s, err
}

// nodeString returns the text of a Node holding a String, ok false for any
// other Node.
func nodeString(node []byte) (s string, ok bool, err error) {
	err = forEachField(node, func(num protowire.Number, typ protowire.Type, value []byte) error {
		if num == fieldNodeString && typ == protowire.BytesType {
			var ferr error
			s, ferr = stringField(value, fieldStringSval)
			ok = ferr == nil
			return ferr
		}
		return nil
	})
	return s, ok, err
}

// stringList returns the Strings among the Nodes of repeated field want of a
// message.
func stringList(buf []byte, want protowire.Number) (parts []string, err error) {
	err = forEachField(buf, func(num protowire.Number, typ protowire.Type, node []byte) error {
		if num != want || typ != protowire.BytesType {
			return nil
		}
		s, ok, err := nodeString(node)
		if ok {
			parts = append(parts, s)
		}
		return err
	})
	return parts, err
}

// walker records what the messages of one statement do.
type walker struct {
	b       *bounds
	f       *facts
	doDepth int           // DO blocks around the statement
	root    proto.Message // the statement, decoded shallow
}

// walk visits a message and every message below it. root marks the
// top-level statement, whose own kind the caller records.
func (w *walker) walk(buf []byte, info *msgInfo, depth int, root bool) error {
	if depth > maxTreeDepth {
		return &Error{Message: "statement nested too deeply"}
	}
	switch info.special {
	case specialRangeVar:
		var catalog, schema, rel string
		err := forEachField(buf, func(num protowire.Number, typ protowire.Type, value []byte) error {
			if typ == protowire.BytesType {
				switch num {
				case fieldRangeVarCatalog:
					catalog = string(value)
				case fieldRangeVarSchema:
					schema = string(value)
				case fieldRangeVarRel:
					rel = string(value)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if name := qualifiedName(catalog, schema, rel); name != "" {
			w.f.tables[name] = struct{}{}
		}
	case specialFuncCall:
		parts, err := stringList(buf, fieldFuncCallName)
		if err != nil {
			return err
		}
		if name := qualifiedName(parts...); name != "" {
			w.f.functions[name] = struct{}{}
		}
	case specialDoStmt:
		var do pg_query.DoStmt
		if err := proto.Unmarshal(buf, &do); err != nil {
			return malformed()
		}
		w.b.doBlock(&do, w.f, w.doDepth)
	case specialCopyStmt:
		if root {
			// The query and WHERE clause are walked below, not decoded.
			var c pg_query.CopyStmt
			if err := proto.Unmarshal(without(buf, fieldCopyStmtQuery, fieldCopyStmtWhere), &c); err != nil {
				return malformed()
			}
			w.f.copy = copyOf(&c)
		}
	}
	if info.statement {
		m, err := shallow(buf, info)
		if err != nil {
			return err
		}
		if root {
			w.root = m
		} else {
			recordKind(m, w.f)
		}
		if d, ok := m.(*pg_query.DropStmt); ok && relationTypes[d.GetRemoveType()] {
			if err := w.dropped(buf); err != nil {
				return err
			}
		}
	}
	return forEachField(buf, func(num protowire.Number, typ protowire.Type, value []byte) error {
		if c := info.child(num, typ); c != nil {
			return w.walk(value, c, depth+1, false)
		}
		return nil
	})
}

// dropped records the relations a DROP names (lists of Strings, not
// RangeVars).
func (w *walker) dropped(drop []byte) error {
	return forEachField(drop, func(num protowire.Number, typ protowire.Type, node []byte) error {
		if num != fieldDropStmtObjects || typ != protowire.BytesType {
			return nil
		}
		return forEachField(node, func(num protowire.Number, typ protowire.Type, list []byte) error {
			if num != fieldNodeList || typ != protowire.BytesType {
				return nil
			}
			parts, err := stringList(list, fieldListItems)
			if err == nil && len(parts) > 0 {
				w.f.tables[qualifiedName(parts...)] = struct{}{}
			}
			return err
		})
	})
}
