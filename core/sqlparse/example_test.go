package sqlparse_test

import (
	"fmt"

	"github.com/gatewayd-access/gatewayd/core/sqlparse"
)

func ExampleParse() {
	stmts, err := sqlparse.Parse(`
		WITH gone AS (DELETE FROM audit.log RETURNING id) SELECT count(*) FROM gone;
		DO $$ BEGIN EXECUTE 'DROP TABLE ' || quote_ident('t'); END $$`)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range stmts {
		fmt.Println(s.Kind, s.Kinds, s.Tables, s.Functions, s.Dynamic)
	}
	// Output:
	// SELECT [DELETE SELECT] [audit.log gone] [count] false
	// DO [DO] [] [quote_ident] true
}

func ExampleParse_error() {
	_, err := sqlparse.Parse("SELECT * FORM accounts")
	fmt.Println(err)
	// Output: sqlparse: syntax error at or near "FORM" at position 10
}
