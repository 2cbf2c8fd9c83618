// Package migrations embeds Annals' versioned goose migrations: schemas, roles' table grants,
// tables, partitions, indexes and types. Files are append-only once released; functions,
// triggers and views live in package functions and are re-applied on every migrate.
package migrations

import "embed"

// FS holds every NNN_name.sql migration, applied in version order by goose.
//
//go:embed *.sql
var FS embed.FS
