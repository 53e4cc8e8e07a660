// Package detect finds personal data and secrets (emails, payment cards,
// SSNs, phone numbers, IBANs, IPv4 addresses, AWS key ids, JWTs and PEM
// private keys) inside text values, and masks them.
//
// It is built for the gateway's masking module, compiled to WebAssembly
// (GOOS=wasip1), which calls it for every text value of every result row:
// it uses hand-written scanners, not package regexp, and Find and Mask do
// not allocate for a value that holds nothing to mask.
//
// # How values are scanned
//
// Find makes one pass over a value. Each kind is looked for only at its
// trigger bytes: emails at '@', numbers at digits, '+' and '(', AWS key ids
// at 'A', JWTs at "eyJ", PEM keys at "-----BEGIN ". A value without any of
// them costs one table-driven scan.
//
// When candidates overlap, the earlier start wins, and at the same start the
// longer one. After a match, scanning resumes right after it as if the value
// began there: this is what a re-scan of the masked value sees (a mask ends
// with ']'), so masking with Full leaves nothing that Find would report.
//
// Numbers (cards, SSNs, phones, IPv4 addresses) must stand alone: a letter,
// digit or '_' next to them, or a '-' or '.' between them and another digit,
// makes them part of a longer token. IBANs, AWS key ids and JWTs must not
// touch a letter, digit or '_' either. JSON escapes
// such as \n and \u003c before a value count as separators, so values inside
// JSON strings are found and the escapes are left whole.
//
// # Masks
//
// A Masker masks what Find finds in one of three styles: Full writes
// "[REDACTED:<kind>]", Partial keeps the last four letters or digits (an
// email keeps its first character and its domain; secrets are masked as
// with Full), and Hash writes "<kind>:" and 16 hex digits of a keyed
// HMAC-SHA256, so that equal values mask equally.
package detect
