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
//	store := annals.New(pool)
//	res, err := store.Append(ctx, "inventory-42", annals.NoStream,
//		annals.EventData{Type: "ItemAdded", Data: map[string]any{"sku": "42", "count": 10}})
//	if errors.Is(err, annals.ErrWrongExpectedVersion) { ... reload and decide again ... }
//	for ev, err := range store.ReadStream(ctx, "inventory-42", annals.ReadOptions{}) { ... }
//
// Errors unwrap to *pgconn.PgError; use errors.Is with the Err... sentinels and errors.As with
// *WrongExpectedVersionError and friends for details.
package annals
