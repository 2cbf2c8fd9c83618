package main

import (
	"fmt"
	"os"
)

// usageError marks errors caused by how the command was called (exit code 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// resolveDatabaseURL is the flag's value, else DATABASE_URL, else a usage error.
func resolveDatabaseURL(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if env := os.Getenv("DATABASE_URL"); env != "" {
		return env, nil
	}
	return "", usageError{"no database: set DATABASE_URL or pass --database-url (e.g. postgres://postgres@127.0.0.1:5432/app)"}
}
