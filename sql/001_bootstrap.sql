-- Bootstrap for installs driven by the goose CLI (the Go migrator runs the same statement itself).
-- goose keeps its version table in annals_internal so it never collides with an application's own
-- goose_db_version; the schema must exist before goose creates that table. Run once, as the
-- installing role:   psql "$DATABASE_URL" -f sql/001_bootstrap.sql
CREATE SCHEMA IF NOT EXISTS annals_internal;
