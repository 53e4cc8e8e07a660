package detect_test

import (
	"fmt"

	"github.com/gatewayd-access/gatewayd/wasm/masking/pii/detect"
)

func ExampleMasker_Mask() {
	m := detect.NewMasker(detect.All, detect.Partial, nil)
	out, changed := m.Mask(nil, []byte(`(1,alice@example.com,"4111 1111 1111 1111")`))
	fmt.Println(string(out), changed)

	_, changed = m.Mask(nil, []byte("John Smith, 42 Main Street"))
	fmt.Println(changed)
	// Output:
	// (1,a****@example.com,"**** **** **** 1111") true
	// false
}

func ExampleMasker_MaskWhole() {
	m := detect.NewMasker(detect.SetOf(detect.SSN), detect.Full, nil)
	fmt.Println(string(m.MaskWhole(nil, []byte("123456789"), detect.SSN)))
	// Output: [REDACTED:ssn]
}

func ExampleFind() {
	text := []byte(`{"email":"bob@example.org","ip":"10.0.0.1"}`)
	for _, m := range detect.Find(nil, text, detect.All) {
		fmt.Println(m.Kind, string(text[m.Start:m.End]))
	}
	// Output:
	// email bob@example.org
	// ipv4 10.0.0.1
}
