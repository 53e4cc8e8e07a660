package sqlparse

import (
	"errors"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/encoding/protowire"
)

// libpg_query's work grows with the square of a tree's depth (its protobuf
// writer sizes every sub-tree again at each level): 1,900 chained operators,
// 4 KB of "1+1+...", take 8 ms; 20,000 take 0.2 s; 100,000 take 23 s; all of
// it under cgoMu. Left-associative chains are the only way to a deep tree
// the grammar does not bound itself (brackets stop at 10,000 levels), and a
// tree deeper than 10,000 protobuf levels cannot be decoded anyway, so
// checkDepth refuses text whose tokens promise a deep tree before
// libpg_query sees it. With these bounds a megabyte of the worst text costs
// about as much as a megabyte of "SELECT 1;" (around a second).
const (
	// depthCheckBytes: shorter text cannot nest deep enough to matter.
	depthCheckBytes = 1 << 10
	// maxOperatorDepth bounds operators chained without a ",", ";", AND,
	// OR, WHEN, THEN or ELSE between them, plus open brackets, summed over
	// the brackets open at a point. An operator adds two protobuf levels.
	maxOperatorDepth = 1000
	// maxSetDepth bounds UNION, INTERSECT, EXCEPT and JOIN in one statement
	// (each adds one protobuf level; a long UNION ALL list is legitimate).
	maxSetDepth = 9000
)

// bracket is one open bracket of checkDepth: the token that closes it and
// the counts made inside it.
type bracket struct {
	closer    pg_query.Token
	operators int
	sets      int
}

// checkDepth estimates from PostgreSQL's tokens how deep text's tree would
// be, and returns an *Error when it is too deep to parse.
func checkDepth(text string) error {
	if len(text) <= depthCheckBytes {
		return nil
	}
	buf, err := scanProtobuf(text)
	if err != nil {
		return nil // the parser reports the error with its position
	}
	stack := []bracket{{}}
	operators, sets := 0, 0 // sums over stack
	err = forEachToken(buf, func(tok pg_query.Token, start int) error {
		top := &stack[len(stack)-1]
		switch tok {
		case pg_query.Token_ASCII_40: // (
			stack = append(stack, bracket{closer: pg_query.Token_ASCII_41})
		case pg_query.Token_ASCII_91: // [
			stack = append(stack, bracket{closer: pg_query.Token_ASCII_93})
		case pg_query.Token_CASE:
			stack = append(stack, bracket{closer: pg_query.Token_END_P})
		case pg_query.Token_ASCII_41, pg_query.Token_ASCII_93, pg_query.Token_END_P:
			if len(stack) > 1 && top.closer == tok {
				operators -= top.operators
				sets -= top.sets
				stack = stack[:len(stack)-1]
			}
		case pg_query.Token_ASCII_59: // ;
			operators, sets = 0, 0
			stack = append(stack[:0], bracket{})
		case pg_query.Token_ASCII_44, pg_query.Token_AND, pg_query.Token_OR,
			pg_query.Token_WHEN, pg_query.Token_THEN, pg_query.Token_ELSE:
			operators -= top.operators
			top.operators = 0
		case pg_query.Token_UNION, pg_query.Token_INTERSECT, pg_query.Token_EXCEPT, pg_query.Token_JOIN:
			top.sets++
			sets++
		default:
			if chainToken[tok] {
				top.operators++
				operators++
			}
		}
		if operators+len(stack)-1 > maxOperatorDepth || sets > maxSetDepth {
			start = min(max(start, 0), len(text))
			return &Error{
				Message: "statement nested too deeply",
				Cursor:  utf8.RuneCountInString(text[:start]) + 1,
			}
		}
		return nil
	})
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// chainToken holds the operators that can chain into a deep tree: the
// left-associative binary ones and the prefix ones.
var chainToken = map[pg_query.Token]bool{
	pg_query.Token_Op:             true, // any operator of symbols, ||, ->, ...
	pg_query.Token_ASCII_37:       true, // %
	pg_query.Token_ASCII_42:       true, // *
	pg_query.Token_ASCII_43:       true, // +
	pg_query.Token_ASCII_45:       true, // -
	pg_query.Token_ASCII_47:       true, // /
	pg_query.Token_ASCII_60:       true, // <
	pg_query.Token_ASCII_61:       true, // =
	pg_query.Token_ASCII_62:       true, // >
	pg_query.Token_ASCII_94:       true, // ^
	pg_query.Token_TYPECAST:       true, // ::
	pg_query.Token_LESS_EQUALS:    true,
	pg_query.Token_GREATER_EQUALS: true,
	pg_query.Token_NOT_EQUALS:     true,
	pg_query.Token_NOT:            true,
	pg_query.Token_IS:             true,
	pg_query.Token_ISNULL:         true,
	pg_query.Token_NOTNULL:        true,
	pg_query.Token_LIKE:           true,
	pg_query.Token_ILIKE:          true,
	pg_query.Token_SIMILAR:        true,
	pg_query.Token_BETWEEN:        true,
	pg_query.Token_IN_P:           true,
	pg_query.Token_COLLATE:        true,
	pg_query.Token_AT:             true,
	pg_query.Token_OPERATOR:       true,
}

// forEachToken calls fn with each token of a protobuf ScanResult, without
// decoding the result into messages (a megabyte of SQL has some 300,000
// tokens). It stops at the first error fn returns.
func forEachToken(buf []byte, fn func(tok pg_query.Token, start int) error) error {
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return protowire.ParseError(n)
		}
		buf = buf[n:]
		if num != 2 || typ != protowire.BytesType { // not ScanResult.tokens
			n = protowire.ConsumeFieldValue(num, typ, buf)
			if n < 0 {
				return protowire.ParseError(n)
			}
			buf = buf[n:]
			continue
		}
		msg, n := protowire.ConsumeBytes(buf)
		if n < 0 {
			return protowire.ParseError(n)
		}
		buf = buf[n:]
		var tok pg_query.Token
		start := 0
		for len(msg) > 0 {
			fnum, ftyp, m := protowire.ConsumeTag(msg)
			if m < 0 {
				return protowire.ParseError(m)
			}
			msg = msg[m:]
			if ftyp == protowire.VarintType && (fnum == 1 || fnum == 4) { // start, token
				v, m := protowire.ConsumeVarint(msg)
				if m < 0 {
					return protowire.ParseError(m)
				}
				msg = msg[m:]
				if fnum == 1 {
					start = int(int32(v))
				} else {
					tok = pg_query.Token(int32(v))
				}
				continue
			}
			m = protowire.ConsumeFieldValue(fnum, ftyp, msg)
			if m < 0 {
				return protowire.ParseError(m)
			}
			msg = msg[m:]
		}
		if err := fn(tok, start); err != nil {
			return err
		}
	}
	return nil
}
