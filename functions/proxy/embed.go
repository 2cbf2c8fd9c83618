// Package proxy embeds the SQL of a sharded store's proxy database: the PL/Proxy functions that
// route Annals' stream calls to the shard owning the stream, the fan-out reads, and the tables
// holding the partition map. Shards are ordinary Annals installs (package functions and
// migrations); this directory is applied to the proxy only, by package goapi/shard.
//
// Every file is idempotent (IF NOT EXISTS, CREATE OR REPLACE) and re-applied, in name order, on
// every install and upgrade; a later change to a table adds a guarded statement, never an edit
// that fails on an existing proxy.
package proxy

import "embed"

// FS holds every NNN_name.sql file of the proxy, applied in name order.
//
//go:embed *.sql
var FS embed.FS
