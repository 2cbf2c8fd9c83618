package domain_test

import (
	"testing"

	"github.com/annals-db/annals/goapi/annalstest"
)

// TestMain gives the Example tests one fresh migrated database, published as DATABASE_URL.
func TestMain(m *testing.M) { annalstest.RunMain(m, "goapi/domain") }
