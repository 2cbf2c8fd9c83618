package bench

import (
	"testing"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/internal/pgbouncertest"
	"github.com/jackc/pgx/v5"
)

// Session settings are SET after connecting: PgBouncer refuses startup parameters it does not
// track, such as synchronous_commit.
func TestConnectSetsSettingsAfterConnecting(t *testing.T) {
	t.Parallel()
	admin := annalstest.AdminURL(t)
	bouncer := pgbouncertest.Start(t, admin, pgbouncertest.Options{PoolMode: "session"})
	for name, url := range map[string]string{"direct": admin, "pgbouncer": bouncer.URL(t, admin)} {
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		b := &Bench{connCfg: cfg}
		conns, err := b.connect(t.Context(), 2, map[string]string{"synchronous_commit": "off"})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, c := range conns {
			var v string
			if err := c.QueryRow(t.Context(), "SHOW synchronous_commit").Scan(&v); err != nil || v != "off" {
				t.Errorf("%s: synchronous_commit = %q, %v; want off", name, v, err)
			}
		}
		closeAll(conns)
	}
}
