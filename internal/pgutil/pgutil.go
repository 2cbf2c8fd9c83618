// Package pgutil holds the small helpers that the CLI, the throwaway clusters, the benchmark and
// the tests all need: random name suffixes, a free local port, and quoting for SQL literals and
// libpq connection-string values. Identifiers are quoted with pgx.Identifier.Sanitize.
package pgutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
)

// RandomHex returns n random bytes as 2n hex digits, for names that must not collide (databases,
// roles, channels, passwords of throwaway clusters).
func RandomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("find a free port: no TCP address")
	}
	return addr.Port, nil
}

// QuoteLiteral quotes s as an SQL string literal (standard_conforming_strings on, as since
// PostgreSQL 9.1).
func QuoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var unsafeConninfo = regexp.MustCompile(`[\s'\\]`)

// QuoteConninfo quotes a value of a libpq key=value connection string when it needs it (empty,
// or holding white space, a quote or a backslash).
func QuoteConninfo(v string) string {
	if v != "" && !unsafeConninfo.MatchString(v) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
