// Package annals is the Go wrapper of Annals, event sourcing inside PostgreSQL.
//
// The database does the work: annals.append_events checks the expected version and appends in one
// round trip, triggers keep projections current, and reads are SQL functions. This package calls
// those functions through a *pgxpool.Pool you own and maps their errors to typed Go errors.
//
// Quick start:
//
//	pool, _ := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	if _, err := annals.Migrate(ctx, pool); err != nil { ... } // once, as an installer role
//	store := annals.New(pool, annals.ClientOptions{})
//	res, err := store.Append(ctx, "inventory-42", annals.NoStream,
//		annals.EventData{Type: "ItemAdded", Data: map[string]any{"sku": "42", "count": 10}})
//	if errors.Is(err, annals.ErrWrongExpectedVersion) { ... reload and decide again ... }
//	for ev, err := range store.ReadStream(ctx, "inventory-42", annals.ReadOptions{}) { ... }
//
// Errors unwrap to *pgconn.PgError; use errors.Is with the Err... sentinels and errors.As with
// *WrongExpectedVersionError and friends for details.
//
// Package domain (goapi/domain) builds the domain layer on these calls: event type registry,
// deciders, aggregates and repositories.
//
// Package annalstest tests deciders and aggregates without a database (given/when/then) and
// gives integration tests a fresh migrated database.
//
// Connection poolers: everything works through PgBouncer in session mode as on a direct
// connection. In transaction mode (the usual reason to run PgBouncer), configure the pool with a
// query mode that keeps no named prepared statements on the server, such as
// pgx.QueryExecModeCacheDescribe or pgx.QueryExecModeExec (default_query_exec_mode=cache_describe
// in the URL): with pgx's default mode, PgBouncer before 1.21 (or without
// max_prepared_statements) fails with "prepared statement ... already exists" (42P05) or "does
// not exist" (26000). Every call of this package, Migrate included, works in every query mode.
// LISTEN cannot receive in transaction mode: the Subscriber (and Client.ListenEvents) finds that
// out at start, logs it once and polls every Subscriber.FallbackPollInterval; give it a direct
// connection with Subscriber.ListenConfig to keep the wake-ups.
package annals
