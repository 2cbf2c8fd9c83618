// Package proxy embeds the SQL of a sharded store's proxy database: the PL/Proxy functions that
// route Annals' stream calls to the shard owning the stream, the fan-out reads, and the tables
// holding the partition map. Shards are ordinary Annals installs (package functions and
// migrations); this directory is applied to the proxy only, by package goapi/shard.
//
// Every file is idempotent (IF NOT EXISTS, CREATE OR REPLACE) and re-applied, in name order, on
// every install and upgrade; a later change to a table adds a guarded statement, never an edit
// that fails on an existing proxy.
//
// 020_routed_calls.sql is generated from the single-node signatures (internal/proxygen): after
// changing a routed single-node function, or the list of routed calls, run go generate (with
// TEST_DATABASE_URL, as for the tests); TestRoutedCallsGenerated fails until then.
package proxy

//go:generate go test -count=1 -run ^TestRoutedCallsGenerated$ . -update

import "embed"

// FS holds every NNN_name.sql file of the proxy, applied in name order.
//
//go:embed *.sql
var FS embed.FS
