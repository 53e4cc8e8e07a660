package shellparse_test

import (
	"fmt"

	"github.com/gatewayd-access/gatewayd/core/shellparse"
)

func ExampleParse() {
	a, err := shellparse.Parse(`cd /var/log && sudo bash -c 'grep -l x *.log | xargs rm' > /tmp/out`)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range a.Commands {
		fmt.Printf("%q %q dynamic=%v context=%q\n", c.Name, c.Args, c.Dynamic, c.Context)
	}
	for _, r := range a.Redirects {
		fmt.Println(r.Op, r.Target)
	}
	fmt.Println("dynamic:", a.Dynamic)
	// Output:
	// "cd" ["/var/log"] dynamic=false context=""
	// "sudo" ["bash" "-c" "grep -l x *.log | xargs rm"] dynamic=false context=""
	// "grep" ["-l" "x" "*.log"] dynamic=true context="pipeline"
	// "xargs" ["rm"] dynamic=false context="pipeline"
	// > /tmp/out
	// dynamic: false
}

func ExampleParse_error() {
	_, err := shellparse.Parse("echo 'unclosed")
	fmt.Println(err)
	// Output: shellparse: reached EOF without closing quote `'` at line 1, column 6
}
