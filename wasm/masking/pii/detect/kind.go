package detect

import "strings"

// Kind is a kind of personal data or secret.
type Kind uint8

// The kinds of personal data and secrets that Find reports.
const (
	// Email is an email address: local@domain.tld.
	Email Kind = iota + 1
	// Card is a payment card number: 13-19 digits, optionally grouped by
	// single spaces or dashes (first group of four), Luhn-valid, starting
	// with 2-6.
	Card
	// SSN is a US social security number written ddd-dd-dddd (area not 000,
	// 666 or 9xx; group not 00; serial not 0000). Nine bare digits are an
	// SSN only under a column rule (Masker.MaskWhole), never by content.
	SSN
	// Phone is a phone number: E.164 ('+' and 8-15 digits, the first not 0,
	// in groups separated by a space, dash or dot and parentheses, as in
	// "+44 (0)20 7946 0958") or North American: (xxx) xxx-xxxx,
	// xxx-xxx-xxxx or xxx.xxx.xxxx, the area code starting with 2-9,
	// optionally led by "1-" or "1.".
	Phone
	// IBAN is an international bank account number in capitals, compact or
	// grouped in fours by spaces, of a country in the IBAN registry (others
	// are not found), with that country's length and a valid mod-97
	// checksum.
	IBAN
	// IPv4 is a dotted-quad IPv4 address (each part 0-255, no leading
	// zeros), not part of a longer dotted number such as 1.2.3.4.5.
	IPv4
	// AWSKey is an AWS access key id: AKIA, ASIA, ABIA, ACCA, AGPA, AIDA,
	// AROA, AIPA, ANPA, ANVA or APKA, then 16 of [A-Z0-9], standing alone.
	AWSKey
	// JWT is a JSON web token: three base64url segments separated by dots,
	// the first two starting with "eyJ" (a JSON object) and the third not
	// empty.
	JWT
	// PEMKey is a PEM private key block ("-----BEGIN <label>-----" where the
	// label ends with PRIVATE KEY or PRIVATE KEY BLOCK), through the END line
	// of the same label or, when there is none, to the end of the value.
	PEMKey

	lastKind = PEMKey
)

var kindNames = [...]string{
	Email:  "email",
	Card:   "card",
	SSN:    "ssn",
	Phone:  "phone",
	IBAN:   "iban",
	IPv4:   "ipv4",
	AWSKey: "aws_key",
	JWT:    "jwt",
	PEMKey: "pem_key",
}

func (k Kind) valid() bool { return k >= Email && k <= lastKind }

// String returns the kind's name ("email", "card", "ssn", "phone", "iban",
// "ipv4", "aws_key", "jwt", "pem_key"), or "unknown" for a value that is not
// a kind.
func (k Kind) String() string {
	if !k.valid() {
		return "unknown"
	}
	return kindNames[k]
}

// ParseKind returns the kind named s, as String spells it, ignoring case.
func ParseKind(s string) (Kind, bool) {
	for k := Email; k <= lastKind; k++ {
		if strings.EqualFold(s, kindNames[k]) {
			return k, true
		}
	}
	return 0, false
}

// Set is a set of kinds.
type Set uint16

// All is the set of every kind.
const All Set = 1<<Email | 1<<Card | 1<<SSN | 1<<Phone | 1<<IBAN | 1<<IPv4 | 1<<AWSKey | 1<<JWT | 1<<PEMKey

// SetOf returns the set of the given kinds; values that are not kinds are
// ignored.
func SetOf(kinds ...Kind) Set {
	var s Set
	for _, k := range kinds {
		if k.valid() {
			s |= 1 << k
		}
	}
	return s
}

// Has reports whether k is in s.
func (s Set) Has(k Kind) bool { return k.valid() && s&(1<<k) != 0 }
