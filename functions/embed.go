// Package functions embeds the repeatable half of Annals' schema: every function, trigger
// function, trigger and plain view, one object or tight group per NNN_name.sql file. The files
// are idempotent (CREATE OR REPLACE) and re-applied after the versioned migrations.
package functions

import "embed"

// FS holds every NNN_name.sql file, applied in numeric order without version tracking.
//
//go:embed *.sql
var FS embed.FS
