// Package shard installs, upgrades and inspects a sharded Annals store: one proxy database whose
// annals.* stream calls PL/Proxy routes to the shard owning the stream, and N shard databases,
// each an ordinary Annals install (annals.Migrate).
//
// Routing: a fixed number of hash partitions (a power of two, chosen at Init) is mapped to the
// shards round-robin; a stream's partition is hashtext(stream_id) & (partitions - 1), computed by
// PostgreSQL on the proxy (annals.partition_of, annals.shard_of), so SQL, PL/Proxy and Go agree.
// Stream calls through the proxy keep the single-node signatures, so an annals.Client on the
// proxy's pool appends and reads streams unchanged; the feed is one gap-free feed per shard
// (annals.Client.ReadShard, annals.ShardedSubscriber).
package shard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strings"

	"github.com/annals-db/annals/functions/proxy"
	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultPartitions is the partition count Init uses when given 0: enough to spread over up to
// 16 shards without re-hashing, few enough that the map stays readable.
const DefaultPartitions = 16

// Shard is one shard database given to Init.
type Shard struct {
	// Name identifies the shard in messages and status (letters, digits, _ . -).
	Name string
	// Pool connects to the shard as an installer (superuser, or CREATEROLE and CREATE): Init
	// runs annals.Migrate through it.
	Pool *pgxpool.Pool
	// Conninfo is how the proxy reaches the shard: a libpq key=value string without user (PL/Proxy
	// connects as the calling role). Conninfo derives it from a URL.
	Conninfo string
}

// Info is one shard as the proxy's map has it.
type Info struct {
	Shard      int
	Name       string
	Partitions []int
}

// Health is one shard's state as the proxy sees it through PL/Proxy.
type Health struct {
	Info
	Available     bool
	SchemaVersion int64
	LastPosition  int64
	// Problem says why the shard is unavailable; empty when it is available.
	Problem string
}

// InitResult reports what Init did.
type InitResult struct {
	// Shards are the annals.Migrate results, in the order given.
	Shards []annals.MigrateResult
	// Partitions is the partition count of the map.
	Partitions int
	// MapCreated is false when the proxy already had this exact map (Init is idempotent).
	MapCreated bool
}

// DefaultConnectTimeout is the connect_timeout (seconds) Conninfo adds when the URL has none.
const DefaultConnectTimeout = "10"

// Conninfo turns a PostgreSQL URL (or a key=value string) into the key=value connection string
// the proxy stores for a shard: host, port, dbname and any other parameter, without user and
// password, so PL/Proxy connects to the shard as the role calling the proxy, and with
// connect_timeout=10 unless it sets one, so an unreachable shard fails its calls (ST502) instead
// of hanging them.
func Conninfo(dsn string) (string, error) {
	var pairs [][2]string
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// Neither the string nor url.Parse's error (which quotes it) is shown: it may hold a
			// password.
			return "", errors.New("shard: a shard's connection string is not a valid postgres:// URL")
		}
		if h := u.Hostname(); h != "" {
			pairs = append(pairs, [2]string{"host", h})
		}
		if p := u.Port(); p != "" {
			pairs = append(pairs, [2]string{"port", p})
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			pairs = append(pairs, [2]string{"dbname", db})
		}
		q := u.Query()
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k != "user" && k != "password" {
				pairs = append(pairs, [2]string{k, q.Get(k)})
			}
		}
	} else {
		kvs, err := parseKeyValues(dsn)
		if err != nil {
			return "", err
		}
		for _, kv := range kvs {
			if kv[0] != "user" && kv[0] != "password" {
				pairs = append(pairs, kv)
			}
		}
	}
	parts := make([]string, 0, len(pairs)+1)
	timeout := false
	for _, p := range pairs {
		parts = append(parts, p[0]+"="+pgutil.QuoteConninfo(p[1]))
		timeout = timeout || p[0] == "connect_timeout"
	}
	if !timeout {
		// libpq waits for ever by default: a shard whose host stops answering would hang every
		// call routed to it instead of failing with ST502.
		parts = append(parts, "connect_timeout="+DefaultConnectTimeout)
	}
	return strings.Join(parts, " "), nil
}

// parseKeyValues splits a libpq key=value string: values may be single-quoted, with \' and \\
// escapes. The error never repeats the input, which may hold a password.
func parseKeyValues(s string) ([][2]string, error) {
	var out [][2]string
	bad := errors.New("shard: a shard's connection string is neither a postgres:// URL nor libpq key=value pairs")
	for i := 0; i < len(s); {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i == len(s) {
			break
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq <= 0 {
			return nil, bad
		}
		key := strings.TrimSpace(s[i : i+eq])
		i += eq + 1
		for i < len(s) && s[i] == ' ' {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, bad
			}
			i++
		} else {
			for ; i < len(s) && s[i] != ' '; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
		}
		out = append(out, [2]string{key, val.String()})
	}
	if len(out) == 0 {
		return nil, bad
	}
	return out, nil
}

// InitOptions configure Init; the zero value is the defaults.
type InitOptions struct {
	// Partitions is the number of hash partitions: a power of two, at least the shard count,
	// fixed for the store's life (0 means DefaultPartitions).
	Partitions int
}

// Init installs a sharded store: annals.Migrate on every shard, then the proxy's functions and
// the partition map (opts.Partitions hash partitions), mapped round-robin: partition p belongs to shard p mod N + 1. The proxy
// login must be a superuser (PL/Proxy is an untrusted language). Running it again with the same
// shards changes nothing; a different map is refused, as moving partitions moves data.
func Init(ctx context.Context, proxyPool *pgxpool.Pool, shards []Shard, opts InitOptions) (InitResult, error) {
	var res InitResult
	partitions := opts.Partitions
	if partitions == 0 {
		partitions = DefaultPartitions
	}
	switch {
	case len(shards) == 0:
		return res, errors.New("shard: init: no shards given")
	case partitions < len(shards) || partitions&(partitions-1) != 0:
		return res, fmt.Errorf("shard: init: partitions must be a power of two and at least the shard count (%d), got %d", len(shards), partitions)
	}
	seen := map[string]bool{}
	for i, s := range shards {
		if s.Name == "" || seen[s.Name] || s.Pool == nil || s.Conninfo == "" {
			return res, fmt.Errorf("shard: init: shard %d needs a unique name, a pool and a conninfo", i+1)
		}
		seen[s.Name] = true
	}
	for _, s := range shards {
		r, err := annals.Migrate(ctx, s.Pool)
		if err != nil {
			return res, fmt.Errorf("shard: init: migrate shard %s: %w", s.Name, err)
		}
		res.Shards = append(res.Shards, r)
	}
	if _, err := applyProxy(ctx, proxyPool, false); err != nil {
		return res, err
	}
	res.Partitions = partitions
	err := pgx.BeginFunc(ctx, proxyPool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE annals_proxy.shards, annals_proxy.partitions IN EXCLUSIVE MODE"); err != nil {
			return err
		}
		existing, err := loadMap(ctx, tx)
		if err != nil {
			return err
		}
		if len(existing.shards) > 0 {
			if !existing.same(shards, partitions) {
				return fmt.Errorf("shard: init: the proxy already has another map (%d shards, %d partitions): "+
					"moving partitions moves data, see the README's Scale-out section", len(existing.shards), existing.partitions)
			}
			return nil
		}
		for i, s := range shards {
			if _, err := tx.Exec(ctx, "INSERT INTO annals_proxy.shards (shard, name, conninfo) VALUES ($1, $2, $3)",
				i+1, s.Name, s.Conninfo); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO annals_proxy.partitions (partition, shard)
			SELECT g, g % $2 + 1 FROM generate_series(0, $1 - 1) AS g`, partitions, len(shards)); err != nil {
			return err
		}
		res.MapCreated = true
		_, err = tx.Exec(ctx, "SELECT annals_proxy.apply_map()")
		return err
	})
	if err != nil {
		return res, fmt.Errorf("shard: init: write the map: %w", err)
	}
	return res, nil
}

type partitionMap struct {
	shards     []Shard // Name and Conninfo only
	partitions int
}

func (m partitionMap) same(shards []Shard, partitions int) bool {
	if m.partitions != partitions || len(m.shards) != len(shards) {
		return false
	}
	for i, s := range shards {
		if m.shards[i].Name != s.Name || m.shards[i].Conninfo != s.Conninfo {
			return false
		}
	}
	return true
}

func loadMap(ctx context.Context, tx pgx.Tx) (partitionMap, error) {
	var m partitionMap
	rows, err := tx.Query(ctx, "SELECT name, conninfo FROM annals_proxy.shards ORDER BY shard")
	if err != nil {
		return m, err
	}
	for rows.Next() {
		var s Shard
		if err := rows.Scan(&s.Name, &s.Conninfo); err != nil {
			return m, err
		}
		m.shards = append(m.shards, s)
	}
	if err := rows.Err(); err != nil {
		return m, err
	}
	err = tx.QueryRow(ctx, "SELECT count(*) FROM annals_proxy.partitions").Scan(&m.partitions)
	return m, err
}

// proxyLockKey serializes proxy installs, as annals.Migrate's lock does shard installs.
const proxyLockKey = int64(0x616e6e616c7370) // "annalsp"

// applyProxy runs every proxy file, each in its own transaction, under a transaction-level
// advisory lock, unless (force false) the recorded checksum matches this build's. It reports
// whether it applied them.
func applyProxy(ctx context.Context, pool *pgxpool.Pool, force bool) (bool, error) {
	sum, err := Checksum()
	if err != nil {
		return false, err
	}
	applied := false
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_catalog.pg_advisory_xact_lock($1)", proxyLockKey); err != nil {
			return err
		}
		var installed string
		if !force {
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass('annals_proxy.info') IS NOT NULL").Scan(&exists); err != nil {
				return err
			}
			if exists {
				err := tx.QueryRow(ctx, "SELECT files_checksum FROM annals_proxy.info").Scan(&installed)
				if err != nil && !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
			}
			if installed == sum {
				return nil
			}
		}
		names, err := fs.Glob(proxy.FS, "*.sql")
		if err != nil {
			return err
		}
		sort.Strings(names)
		for _, n := range names {
			b, err := fs.ReadFile(proxy.FS, n)
			if err != nil {
				return err
			}
			// A savepoint per file keeps its SET LOCALs to itself, as goose's per-file
			// transactions do for the shard's files.
			if err := pgx.BeginFunc(ctx, tx, func(sub pgx.Tx) error {
				_, err := sub.Exec(ctx, string(b))
				if err == nil {
					_, err = sub.Exec(ctx, "RESET ROLE; RESET search_path")
				}
				return err
			}); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO annals_proxy.info (files_checksum, installed_at)
			VALUES ($1, pg_catalog.clock_timestamp())
			ON CONFLICT (singleton) DO UPDATE SET files_checksum = excluded.files_checksum, installed_at = excluded.installed_at`,
			sum); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT annals_proxy.apply_map() WHERE EXISTS (SELECT FROM annals_proxy.partitions)"); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("shard: install the proxy functions: %w", err)
	}
	return applied, nil
}

// Checksum identifies this build's proxy files (recorded in annals_proxy.info).
func Checksum() (string, error) {
	h := sha256.New()
	names, err := fs.Glob(proxy.FS, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := fs.ReadFile(proxy.FS, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// IsProxy reports whether the pool's database is the proxy of a sharded store.
func IsProxy(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var ok bool
	err := pool.QueryRow(ctx, "SELECT to_regclass('annals_proxy.shards') IS NOT NULL").Scan(&ok)
	return ok, err
}

// MigrateResult reports what Migrate did.
type MigrateResult struct {
	// ProxyApplied is true when the proxy's functions were re-applied (they differed from this build's).
	ProxyApplied bool
	// Shards are the shards' annals.Migrate results, by shard name.
	Shards map[string]annals.MigrateResult
}

// Migrate upgrades a sharded store: annals.Migrate on every shard of the proxy's map, then the
// proxy's functions when they differ from this build's. connect opens an installer pool to a
// shard from its stored conninfo (which has no user: the caller adds the credentials).
func Migrate(ctx context.Context, proxyPool *pgxpool.Pool, connect func(ctx context.Context, conninfo string) (*pgxpool.Pool, error)) (MigrateResult, error) {
	res := MigrateResult{Shards: map[string]annals.MigrateResult{}}
	rows, err := proxyPool.Query(ctx, "SELECT name, conninfo FROM annals_proxy.shards ORDER BY shard")
	if err != nil {
		return res, fmt.Errorf("shard: migrate: read the map: %w", err)
	}
	shards, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Shard, error) {
		var s Shard
		return s, r.Scan(&s.Name, &s.Conninfo)
	})
	if err != nil {
		return res, fmt.Errorf("shard: migrate: read the map: %w", err)
	}
	for _, s := range shards {
		pool, err := connect(ctx, s.Conninfo)
		if err != nil {
			return res, fmt.Errorf("shard: migrate shard %s: %w", s.Name, err)
		}
		r, err := annals.Migrate(ctx, pool)
		pool.Close()
		if err != nil {
			return res, fmt.Errorf("shard: migrate shard %s: %w", s.Name, err)
		}
		res.Shards[s.Name] = r
	}
	res.ProxyApplied, err = applyProxy(ctx, proxyPool, false)
	return res, err
}

// Shards returns the proxy's map: each shard and the partitions it owns.
func Shards(ctx context.Context, proxyPool *pgxpool.Pool) ([]Info, error) {
	rows, err := proxyPool.Query(ctx, "SELECT s.shard, s.name, s.partitions FROM annals.shards() AS s")
	if err != nil {
		return nil, fmt.Errorf("shard: read the map: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Info, error) {
		var i Info
		var parts []int32
		err := r.Scan(&i.Shard, &i.Name, &parts)
		for _, p := range parts {
			i.Partitions = append(i.Partitions, int(p))
		}
		return i, err
	})
}

// Status asks every shard, through the proxy, whether it is reachable, its schema version and
// its feed's last position. A shard that is down is reported, not returned as an error.
func Status(ctx context.Context, proxyPool *pgxpool.Pool) ([]Health, error) {
	rows, err := proxyPool.Query(ctx, `SELECT h.shard, h.name, h.partitions, h.available,
		coalesce(h.schema_version, 0), coalesce(h.last_position, 0), coalesce(h.problem, '')
		FROM annals.shard_health() AS h`)
	if err != nil {
		return nil, fmt.Errorf("shard: status: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Health, error) {
		var h Health
		var parts []int32
		err := r.Scan(&h.Shard, &h.Name, &parts, &h.Available, &h.SchemaVersion, &h.LastPosition, &h.Problem)
		for _, p := range parts {
			h.Partitions = append(h.Partitions, int(p))
		}
		return h, err
	})
}

// Of returns the shard (1..N) storing streamID, as the proxy routes it.
func Of(ctx context.Context, proxyPool *pgxpool.Pool, streamID string) (int, error) {
	var n int
	if err := proxyPool.QueryRow(ctx, "SELECT annals.shard_of($1)", streamID).Scan(&n); err != nil {
		return 0, fmt.Errorf("shard: shard of %q: %w", streamID, err)
	}
	return n, nil
}
