package sqlparse

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// strs is a shorthand for the sorted string lists of a Statement.
func strs(s ...string) []string { return s }

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want Statement
	}{
		// Data.
		{"select", "SELECT abalance FROM pgbench_accounts WHERE aid = 42",
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Tables: strs("pgbench_accounts")}},
		{"values", "VALUES (1), (2)",
			Statement{Kind: "SELECT", Kinds: strs("SELECT")}},
		{"table", "TABLE t",
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Tables: strs("t")}},
		{"insert values", "INSERT INTO t (a) VALUES (1)",
			Statement{Kind: "INSERT", Kinds: strs("INSERT"), Tables: strs("t")}},
		{"insert values with sub-query", "INSERT INTO t VALUES ((SELECT max(a) FROM u))",
			Statement{Kind: "INSERT", Kinds: strs("INSERT", "SELECT"), Tables: strs("t", "u"), Functions: strs("max")}},
		{"insert select", "INSERT INTO t SELECT * FROM u",
			Statement{Kind: "INSERT", Kinds: strs("INSERT", "SELECT"), Tables: strs("t", "u")}},
		{"update", "UPDATE t SET a = 1 FROM u WHERE t.id = u.id",
			Statement{Kind: "UPDATE", Kinds: strs("UPDATE"), Tables: strs("t", "u")}},
		{"delete", "DELETE FROM t WHERE a IN (SELECT a FROM u)",
			Statement{Kind: "DELETE", Kinds: strs("DELETE", "SELECT"), Tables: strs("t", "u")}},
		{"merge", "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
			Statement{Kind: "MERGE", Kinds: strs("MERGE"), Tables: strs("s", "t")}},
		{"select into creates a table", "SELECT a INTO t2 FROM t",
			Statement{Kind: "CREATE", Object: "TABLE", Kinds: strs("CREATE", "SELECT"), Tables: strs("t", "t2")}},
		{"truncate", "TRUNCATE a, s.b",
			Statement{Kind: "TRUNCATE", Kinds: strs("TRUNCATE"), Tables: strs("a", "s.b")}},
		{"lock", "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
			Statement{Kind: "LOCK", Kinds: strs("LOCK"), Tables: strs("t")}},

		// Nested statements.
		{"cte with delete", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
			Statement{Kind: "SELECT", Kinds: strs("DELETE", "SELECT"), Tables: strs("d", "t")}},
		{"prepare delete", "PREPARE x AS DELETE FROM t WHERE id = $1",
			Statement{Kind: "PREPARE", Kinds: strs("DELETE", "PREPARE"), Tables: strs("t")}},
		{"execute", "EXECUTE x(1)",
			Statement{Kind: "EXECUTE", Kinds: strs("EXECUTE")}},
		{"deallocate", "DEALLOCATE ALL",
			Statement{Kind: "DEALLOCATE", Kinds: strs("DEALLOCATE")}},
		{"explain analyze delete", "EXPLAIN ANALYZE DELETE FROM t",
			Statement{Kind: "EXPLAIN", Kinds: strs("DELETE", "EXPLAIN"), Tables: strs("t")}},
		{"create table as", "CREATE TABLE t2 AS SELECT * FROM t",
			Statement{Kind: "CREATE", Object: "TABLE", Kinds: strs("CREATE", "SELECT"), Tables: strs("t", "t2")}},
		{"create table as execute", "CREATE TABLE t2 AS EXECUTE x",
			Statement{Kind: "CREATE", Object: "TABLE", Kinds: strs("CREATE", "EXECUTE"), Tables: strs("t2")}},
		{"declare cursor", "DECLARE c CURSOR FOR SELECT * FROM t",
			Statement{Kind: "DECLARE", Kinds: strs("DECLARE", "SELECT"), Tables: strs("t")}},
		{"fetch", "FETCH 10 FROM c", Statement{Kind: "FETCH", Kinds: strs("FETCH")}},
		{"move", "MOVE 10 IN c", Statement{Kind: "MOVE", Kinds: strs("MOVE")}},
		{"close", "CLOSE c", Statement{Kind: "CLOSE", Kinds: strs("CLOSE")}},
		{"create view", "CREATE VIEW v AS SELECT * FROM t",
			Statement{Kind: "CREATE", Object: "VIEW", Kinds: strs("CREATE", "SELECT"), Tables: strs("t", "v")}},
		{"create rule", "CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM u",
			Statement{Kind: "CREATE", Object: "RULE", Kinds: strs("CREATE", "DELETE"), Tables: strs("t", "u")}},

		// DDL.
		{"create table", "CREATE TABLE s.t (a int REFERENCES u)",
			Statement{Kind: "CREATE", Object: "TABLE", Kinds: strs("CREATE"), Tables: strs("s.t", "u")}},
		{"create index", "CREATE INDEX i ON t (lower(a))",
			Statement{Kind: "CREATE", Object: "INDEX", Kinds: strs("CREATE"), Tables: strs("t"), Functions: strs("lower")}},
		{"create function", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
			Statement{Kind: "CREATE", Object: "FUNCTION", Kinds: strs("CREATE")}},
		{"create procedure", "CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'",
			Statement{Kind: "CREATE", Object: "PROCEDURE", Kinds: strs("CREATE")}},
		{"create function with sql body", "CREATE FUNCTION f() RETURNS void BEGIN ATOMIC DELETE FROM t; END",
			Statement{Kind: "CREATE", Object: "FUNCTION", Kinds: strs("CREATE", "DELETE"), Tables: strs("t")}},
		{"create role", "CREATE ROLE r LOGIN", Statement{Kind: "CREATE", Object: "ROLE", Kinds: strs("CREATE")}},
		{"create user", "CREATE USER u", Statement{Kind: "CREATE", Object: "ROLE", Kinds: strs("CREATE")}},
		{"create extension", "CREATE EXTENSION dblink", Statement{Kind: "CREATE", Object: "EXTENSION", Kinds: strs("CREATE")}},
		{"create schema with table", "CREATE SCHEMA s CREATE TABLE t (a int)",
			Statement{Kind: "CREATE", Object: "SCHEMA", Kinds: strs("CREATE"), Tables: strs("t")}},
		{"create materialized view", "CREATE MATERIALIZED VIEW mv AS SELECT 1",
			Statement{Kind: "CREATE", Object: "MATERIALIZED VIEW", Kinds: strs("CREATE", "SELECT"), Tables: strs("mv")}},
		{"alter table", "ALTER TABLE t ADD COLUMN b int",
			Statement{Kind: "ALTER", Object: "TABLE", Kinds: strs("ALTER"), Tables: strs("t")}},
		{"alter table rename column", "ALTER TABLE t RENAME COLUMN a TO b",
			Statement{Kind: "ALTER", Object: "TABLE", Kinds: strs("ALTER"), Tables: strs("t")}},
		{"alter trigger rename", "ALTER TRIGGER tr ON t RENAME TO tr2",
			Statement{Kind: "ALTER", Object: "TRIGGER", Kinds: strs("ALTER"), Tables: strs("t")}},
		{"alter role", "ALTER ROLE r SUPERUSER", Statement{Kind: "ALTER", Object: "ROLE", Kinds: strs("ALTER")}},
		{"alter role set", "ALTER ROLE r SET search_path = x", Statement{Kind: "ALTER", Object: "ROLE", Kinds: strs("ALTER")}},
		{"alter system", "ALTER SYSTEM SET work_mem = '1GB'", Statement{Kind: "ALTER", Object: "SYSTEM", Kinds: strs("ALTER")}},
		{"alter function owner", "ALTER FUNCTION f() OWNER TO r", Statement{Kind: "ALTER", Object: "FUNCTION", Kinds: strs("ALTER")}},
		{"drop table", "DROP TABLE IF EXISTS a, s.b CASCADE",
			Statement{Kind: "DROP", Object: "TABLE", Kinds: strs("DROP"), Tables: strs("a", "s.b")}},
		{"drop index", "DROP INDEX CONCURRENTLY i", Statement{Kind: "DROP", Object: "INDEX", Kinds: strs("DROP"), Tables: strs("i")}},
		{"drop function", "DROP FUNCTION f(int)", Statement{Kind: "DROP", Object: "FUNCTION", Kinds: strs("DROP")}},
		{"drop materialized view", "DROP MATERIALIZED VIEW mv",
			Statement{Kind: "DROP", Object: "MATERIALIZED VIEW", Kinds: strs("DROP"), Tables: strs("mv")}},
		{"drop role", "DROP ROLE r", Statement{Kind: "DROP", Object: "ROLE", Kinds: strs("DROP")}},
		{"drop database", "DROP DATABASE d", Statement{Kind: "DROP", Object: "DATABASE", Kinds: strs("DROP")}},
		{"drop owned", "DROP OWNED BY r", Statement{Kind: "DROP", Object: "OWNED", Kinds: strs("DROP")}},
		{"comment", "COMMENT ON TABLE t IS 'x'", Statement{Kind: "COMMENT", Object: "TABLE", Kinds: strs("COMMENT")}},

		// Privileges.
		{"grant", "GRANT SELECT ON TABLE s.t TO bob",
			Statement{Kind: "GRANT", Object: "TABLE", Kinds: strs("GRANT"), Tables: strs("s.t")}},
		{"grant role", "GRANT admin TO bob", Statement{Kind: "GRANT", Object: "ROLE", Kinds: strs("GRANT")}},
		{"revoke", "REVOKE ALL ON SCHEMA s FROM bob", Statement{Kind: "REVOKE", Object: "SCHEMA", Kinds: strs("REVOKE")}},
		{"revoke role", "REVOKE admin FROM bob", Statement{Kind: "REVOKE", Object: "ROLE", Kinds: strs("REVOKE")}},
		{"alter default privileges", "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob",
			Statement{Kind: "ALTER", Object: "DEFAULT PRIVILEGES", Kinds: strs("ALTER", "GRANT")}},

		// Transactions and session.
		{"begin", "BEGIN ISOLATION LEVEL SERIALIZABLE", Statement{Kind: "BEGIN", Kinds: strs("BEGIN")}},
		{"start transaction", "START TRANSACTION", Statement{Kind: "BEGIN", Kinds: strs("BEGIN")}},
		{"commit", "COMMIT", Statement{Kind: "COMMIT", Kinds: strs("COMMIT")}},
		{"end", "END", Statement{Kind: "COMMIT", Kinds: strs("COMMIT")}},
		{"rollback", "ROLLBACK", Statement{Kind: "ROLLBACK", Kinds: strs("ROLLBACK")}},
		{"abort", "ABORT", Statement{Kind: "ROLLBACK", Kinds: strs("ROLLBACK")}},
		{"savepoint", "SAVEPOINT s", Statement{Kind: "SAVEPOINT", Kinds: strs("SAVEPOINT")}},
		{"release", "RELEASE SAVEPOINT s", Statement{Kind: "RELEASE", Kinds: strs("RELEASE")}},
		{"rollback to", "ROLLBACK TO SAVEPOINT s", Statement{Kind: "ROLLBACK", Object: "SAVEPOINT", Kinds: strs("ROLLBACK")}},
		{"prepare transaction", "PREPARE TRANSACTION 'g'", Statement{Kind: "PREPARE", Object: "TRANSACTION", Kinds: strs("PREPARE")}},
		{"commit prepared", "COMMIT PREPARED 'g'", Statement{Kind: "COMMIT", Object: "PREPARED", Kinds: strs("COMMIT")}},
		{"set", "SET search_path = x", Statement{Kind: "SET", Kinds: strs("SET")}},
		{"set role", "SET ROLE admin", Statement{Kind: "SET", Kinds: strs("SET")}},
		{"set constraints", "SET CONSTRAINTS ALL DEFERRED", Statement{Kind: "SET", Object: "CONSTRAINTS", Kinds: strs("SET")}},
		{"reset", "RESET ALL", Statement{Kind: "RESET", Kinds: strs("RESET")}},
		{"show", "SHOW search_path", Statement{Kind: "SHOW", Kinds: strs("SHOW")}},
		{"discard", "DISCARD ALL", Statement{Kind: "DISCARD", Kinds: strs("DISCARD")}},
		{"listen", "LISTEN ch", Statement{Kind: "LISTEN", Kinds: strs("LISTEN")}},
		{"notify", "NOTIFY ch, 'x'", Statement{Kind: "NOTIFY", Kinds: strs("NOTIFY")}},
		{"unlisten", "UNLISTEN *", Statement{Kind: "UNLISTEN", Kinds: strs("UNLISTEN")}},
		{"call", "CALL s.p(1, now())",
			Statement{Kind: "CALL", Kinds: strs("CALL"), Functions: strs("now", "s.p")}},
		{"load", "LOAD 'plugin'", Statement{Kind: "LOAD", Kinds: strs("LOAD")}},

		// Maintenance.
		{"vacuum", "VACUUM (ANALYZE) t", Statement{Kind: "VACUUM", Kinds: strs("VACUUM"), Tables: strs("t")}},
		{"analyze", "ANALYZE s.t", Statement{Kind: "ANALYZE", Kinds: strs("ANALYZE"), Tables: strs("s.t")}},
		{"cluster", "CLUSTER t USING i", Statement{Kind: "CLUSTER", Kinds: strs("CLUSTER"), Tables: strs("t")}},
		{"reindex", "REINDEX TABLE t", Statement{Kind: "REINDEX", Object: "TABLE", Kinds: strs("REINDEX"), Tables: strs("t")}},
		{"checkpoint", "CHECKPOINT", Statement{Kind: "CHECKPOINT", Kinds: strs("CHECKPOINT")}},
		{"refresh", "REFRESH MATERIALIZED VIEW mv",
			Statement{Kind: "REFRESH", Object: "MATERIALIZED VIEW", Kinds: strs("REFRESH"), Tables: strs("mv")}},

		// COPY.
		{"copy to stdout csv", "COPY t(a,b) TO STDOUT WITH (FORMAT csv)",
			Statement{Kind: "COPY", Kinds: strs("COPY"), Tables: strs("t"),
				Copy: &Copy{Stdio: true, Relation: "t", Columns: strs("a", "b"), Format: "csv"}}},
		{"copy query to stdout", "COPY (SELECT a FROM s.t WHERE b > 1) TO STDOUT",
			Statement{Kind: "COPY", Kinds: strs("COPY", "SELECT"), Tables: strs("s.t"),
				Copy: &Copy{Stdio: true, Format: "text"}}},
		{"copy delete returning", "COPY (DELETE FROM t RETURNING *) TO STDOUT (FORMAT binary)",
			Statement{Kind: "COPY", Kinds: strs("COPY", "DELETE"), Tables: strs("t"),
				Copy: &Copy{Stdio: true, Format: "binary"}}},
		{"copy from program", "COPY t FROM PROGRAM 'x'",
			Statement{Kind: "COPY", Kinds: strs("COPY"), Tables: strs("t"),
				Copy: &Copy{From: true, Program: true, Relation: "t", Format: "text"}}},
		{"copy from file", "COPY t FROM '/tmp/f'",
			Statement{Kind: "COPY", Kinds: strs("COPY"), Tables: strs("t"),
				Copy: &Copy{From: true, Relation: "t", Format: "text"}}},
		{"copy from stdin old syntax", "COPY s.t FROM STDIN CSV",
			Statement{Kind: "COPY", Kinds: strs("COPY"), Tables: strs("s.t"),
				Copy: &Copy{From: true, Stdio: true, Relation: "s.t", Format: "csv"}}},
		{"copy from with where", "COPY t (a) FROM STDIN WITH (FORMAT csv) WHERE a > length('x')",
			Statement{Kind: "COPY", Kinds: strs("COPY"), Tables: strs("t"), Functions: strs("length"),
				Copy: &Copy{From: true, Stdio: true, Relation: "t", Columns: strs("a"), Format: "csv"}}},
		{"copy binary old syntax", "COPY BINARY t TO '/tmp/f'",
			Statement{Kind: "COPY", Kinds: strs("COPY"), Tables: strs("t"),
				Copy: &Copy{Relation: "t", Format: "binary"}}},

		// Functions.
		{"pg_read_file", "SELECT pg_read_file('/etc/passwd')",
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Functions: strs("pg_read_file")}},
		{"pg_read_file qualified", "SELECT pg_catalog.pg_read_file('/etc/passwd')",
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Functions: strs("pg_catalog.pg_read_file")}},
		{"lo_export", "SELECT lo_export(16385, '/tmp/x')",
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Functions: strs("lo_export")}},
		{"dblink in from", "SELECT * FROM dblink('host=x', 'SELECT 1') AS r(a int)",
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Functions: strs("dblink")}},
		{"dblink qualified", "SELECT public.dblink_exec('host=x', 'DROP TABLE t')",
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Functions: strs("public.dblink_exec")}},
		{"nested calls", "SELECT lower(upper(btrim(a))) FROM t WHERE length(concat(a, b)) > 1",
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Tables: strs("t"),
				Functions: strs("btrim", "concat", "length", "lower", "upper")}},
		{"sql syntax function", "SELECT extract(year FROM now())",
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Functions: strs("now", "pg_catalog.extract")}},

		// Names.
		{"quoted identifiers keep case", `SELECT * FROM "MyTable" JOIN MyOther ON true`,
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Tables: strs("MyTable", "myother")}},
		{"schema qualified", `SELECT * FROM Public.T, "Sales"."Orders", db.s.t`,
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Tables: strs("Sales.Orders", "db.s.t", "public.t")}},
		{"dot inside a quoted name", `SELECT * FROM "a.b", a.b, "x""y".z`,
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Tables: strs(`"a.b"`, `"x""y".z`, "a.b")}},
		{"quoted function", `SELECT "MyFunc"(1), s."F"()`,
			Statement{Kind: "SELECT", Kinds: strs("SELECT"), Functions: strs("MyFunc", "s.F")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.sql)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.sql, err)
			}
			if len(got) != 1 {
				t.Fatalf("Parse(%q) = %d statements, want 1", tc.sql, len(got))
			}
			if !reflect.DeepEqual(got[0], tc.want) {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tc.sql, show(got[0]), show(tc.want))
			}
		})
	}
}

func TestParseDo(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want Statement
	}{
		{"plain sql", `DO $$
DECLARE
  n int;
  c CURSOR FOR SELECT * FROM cursor_t;
BEGIN
  PERFORM pg_sleep(1);
  DELETE FROM audit.log WHERE ts < now();
  SELECT count(*) INTO n FROM accounts -- trailing comment
  ;
  IF (SELECT max(a) FROM cond_t) > 0 THEN
    n := lower('a')::int;
  END IF;
  INSERT INTO s.t VALUES (n);
END $$`,
			Statement{Kind: "DO",
				Kinds:     strs("DELETE", "DO", "INSERT", "SELECT"),
				Tables:    strs("accounts", "audit.log", "cond_t", "cursor_t", "s.t"),
				Functions: strs("count", "lower", "max", "now", "pg_sleep")}},
		{"expression only: no SELECT", `DO $$ DECLARE x text; BEGIN x := md5('a'); IF length(x) > 1 THEN RAISE NOTICE '%', x; END IF; END $$`,
			Statement{Kind: "DO", Kinds: strs("DO"), Functions: strs("length", "md5")}},
		{"assignment target with call", `DO $$ DECLARE a int[]; BEGIN a[f()] = g(); END $$`,
			Statement{Kind: "DO", Kinds: strs("DO"), Functions: strs("f", "g")}},
		{"execute", `DO $$ BEGIN EXECUTE 'DROP TABLE ' || quote_ident('t'); END $$`,
			Statement{Kind: "DO", Kinds: strs("DO"), Functions: strs("quote_ident"), Dynamic: true}},
		{"for in execute", `DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT 1' LOOP END LOOP; END $$`,
			Statement{Kind: "DO", Kinds: strs("DO"), Dynamic: true}},
		{"open for execute", `DO $$ DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE 'SELECT 1'; END $$`,
			Statement{Kind: "DO", Kinds: strs("DO"), Dynamic: true}},
		{"plpython", `DO LANGUAGE plpython3u $$ import os; os.system('id') $$`,
			Statement{Kind: "DO", Kinds: strs("DO"), Dynamic: true}},
		{"language written in capitals folds", `DO LANGUAGE PLPGSQL $$ BEGIN DELETE FROM t; END $$`,
			Statement{Kind: "DO", Kinds: strs("DELETE", "DO"), Tables: strs("t")}},
		{"quoted language is taken as written", `DO LANGUAGE 'PLPGSQL' $$ BEGIN DELETE FROM t; END $$`,
			Statement{Kind: "DO", Kinds: strs("DO"), Dynamic: true}},
		{"body does not compile", `DO $$ BEGIN this is not plpgsql; END $$`,
			Statement{Kind: "DO", Kinds: strs("DO"), Dynamic: true}},
		{"escape string body", `DO E'BEGIN DELETE FROM \"T\"; END'`,
			Statement{Kind: "DO", Kinds: strs("DELETE", "DO"), Tables: strs("T")}},
		{"body holding the dollar tag", `DO $x$ BEGIN RAISE NOTICE '$gw$'; DELETE FROM t; END $x$`,
			Statement{Kind: "DO", Kinds: strs("DELETE", "DO"), Tables: strs("t")}},
		{"transaction control", `DO $$ BEGIN INSERT INTO t VALUES (1); COMMIT; ROLLBACK; END $$`,
			Statement{Kind: "DO", Kinds: strs("COMMIT", "DO", "INSERT", "ROLLBACK"), Tables: strs("t")}},
		{"copy program", `DO $$ BEGIN COPY t TO '/tmp/a'; COPY t FROM PROGRAM 'id'; END $$`,
			Statement{Kind: "DO", Kinds: strs("COPY", "DO"), Tables: strs("t"),
				Copy: &Copy{From: true, Program: true, Relation: "t", Format: "text"}}},
		{"nested do", `DO $a$ BEGIN DO $b$ BEGIN DROP TABLE inner_t; END $b$; END $a$`,
			Statement{Kind: "DO", Kinds: strs("DO", "DROP"), Object: "", Tables: strs("inner_t")}},
		{"nested do with execute", `DO $a$ BEGIN DO $b$ BEGIN EXECUTE 'x'; END $b$; END $a$`,
			Statement{Kind: "DO", Kinds: strs("DO"), Dynamic: true}},
		{"call in body", `DO $$ BEGIN CALL s.p(); END $$`,
			Statement{Kind: "DO", Kinds: strs("CALL", "DO"), Functions: strs("s.p")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.sql)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("got %d statements, want 1", len(got))
			}
			if !reflect.DeepEqual(got[0], tc.want) {
				t.Errorf("Parse(%q)\n got %s\nwant %s", tc.sql, show(got[0]), show(tc.want))
			}
		})
	}
}

func TestParseDoDepthBound(t *testing.T) {
	nested := func(levels int) string {
		// Each level nests the next in a dollar quote of its own.
		sql := "DELETE FROM deepest"
		for i := 0; i < levels; i++ {
			tag := fmt.Sprintf("$t%d$", i)
			sql = "DO " + tag + " BEGIN " + sql + "; END " + tag
		}
		return sql
	}
	got, err := Parse(nested(maxDoDepth))
	if err != nil {
		t.Fatal(err)
	}
	want := Statement{Kind: "DO", Kinds: strs("DELETE", "DO"), Tables: strs("deepest")}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("DO nested %d deep = %s, want %s", maxDoDepth, show(got[0]), show(want))
	}
	got, err = Parse(nested(maxDoDepth + 1))
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Dynamic {
		t.Errorf("DO nested %d deep: Dynamic = false, want true", maxDoDepth+1)
	}
}

// TestParseDeep covers text whose tree would be deep: libpg_query needs
// a deep C stack and quadratic time for it (see bigstack.go and depth.go).
func TestParseDeep(t *testing.T) {
	tooDeep := []struct{ name, sql string }{
		{"operator chain", "SELECT 1" + strings.Repeat("+1", 100000)},
		{"cast chain", "SELECT 1" + strings.Repeat("::int", 5000)},
		{"prefix chain", "SELECT " + strings.Repeat("- ", 5000) + "1"},
		{"not chain", "SELECT " + strings.Repeat("NOT ", 5000) + "true"},
		{"nested sub-queries", "SELECT " + strings.Repeat("(SELECT ", 2000) + "1" + strings.Repeat(")", 2000)},
		{"union chain", strings.Repeat("SELECT 1 UNION ", maxSetDepth+1) + "SELECT 1"},
		{"chain in a second statement", "SELECT 1; SELECT 1" + strings.Repeat("*1", 50000)},
	}
	for _, tc := range tooDeep {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.sql)
			var pe *Error
			if !errors.As(err, &pe) || !strings.Contains(pe.Message, "deep") && !strings.Contains(pe.Message, "memory exhausted") {
				t.Errorf("Parse = %v, want an *Error about depth", err)
			}
		})
	}

	// Deep trees are Dynamic inside a DO body.
	got, err := Parse("DO $$ BEGIN PERFORM 1" + strings.Repeat("+1", 50000) + "; END $$")
	if err != nil || !got[0].Dynamic {
		t.Errorf("DO with a deep expression = %v, %v; want Dynamic", got, err)
	}

	fine := []struct {
		name, sql string
		kinds     []string
	}{
		{"long or list", "SELECT 1 FROM t WHERE " + strings.Repeat("a = 1 OR ", 5000) + "a = 2", strs("SELECT")},
		{"long case", "SELECT CASE " + strings.Repeat("WHEN a = 1 THEN b + 1 ", 3000) + "END FROM t", strs("SELECT")},
		{"long in list", "DELETE FROM t WHERE a IN (" + strings.Repeat("1, ", 20000) + "2)", strs("DELETE")},
		{"union all list", strings.Repeat("SELECT 1 UNION ALL ", 3000) + "SELECT 1", strs("SELECT")},
		{"chain within bound", "SELECT 1" + strings.Repeat(" || 'abcdefgh'", maxOperatorDepth-10), strs("SELECT")},
		{"bulk insert", "INSERT INTO t VALUES " + strings.Repeat("(1, 'a', now()), ", 20000) + "(2, 'b', now())", strs("INSERT")},
	}
	for _, tc := range fine {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.sql) <= directCallBytes {
				t.Fatalf("%d bytes: too short to run on the big stack", len(tc.sql))
			}
			got, err := Parse(tc.sql)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0].Kinds, tc.kinds) {
				t.Errorf("Parse = %v, want one statement of kinds %v", got, tc.kinds)
			}
		})
	}
}

func TestParseEmbeddedBound(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("DO $$ BEGIN ")
	for i := 0; i <= maxEmbeddedParses; i++ {
		sb.WriteString("PERFORM 1; ")
	}
	sb.WriteString("END $$")
	got, err := Parse(sb.String())
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Dynamic {
		t.Errorf("DO with %d statements: Dynamic = false, want true", maxEmbeddedParses+1)
	}
}

func TestParseMultiple(t *testing.T) {
	got, err := Parse("BEGIN; UPDATE t SET a = 1; SELECT * FROM u;\nCOMMIT;;")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, s := range got {
		kinds = append(kinds, s.Kind)
	}
	if want := strs("BEGIN", "UPDATE", "SELECT", "COMMIT"); !reflect.DeepEqual(kinds, want) {
		t.Errorf("kinds = %v, want %v", kinds, want)
	}
	if !reflect.DeepEqual(got[1].Tables, strs("t")) || !reflect.DeepEqual(got[2].Tables, strs("u")) {
		t.Errorf("tables = %v, %v; want [t], [u]", got[1].Tables, got[2].Tables)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, sql := range []string{"", ";", " ; ;\n", "-- only a comment", "/* c */ ;"} {
		got, err := Parse(sql)
		if err != nil || len(got) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want no statements, no error", sql, got, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		sql     string
		message string
		cursor  int
	}{
		{"syntax", "SELECT * FORM t", `syntax error at or near "FORM"`, 10},
		{"second statement", "SELECT 1; SELEC 2", `syntax error at or near "SELEC"`, 11},
		{"end of input", "SELECT (1", "syntax error at end of input", 10},
		{"unterminated", "SELECT 'abc", "unterminated quoted string at or near \"'abc\"", 8},
		{"too long", "SELECT " + strings.Repeat(" ", MaxTextBytes), "statement too long", 0},
		{"nul byte", "SELECT 1;\x00DROP TABLE t", "statement contains a NUL byte", 0},
		{"invalid utf-8", "SELECT '\xff'", "statement is not valid UTF-8", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.sql)
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %v, %v; want an *Error", got, err)
			}
			if pe.Message != tc.message || pe.Cursor != tc.cursor {
				t.Errorf("error = {%q %d}, want {%q %d}", pe.Message, pe.Cursor, tc.message, tc.cursor)
			}
			if got != nil {
				t.Errorf("statements = %v, want nil", got)
			}
		})
	}
}

// TestStatementKindComplete checks that every statement node of pg_query has
// a kind, so that a top-level statement is never "UNKNOWN".
func TestStatementKindComplete(t *testing.T) {
	notStatements := map[protoreflect.Name]bool{
		"RawStmt":             true,
		"ReplicaIdentityStmt": true,
		"ReturnStmt":          true,
		"PLAssignStmt":        true,
		"SetOperationStmt":    true,
	}
	oneof := (&pg_query.Node{}).ProtoReflect().Descriptor().Oneofs().Get(0)
	n := 0
	for i := 0; i < oneof.Fields().Len(); i++ {
		md := oneof.Fields().Get(i).Message()
		if md == nil || !strings.HasSuffix(string(md.Name()), "Stmt") || notStatements[md.Name()] {
			continue
		}
		n++
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
		if err != nil {
			t.Fatal(err)
		}
		if kind, _ := statementKind(mt.New().Interface()); kind == "" {
			t.Errorf("%s has no kind", md.Name())
		}
	}
	if n < 100 {
		t.Errorf("found %d statement types, want over 100", n)
	}
}

// TestParseConcurrent parses from many goroutines at once and checks that
// stderr (fd 2), which libpg_query redirects during each call, is intact.
func TestParseConcurrent(t *testing.T) {
	var before, after syscall.Stat_t
	if err := syscall.Fstat(2, &before); err != nil {
		t.Skip(err)
	}
	sqls := []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 42",
		"DO $$ BEGIN DELETE FROM t; x := 1; END $$",
		"SELEC broken",
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				_, _ = Parse(sqls[(g+i)%len(sqls)])
			}
		}()
	}
	wg.Wait()
	if err := syscall.Fstat(2, &after); err != nil {
		t.Fatal(err)
	}
	if before.Dev != after.Dev || before.Ino != after.Ino {
		t.Errorf("fd 2 changed: dev/ino %d/%d, was %d/%d", after.Dev, after.Ino, before.Dev, before.Ino)
	}
}

func TestCache(t *testing.T) {
	c := NewCache(2, 1<<10)
	a, err := c.Parse("SELECT 1 FROM a")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.Parse("SELECT 1 FROM a")
	if &a[0] != &again[0] {
		t.Error("second Parse of the same text did not come from the cache")
	}
	if !reflect.DeepEqual(a[0].Tables, strs("a")) {
		t.Errorf("tables = %v", a[0].Tables)
	}

	// Errors are cached too.
	_, err1 := c.Parse("SELEC")
	_, err2 := c.Parse("SELEC")
	if err1 == nil || err1 != err2 {
		t.Errorf("errors %v, %v: want one cached *Error", err1, err2)
	}

	// Two entries at most: a third text evicts "SELECT 1 FROM a", the one
	// used least recently.
	if _, err := c.Parse("SELECT 2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.entries["SELEC"]; !ok {
		t.Error("recently used entry was evicted")
	}
	if _, ok := c.entries["SELECT 1 FROM a"]; ok {
		t.Error("least recently used entry was not evicted")
	}
	if len(c.entries) != 2 || c.order.Len() != 2 {
		t.Errorf("entries = %d/%d, want 2", len(c.entries), c.order.Len())
	}
}

func TestCacheBytes(t *testing.T) {
	c := NewCache(100, 40)
	texts := []string{"SELECT x FROM aaaaaaa", "SELECT y FROM bbbbbbb", "SELECT z FROM ccccccc"} // 21 bytes each
	for _, s := range texts {
		if _, err := c.Parse(s); err != nil {
			t.Fatal(err)
		}
	}
	if c.bytes > 40 || len(c.entries) != 1 {
		t.Errorf("bytes = %d, entries = %d; want <= 40 and 1", c.bytes, len(c.entries))
	}
	if _, ok := c.entries[texts[2]]; !ok {
		t.Error("most recent entry was evicted")
	}

	// A text larger than the whole cache is parsed, not stored.
	long := "SELECT 1 FROM " + strings.Repeat("x", 40)
	if st, err := c.Parse(long); err != nil || len(st) != 1 {
		t.Fatalf("Parse(long) = %v, %v", st, err)
	}
	if _, ok := c.entries[long]; ok {
		t.Error("text larger than maxBytes was cached")
	}

	// Disabled and nil caches still parse.
	for _, c := range []*Cache{NewCache(0, 0), nil} {
		if st, err := c.Parse("SELECT 1"); err != nil || len(st) != 1 {
			t.Errorf("Parse on %v = %v, %v", c, st, err)
		}
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := NewCache(8, 1<<10)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				sql := fmt.Sprintf("SELECT %d FROM t%d", i%16, i%16)
				st, err := c.Parse(sql)
				if err != nil || len(st) != 1 || st[0].Tables[0] != fmt.Sprintf("t%d", i%16) {
					t.Errorf("Parse(%q) = %v, %v", sql, st, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for text := range c.entries {
		total += len(text)
	}
	if len(c.entries) > 8 || c.order.Len() != len(c.entries) || total != c.bytes {
		t.Errorf("entries %d, list %d, bytes %d (counted %d)", len(c.entries), c.order.Len(), c.bytes, total)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 42",
		"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
		"COPY t(a,b) TO STDOUT WITH (FORMAT csv)",
		"DO $$ BEGIN EXECUTE 'x'; END $$",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		stmts, err := Parse(sql)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if stmts != nil {
				t.Fatalf("statements %v with error %v", stmts, err)
			}
			return
		}
		for _, s := range stmts {
			if s.Kind == "" {
				t.Fatalf("empty Kind in %s", show(s))
			}
			for _, l := range [][]string{s.Kinds, s.Tables, s.Functions} {
				if !sort.StringsAreSorted(l) {
					t.Fatalf("unsorted list %v", l)
				}
				for i := 1; i < len(l); i++ {
					if l[i] == l[i-1] {
						t.Fatalf("duplicate %q in %v", l[i], l)
					}
				}
			}
			if i := sort.SearchStrings(s.Kinds, s.Kind); i == len(s.Kinds) || s.Kinds[i] != s.Kind {
				t.Fatalf("Kinds %v lacks Kind %q", s.Kinds, s.Kind)
			}
		}
	})
}

var benchSQL = "SELECT abalance FROM pgbench_accounts WHERE aid = 42"

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchSQL)))
	for b.Loop() {
		if _, err := Parse(benchSQL); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDo(b *testing.B) {
	sql := "DO $$ BEGIN DELETE FROM t WHERE a = 1; PERFORM pg_sleep(0); END $$"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(sql); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheHit(b *testing.B) {
	c := NewCache(1024, 1<<20)
	if _, err := c.Parse(benchSQL); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchSQL)))
	for b.Loop() {
		if _, err := c.Parse(benchSQL); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheHitParallel(b *testing.B) {
	c := NewCache(1024, 1<<20)
	if _, err := c.Parse(benchSQL); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Parse(benchSQL); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// show prints a Statement for a test failure.
func show(s Statement) string {
	cp := "nil"
	if s.Copy != nil {
		cp = fmt.Sprintf("%+v", *s.Copy)
	}
	return fmt.Sprintf("{Kind:%q Object:%q Kinds:%q Tables:%q Functions:%q Copy:%s Dynamic:%v}",
		s.Kind, s.Object, s.Kinds, s.Tables, s.Functions, cp, s.Dynamic)
}
