package inventory_test

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/annals-db/annals/goapi/annalstest"
)

// TestMain gives the Example tests one fresh migrated database, published as DATABASE_URL. With
// no PostgreSQL reachable it skips the package, unless CI is set: then it fails.
func TestMain(m *testing.M) {
	url, cleanup, err := annalstest.NewDBForMain()
	if errors.Is(err, annalstest.ErrNoServer) {
		fmt.Fprintf(os.Stderr, "internal/inventory: skipping tests and examples: %v\n", err)
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "internal/inventory: %v\n", err)
		os.Exit(1)
	}
	os.Setenv("DATABASE_URL", url)
	code := m.Run()
	cleanup()
	os.Exit(code)
}
