package annals_test

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/annals-db/annals/goapi/annalstest"
)

// TestMain gives the Example tests, which cannot take a *testing.T, one fresh migrated database,
// published as DATABASE_URL so the examples read like application code. With no PostgreSQL
// reachable it skips the package (exit 0 with a message), unless CI is set: then it fails.
func TestMain(m *testing.M) {
	url, cleanup, err := annalstest.NewDBForMain()
	if errors.Is(err, annalstest.ErrNoServer) {
		fmt.Fprintf(os.Stderr, "goapi: skipping tests and examples: %v\n", err)
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "goapi: %v\n", err)
		os.Exit(1)
	}
	os.Setenv("DATABASE_URL", url)
	code := m.Run()
	cleanup()
	os.Exit(code)
}
