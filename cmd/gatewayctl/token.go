package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// tokenPrefix marks gatewayd tokens, so that secret scanners and people can
// recognise one.
const tokenPrefix = "gwt_"

// tokenBytes is the entropy of a token.
const tokenBytes = 32

// maxTokenInput bounds what token hash reads from stdin.
const maxTokenInput = 4096

func (a *app) tokenNew(args []string) error {
	c := a.command("token new", "token new [--name NAME] [--json]")
	name := c.String("name", "", "the identity `NAME`, to print a whole [[identity.static]] entry")
	asJSON := c.Bool("json", false, "print JSON")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos); err != nil {
		return err
	}
	raw := make([]byte, tokenBytes)
	if _, err := io.ReadFull(a.random, raw); err != nil {
		return fmt.Errorf("making a token: reading random bytes: %w", err)
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	sum := tokenSHA256(token)

	if *asJSON {
		return printJSON(a.stdout, struct {
			Name        string `json:"name,omitempty"`
			Token       string `json:"token"`
			TokenSHA256 string `json:"token_sha256"`
		}{*name, token, sum})
	}
	fmt.Fprintf(a.stdout, "%s\n\n", token)
	fmt.Fprintln(a.stdout, "# Give the token above to its owner: it is shown only this once, and gatewayd")
	fmt.Fprintln(a.stdout, "# keeps only its sha256. For gateway.toml:")
	if *name != "" {
		fmt.Fprintln(a.stdout, "[[identity.static]]")
		fmt.Fprintf(a.stdout, "name = %s\n", tomlString(*name))
		fmt.Fprintln(a.stdout, "groups = []  # the groups that grant access")
	}
	fmt.Fprintf(a.stdout, "token_sha256 = %q\n", sum)
	return nil
}

func (a *app) tokenHash(args []string) error {
	c := a.command("token hash", "token hash < TOKEN")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.positional(pos); err != nil {
		return err
	}
	r := bufio.NewReader(io.LimitReader(a.stdin, maxTokenInput))
	line, err := r.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the token from stdin: %w", err)
	}
	token := strings.TrimSpace(line)
	if token == "" {
		return errors.New("token hash: no token on stdin (try: gatewayctl token hash < file, or paste it and press Enter)")
	}
	fmt.Fprintln(a.stdout, tokenSHA256(token))
	return nil
}

// tokenSHA256 is what gatewayd compares a presented token with: the hex
// sha256 of the token as presented.
func tokenSHA256(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// tomlString quotes s as a TOML basic string (JSON's escapes are valid TOML).
func tomlString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}
