// Package connstr handles PostgreSQL connection strings for messages and scratch databases.
package connstr

import (
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ShortErr keeps the cause of a failed connection (refused, no socket, authentication
// failed) without pgx's long "failed to connect to ..." preamble.
func ShortErr(err error) error {
	var netErr *net.OpError
	if errors.As(err, &netErr) {
		return netErr
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr
	}
	return err
}

// Display shows a connection string without its password.
func Display(c string) string {
	if u, err := url.Parse(c); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		u.RawQuery = ""
		return u.String()
	}
	return c
}

// WithDatabase returns connString pointing at database name, keeping every other setting.
func WithDatabase(connString, name string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return strings.TrimSpace(dbnameKeyword.ReplaceAllString(connString, "")) + " dbname=" + name, nil
}

var dbnameKeyword = regexp.MustCompile(`(^|\s)dbname=\S+`)
