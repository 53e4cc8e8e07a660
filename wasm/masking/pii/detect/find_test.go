package detect

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const (
	sampleJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
		"eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ." +
		"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	samplePEM = "-----BEGIN RSA PRIVATE KEY-----\n" +
		"MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n" +
		"KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm\n" +
		"-----END RSA PRIVATE KEY-----"
)

// found renders matches as "kind:text".
func found(text string, ms []Match) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Kind.String()+":"+text[m.Start:m.End])
	}
	return out
}

func TestFind(t *testing.T) {
	tests := []struct {
		name string
		text string
		set  Set // All when 0
		want []string
	}{
		// Emails.
		{"email", "alice@example.com", 0, []string{"email:alice@example.com"}},
		{"email in JSON", `{"email":"bob@example.org"}`, 0, []string{"email:bob@example.org"}},
		{"email in composite", `(1,"bob@example.org")`, 0, []string{"email:bob@example.org"}},
		{"email bare in composite", `(1,bob@example.org,x)`, 0, []string{"email:bob@example.org"}},
		{"email plus and subdomains", "to: first.last+tag@mail.example.co.uk;", 0, []string{"email:first.last+tag@mail.example.co.uk"}},
		{"email ends a sentence", "write to bob@example.com.", 0, []string{"email:bob@example.com"}},
		{"email in angle brackets", "Bob <bob@example.com>", 0, []string{"email:bob@example.com"}},
		{"email after JSON unicode escape", `"Bob \u003cbob@example.com\u003e"`, 0, []string{"email:bob@example.com"}},
		{"email after JSON newline escape", `"hi\nbob@example.com"`, 0, []string{"email:bob@example.com"}},
		{"email after escaped backslash", `"a\\nbob@example.com"`, 0, []string{"email:nbob@example.com"}},
		{"email leading dot trimmed", "..bob@example.com", 0, []string{"email:bob@example.com"}},
		{"email non-ASCII local part", "josé@example.com", 0, []string{"email:josé@example.com"}},
		{"two emails", "a@example.com,b@example.net", 0, []string{"email:a@example.com", "email:b@example.net"}},
		{"email digit TLD dropped", "bob@mail.example.c0m", 0, []string{"email:bob@mail.example"}},
		{"no email: no TLD", "user@localhost", 0, nil},
		{"no email: no local part", "@example.com", 0, nil},
		{"no email: no domain", "bob@", 0, nil},
		{"no email: one-letter TLD", "bob@example.c", 0, nil},
		{"no email: digit TLD", "bob@example.c0m", 0, nil},
		{"no email: handle", "ping @bob please", 0, nil},
		{"no email: local part too long", strings.Repeat("a", 65) + "@example.com", 0, nil},

		// Cards.
		{"card bare", "4111111111111111", 0, []string{"card:4111111111111111"}},
		{"card spaces", "4111 1111 1111 1111", 0, []string{"card:4111 1111 1111 1111"}},
		{"card dashes", "4111-1111-1111-1111", 0, []string{"card:4111-1111-1111-1111"}},
		{"card amex grouped", "3782 822463 10005", 0, []string{"card:3782 822463 10005"}},
		{"card amex bare", "378282246310005", 0, []string{"card:378282246310005"}},
		{"card mastercard", "pan=5555555555554444;", 0, []string{"card:5555555555554444"}},
		{"card in composite", `(1,alice@example.com,"4111 1111 1111 1111")`, 0, []string{"email:alice@example.com", "card:4111 1111 1111 1111"}},
		{"card with expiry", "4111 1111 1111 1111 12/29", 0, []string{"card:4111 1111 1111 1111"}},
		{"card then 19-digit prefix", "4111 1111 1111 1111 4111 1111 1111 1111", 0, []string{"card:4111 1111 1111 1111", "card:4111 1111 1111 1111"}},
		{"no card: Luhn", "4111111111111112", 0, nil},
		{"no card: Luhn grouped", "4111 1111 1111 1112", 0, nil},
		{"no card: IIN 1", "1111111111111117", 0, nil},
		{"no card: IIN 7", "7111111111111114", 0, nil},
		{"no card: mixed separators", "4111 1111-1111 1111", 0, nil},
		{"no card: 20 digits", "41111111111111111113", 0, nil},
		{"no card: inside a word", "x4111111111111111", 0, nil},
		{"no card: dash continues", "4111-1111-1111-1111-1", 0, nil},
		{"no card: 12 digits", "411111111113", 0, nil},

		// SSNs.
		{"ssn", "ssn: 123-45-6789", 0, []string{"ssn:123-45-6789"}},
		{"ssn in composite", "(7,123-45-6789)", 0, []string{"ssn:123-45-6789"}},
		{"no ssn: area 000", "000-12-3456", 0, nil},
		{"no ssn: area 666", "666-12-3456", 0, nil},
		{"no ssn: area 9xx", "900-12-3456", 0, nil},
		{"no ssn: group 00", "123-00-4567", 0, nil},
		{"no ssn: serial 0000", "123-45-0000", 0, nil},
		{"no ssn: bare digits", "123456789", 0, nil},
		{"no ssn: longer", "123-45-67890", 0, nil},
		{"no ssn: continued", "123-45-6789-1", 0, nil},

		// Phones.
		{"phone E.164", "+14155552671", 0, []string{"phone:+14155552671"}},
		{"phone E.164 spaced", "call +1 555 123 4567 now", 0, []string{"phone:+1 555 123 4567"}},
		{"phone E.164 UK", "+44 20 7946 0958", 0, []string{"phone:+44 20 7946 0958"}},
		{"phone E.164 trunk zero", "+44 (0)20 7946 0958", 0, []string{"phone:+44 (0)20 7946 0958"}},
		{"phone E.164 dashes", "+1-555-123-4567", 0, []string{"phone:+1-555-123-4567"}},
		{"phone E.164 in parentheses", "(+33 1 23 45 67 89)", 0, []string{"phone:+33 1 23 45 67 89"}},
		{"phone NANP parentheses", "(555) 123-4567", 0, []string{"phone:(555) 123-4567"}},
		{"phone NANP dashes", "555-123-4567", 0, []string{"phone:555-123-4567"}},
		{"phone NANP dots", "555.123.4567", 0, []string{"phone:555.123.4567"}},
		{"phone NANP leading 1", "1-800-555-0199", 0, []string{"phone:1-800-555-0199"}},
		{"phone in JSON", `{"tel":"+1 (555) 123-4567"}`, 0, []string{"phone:+1 (555) 123-4567"}},
		{"no phone: date", "2024-01-15", 0, nil},
		{"no phone: datetime", "2024-01-15 12:30:45.123", 0, nil},
		{"no phone: time", "12:30:45", 0, nil},
		{"no phone: integer", "12345", 0, nil},
		{"no phone: long integer", "4155552671", 0, nil},
		{"no phone: version", "v1.2.3", 0, nil},
		{"no phone: too short", "+1234567", 0, nil},
		{"no phone: too long", "+1234567890123456", 0, nil},
		{"no phone: area code 1", "123-456-7890", 0, nil},
		{"no phone: seven digits", "555-1234", 0, nil},
		{"no phone: mixed separators", "555-123.4567", 0, nil},
		{"no phone: plus in a word", "c+14155552671", 0, nil},
		{"no phone: card only set", "4111 1111 1111 1111", SetOf(Phone), nil},
		{"no phone: ssn", "123-45-6789", SetOf(Phone), nil},

		// IBANs.
		{"iban GB", "GB82WEST12345698765432", 0, []string{"iban:GB82WEST12345698765432"}},
		{"iban GB grouped", "GB82 WEST 1234 5698 7654 32", 0, []string{"iban:GB82 WEST 1234 5698 7654 32"}},
		{"iban DE", "iban=DE89370400440532013000;", 0, []string{"iban:DE89370400440532013000"}},
		{"iban DE grouped", "DE89 3704 0044 0532 0130 00", 0, []string{"iban:DE89 3704 0044 0532 0130 00"}},
		{"iban after AWS-like A", "AT611904300234573201", 0, []string{"iban:AT611904300234573201"}},
		{"no iban: checksum", "GB82WEST12345698765433", 0, nil},
		{"no iban: length", "DE8937040044053201300", 0, nil},
		{"no iban: too long", "DE893704004405320130001", 0, nil},
		{"no iban: unknown country", "XX82WEST12345698765432", 0, nil},
		{"no iban: lower case", "gb82west12345698765432", 0, nil},
		{"no iban: inside a word", "XGB82WEST12345698765432", 0, nil},

		// IPv4.
		{"ipv4", "192.168.1.1", 0, []string{"ipv4:192.168.1.1"}},
		{"ipv4 with port", "10.0.0.255:5432", 0, []string{"ipv4:10.0.0.255"}},
		{"ipv4 CIDR", "10.0.0.0/8", 0, []string{"ipv4:10.0.0.0"}},
		{"ipv4 ends a sentence", "from 8.8.8.8.", 0, []string{"ipv4:8.8.8.8"}},
		{"ipv4 edge values", "255.255.255.255 0.0.0.0", 0, []string{"ipv4:255.255.255.255", "ipv4:0.0.0.0"}},
		{"no ipv4: 256", "256.1.1.1", 0, nil},
		{"no ipv4: 300", "1.300.1.1", 0, nil},
		{"no ipv4: five parts", "1.2.3.4.5", 0, nil},
		{"no ipv4: five parts before", "version 10.2.3.4.1", 0, nil},
		{"no ipv4: leading zero", "01.2.3.4", 0, nil},
		{"no ipv4: three parts", "1.2.3", 0, nil},
		{"no ipv4: in a word", "v1.2.3.4", 0, nil},

		// AWS keys.
		{"aws key", "AKIAIOSFODNN7EXAMPLE", 0, []string{"aws_key:AKIAIOSFODNN7EXAMPLE"}},
		{"aws key in config", "aws_access_key_id=ASIAY34FZKBOKMUTVV7A\n", 0, []string{"aws_key:ASIAY34FZKBOKMUTVV7A"}},
		{"no aws key: longer", "AKIAIOSFODNN7EXAMPLEX", 0, nil},
		{"no aws key: in a word", "XAKIAIOSFODNN7EXAMPLE", 0, nil},
		{"no aws key: lower case", "AKIAiosfodnn7example", 0, nil},
		{"no aws key: prefix", "ABCDIOSFODNN7EXAMPLE", 0, nil},
		{"no aws key: short", "AKIAIOSFODNN7EXAMPL", 0, nil},

		// JWTs.
		{"jwt", sampleJWT, 0, []string{"jwt:" + sampleJWT}},
		{"jwt bearer", "Authorization: Bearer " + sampleJWT + "\n", 0, []string{"jwt:" + sampleJWT}},
		{"jwt in JSON", `{"token":"` + sampleJWT + `"}`, 0, []string{"jwt:" + sampleJWT}},
		{"no jwt: payload", "eyJhbGciOiJIUzI1NiJ9.abcdefgh.signature", 0, nil},
		{"no jwt: no signature", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.", 0, nil},
		{"no jwt: two segments", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0", 0, nil},
		{"no jwt: in a word", "xeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", 0, nil},

		// PEM keys.
		{"pem", samplePEM, 0, []string{"pem_key:" + samplePEM}},
		{"pem in text", "key: " + samplePEM + "\nok", 0, []string{"pem_key:" + samplePEM}},
		{"pem plain", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----", 0, []string{"pem_key:-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"}},
		{"pem EC", "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----", 0, []string{"pem_key:-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----"}},
		{"pem OPENSSH", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----", 0, []string{"pem_key:-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----"}},
		{"pem ENCRYPTED", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----", 0, []string{"pem_key:-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----"}},
		{"pem in JSON", `{"k":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"}`, 0, []string{`pem_key:-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----`}},
		{"pem without END", "x -----BEGIN RSA PRIVATE KEY-----\nMIIE 4111111111111111", 0, []string{"pem_key:-----BEGIN RSA PRIVATE KEY-----\nMIIE 4111111111111111"}},
		{"pem with other END", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\nmore", 0, []string{"pem_key:-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\nmore"}},
		{"no pem: public key", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", 0, nil},
		{"no pem: certificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", 0, nil},

		// Overlaps and neighbours.
		{"email wins over card at the same start", "4111111111111111@example.com", 0, []string{"email:4111111111111111@example.com"}},
		{"email wins over a later aws key", "x.AKIAIOSFODNN7EXAMPLE@example.com", 0, []string{"email:x.AKIAIOSFODNN7EXAMPLE@example.com"}},
		{"email wins over iban", "GB82WEST12345698765432@bank.example", 0, []string{"email:GB82WEST12345698765432@bank.example"}},
		{"card wins over a later email", "4111 1111 1111 1111.bob@example.com", 0, []string{"card:4111 1111 1111 1111", "email:bob@example.com"}},
		{"phone then card", "+1 555 123 4567 4111111111111111", 0, []string{"phone:+1 555 123 4567", "card:4111111111111111"}},
		{"card then phone", "4111 1111 1111 1111 555-123-4567", 0, []string{"card:4111 1111 1111 1111", "phone:555-123-4567"}},
		{"email then pem", "bob@example.com-----BEGIN PRIVATE KEY-----\nMII", 0, []string{"email:bob@example.com", "pem_key:-----BEGIN PRIVATE KEY-----\nMII"}},
		{"jwt then pem", sampleJWT + "-----BEGIN PRIVATE KEY-----\nMII", 0, []string{"jwt:" + sampleJWT, "pem_key:-----BEGIN PRIVATE KEY-----\nMII"}},
		{"ip in email domain", "bob@10.0.0.1", 0, []string{"ipv4:10.0.0.1"}},
		{"mixed JSON", `{"name":"Alice","email":"alice@example.com","phone":"+1 555 123 4567","card":"4111 1111 1111 1111","ip":"10.1.2.3"}`, 0,
			[]string{"email:alice@example.com", "phone:+1 555 123 4567", "card:4111 1111 1111 1111", "ipv4:10.1.2.3"}},
		{"set: emails only", `alice@example.com 4111111111111111 AKIAIOSFODNN7EXAMPLE`, SetOf(Email), []string{"email:alice@example.com"}},
		{"set: cards and keys", `alice@example.com 4111111111111111 AKIAIOSFODNN7EXAMPLE`, SetOf(Card, AWSKey), []string{"card:4111111111111111", "aws_key:AKIAIOSFODNN7EXAMPLE"}},
		{"set: card not in set, email covers nothing", "4111111111111111@example.com", SetOf(Card), []string{"card:4111111111111111"}},

		// Ordinary text.
		{"name and address", "John Smith, 42 Main Street, Springfield", 0, nil},
		{"empty", "", 0, nil},
		{"number list", "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", 0, nil},
		{"money", "$1,234,567.89", 0, nil},
		{"uuid", "123e4567-e89b-12d3-a456-426614174000", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := tt.set
			if set == 0 {
				set = All
			}
			got := found(tt.text, Find(nil, []byte(tt.text), set))
			want := tt.want
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("Find(%q)\n got %q\nwant %q", tt.text, got, want)
			}
		})
	}
}

func TestFindAppends(t *testing.T) {
	dst := []Match{{Start: 1, End: 2, Kind: SSN}}
	got := Find(dst, []byte("x 10.0.0.1"), All)
	want := []Match{{1, 2, SSN}, {2, 10, IPv4}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := Find(nil, []byte("10.0.0.1"), 0); got != nil {
		t.Fatalf("empty set: got %v", got)
	}
}

func TestFindNoAllocs(t *testing.T) {
	texts := []string{
		"John Smith, 42 Main Street, Springfield",
		`{"name":"Alice","email":"alice@example.com","phone":"+1 555 123 4567","card":"4111 1111 1111 1111"}`,
		samplePEM,
	}
	dst := make([]Match, 0, 8)
	for _, text := range texts {
		b := []byte(text)
		if n := testing.AllocsPerRun(100, func() { dst = Find(dst[:0], b, All) }); n != 0 {
			t.Errorf("Find(%.20q...) allocates %v times", text, n)
		}
	}
}

func TestKindNames(t *testing.T) {
	for k := Email; k <= lastKind; k++ {
		got, ok := ParseKind(k.String())
		if !ok || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, ok)
		}
		if up, ok := ParseKind(strings.ToUpper(k.String())); !ok || up != k {
			t.Errorf("ParseKind(upper %q) = %v, %v", k.String(), up, ok)
		}
	}
	for _, k := range []Kind{0, lastKind + 1, 255} {
		if k.String() != "unknown" {
			t.Errorf("Kind(%d).String() = %q", k, k.String())
		}
		if _, ok := ParseKind(k.String()); ok {
			t.Errorf("ParseKind(%q) succeeds", k.String())
		}
	}
	if _, ok := ParseKind("credit_card"); ok {
		t.Error(`ParseKind("credit_card") succeeds`)
	}
	want := []string{"email", "card", "ssn", "phone", "iban", "ipv4", "aws_key", "jwt", "pem_key"}
	var got []string
	for k := Email; k <= lastKind; k++ {
		got = append(got, k.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
}

func TestSet(t *testing.T) {
	s := SetOf(Email, IPv4, 0, 200)
	for k := Kind(0); k < 20; k++ {
		if want := k == Email || k == IPv4; s.Has(k) != want {
			t.Errorf("SetOf(Email, IPv4).Has(%v) = %v", k, !want)
		}
		if want := k.valid(); All.Has(k) != want {
			t.Errorf("All.Has(%d) = %v", k, !want)
		}
	}
	if SetOf() != 0 {
		t.Error("SetOf() is not empty")
	}
	if got := fmt.Sprint(SetOf(Email, Card, SSN, Phone, IBAN, IPv4, AWSKey, JWT, PEMKey) == All); got != "true" {
		t.Error("SetOf(every kind) != All")
	}
}

func TestTriggersInSWARRange(t *testing.T) {
	// next skips 8 bytes at a time when mayTrigger says none can trigger.
	for c := range 256 {
		if triggers[c] != 0 && (c <= 0x27 || c >= 0x4b) {
			t.Errorf("trigger %q is outside mayTrigger's range", rune(c))
		}
	}
	for c := range 256 {
		x := uint64(c) << 24
		if want := c > 0x27 && c < 0x4b; mayTrigger(x) != want {
			t.Errorf("mayTrigger(%q) = %v", rune(c), !want)
		}
	}
}
