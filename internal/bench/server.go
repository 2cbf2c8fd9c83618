package bench

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Settings are the server settings that shape the figures, printed at the top of every run.
type Settings struct {
	Version           string `json:"version"`
	SharedBuffers     string `json:"shared_buffers"`
	SynchronousCommit string `json:"synchronous_commit"`
	Fsync             string `json:"fsync"`
	WalLevel          string `json:"wal_level"`
	MaxConnections    string `json:"max_connections"`
	WorkMem           string `json:"work_mem"`
	FullPageWrites    string `json:"full_page_writes"`
	WalSyncMethod     string `json:"wal_sync_method"`
	CommitDelay       string `json:"commit_delay"`
	MaxWalSize        string `json:"max_wal_size"`
	Server            string `json:"server"`
	Database          string `json:"database"`
	ClientCPUs        int    `json:"client_cpus"`
	Driver            string `json:"driver"`
}

func readSettings(ctx context.Context, pool *pgxpool.Pool) (Settings, error) {
	var s Settings
	err := pool.QueryRow(ctx, `SELECT pg_catalog.current_setting('server_version'),
		pg_catalog.current_setting('shared_buffers'), pg_catalog.current_setting('synchronous_commit'),
		pg_catalog.current_setting('fsync'), pg_catalog.current_setting('wal_level'),
		pg_catalog.current_setting('max_connections'), pg_catalog.current_setting('work_mem'),
		pg_catalog.current_setting('full_page_writes'), pg_catalog.current_setting('wal_sync_method'),
		pg_catalog.current_setting('commit_delay'), pg_catalog.current_setting('max_wal_size')`).Scan(
		&s.Version, &s.SharedBuffers, &s.SynchronousCommit, &s.Fsync, &s.WalLevel, &s.MaxConnections,
		&s.WorkMem, &s.FullPageWrites, &s.WalSyncMethod, &s.CommitDelay, &s.MaxWalSize)
	if err != nil {
		return s, fmt.Errorf("bench: read settings: %w", err)
	}
	return s, nil
}

// displayURL shows where a connection string points, without its password.
func displayURL(conn string) string {
	cfg, err := pgx.ParseConfig(conn)
	if err != nil {
		return "(unparsable connection string)"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// pgxOnlyParams are connection-string parameters pgx understands and libpq rejects.
var pgxOnlyParams = []string{"pool_max_conns", "pool_min_conns", "pool_min_idle_conns", "pool_max_conn_lifetime",
	"pool_max_conn_lifetime_jitter", "pool_max_conn_idle_time", "pool_health_check_period",
	"statement_cache_capacity", "description_cache_capacity", "default_query_exec_mode"}

// libpqConnString turns the connection string the user gave (URL or key=value) into one for
// libpq tools such as pgbench, pointing at database db and without pgx-only parameters.
func libpqConnString(conn, db string) (string, error) {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			return "", fmt.Errorf("bench: parse database URL: %w", err)
		}
		u.Path = "/" + db
		u.RawPath = ""
		q := u.Query()
		for _, p := range pgxOnlyParams {
			q.Del(p)
		}
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	for _, p := range pgxOnlyParams {
		conn = regexp.MustCompile(`(^|\s+)`+p+`\s*=\s*('([^'\\]|\\.)*'|\S+)`).ReplaceAllString(conn, "")
	}
	return strings.TrimSpace(conn) + " dbname=" + db, nil // libpq: the last value of a key wins
}

// findPgbench looks on PATH, then in Debian's /usr/lib/postgresql/<version>/bin (newest first).
func findPgbench() string {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	sort.Slice(matches, func(i, j int) bool { return versionDir(matches[i]) > versionDir(matches[j]) })
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.Mode()&0o111 != 0 {
			return m
		}
	}
	return ""
}

func versionDir(p string) int {
	var v int
	if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(filepath.Dir(p))), "%d", &v); err != nil {
		return 0
	}
	return v
}
