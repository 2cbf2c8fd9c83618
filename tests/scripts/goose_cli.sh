#!/usr/bin/env bash
# Checks the documented goose CLI install path against a fresh database:
#
#   psql -f sql/001_bootstrap.sql
#   goose -env goose.env up
#   goose -env goose.env -dir functions -no-versioning up
#
# then that it matches what `annals migrate` installs (same schema_version(), same schema dump),
# that annals.append_events works (as annals_writer), that a second `goose up` is a no-op and
# that `annals migrate` accepts the CLI-installed database.
#
# The goose CLI is built from the goose version in go.mod, in a temporary module outside the repo
# (its drivers would otherwise add dozens of requirements to go.mod), with every driver but
# postgres left out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source tests/scripts/lib.sh
repo=$PWD

work=$(mktemp -d)
trap 'rm -rf "$work"; drop_scratch_dbs' EXIT

goose_version=$(go list -m -f '{{.Version}}' github.com/pressly/goose/v3)
pgx_version=$(go list -m -f '{{.Version}}' github.com/jackc/pgx/v5)
echo "goose CLI: building github.com/pressly/goose/v3/cmd/goose@$goose_version (postgres driver only)"
mkdir "$work/mod"
cat >"$work/mod/go.mod" <<MOD
module annals.local/goosecli

go 1.24

require (
	github.com/pressly/goose/v3 $goose_version
	github.com/jackc/pgx/v5 $pgx_version
)
MOD
cp go.sum "$work/mod/go.sum"
# Build tags that exist in goose v3.30.0's cmd/goose: each removes one driver.
(cd "$work/mod" && GOFLAGS=-mod=mod go build -o "$work/goose" \
    -tags='no_clickhouse no_libsql no_mssql no_azuresql no_mysql no_sqlite3 no_vertica no_ydb' \
    github.com/pressly/goose/v3/cmd/goose)
goose=$work/goose

check_server
cli_db=$(create_scratch_db annals_goose_cli)
SCRATCH_DBS+=("$cli_db")
ref_db=$(create_scratch_db annals_goose_ref)
SCRATCH_DBS+=("$ref_db")
cli_url=$(db_url "$cli_db")
ref_url=$(db_url "$ref_db")

echo "goose CLI: installing into $cli_db with the README's three commands"
psql -X -q -v ON_ERROR_STOP=1 -d "$cli_url" -f sql/001_bootstrap.sql
GOOSE_DBSTRING=$cli_url "$goose" -env goose.env up
GOOSE_DBSTRING=$cli_url "$goose" -env goose.env -dir functions -no-versioning up

echo "goose CLI: installing into $ref_db with annals migrate, for comparison"
migrate_db "$ref_url"

fail=0
cli_version=$(psql -X -At -v ON_ERROR_STOP=1 -d "$cli_url" -c 'SELECT annals.schema_version()')
ref_version=$(psql -X -At -v ON_ERROR_STOP=1 -d "$ref_url" -c 'SELECT annals.schema_version()')
if [[ $cli_version != "$ref_version" ]]; then
    echo "FAIL: annals.schema_version() is $cli_version after the goose CLI install, $ref_version after annals migrate" >&2
    fail=1
else
    echo "ok: annals.schema_version() = $cli_version, as after annals migrate"
fi

dump() {
    pg_dump --schema-only --schema=annals --schema=annals_internal --schema=annals_guard --dbname="$1" |
        sed -e '/^-- Dumped /d' -e '/^\\restrict /d' -e '/^\\unrestrict /d'
}
if ! diff -u --label 'annals migrate' --label 'goose CLI' <(dump "$ref_url") <(dump "$cli_url"); then
    echo "FAIL: the goose CLI install differs from the annals migrate install (diff above)" >&2
    fail=1
else
    echo "ok: the goose CLI install has the same schema as annals migrate"
fi

appended=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$cli_url" <<'SQL'
SET ROLE annals_writer;
SELECT stream_version FROM annals.append_events('goose-cli-1', 0, '[{"type": "Installed", "data": {"by": "goose"}}, {"type": "Checked"}]');
SELECT count(*) FROM annals.read_stream('goose-cli-1');
SQL
)
if [[ $appended != $'2\n2' ]]; then
    echo "FAIL: append_events/read_stream as annals_writer on the goose CLI install returned: $appended" >&2
    fail=1
else
    echo "ok: annals.append_events and annals.read_stream work as annals_writer"
fi

if ! again=$(GOOSE_DBSTRING=$cli_url "$goose" -env goose.env up 2>&1) || [[ $again != *"no migrations to run"* ]]; then
    echo "FAIL: a second goose up was not a no-op: $again" >&2
    fail=1
else
    echo "ok: a second goose up is a no-op"
fi

if ! migrate_db "$cli_url"; then
    echo "FAIL: annals migrate refused the goose CLI install" >&2
    fail=1
else
    echo "ok: annals migrate accepts the goose CLI install"
fi

if [[ $fail -ne 0 ]]; then
    echo "goose CLI check FAILED" >&2
    exit 1
fi
echo "goose CLI check passed"
