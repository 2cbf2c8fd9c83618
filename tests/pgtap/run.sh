#!/usr/bin/env bash
# Runs the pgTAP suite: a fresh database on the server from TEST_DATABASE_URL (else the local
# 127.0.0.1:5432 server as user postgres), Annals installed with `annals migrate`, the pgtap and
# plpgsql_check extensions created, pg_prove over tests/pgtap/*.sql, the database dropped.
# Exits non-zero on any failure. Extra arguments go to pg_prove (e.g. -v, or a subset of files).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source tests/scripts/lib.sh

for tool in psql pg_prove go; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool not found; run make deps" >&2
        exit 1
    fi
done
check_server

db=$(create_scratch_db annals_pgtap)
SCRATCH_DBS+=("$db")
trap drop_scratch_dbs EXIT
url=$(db_url "$db")

echo "pgTAP: installing Annals into scratch database $db"
migrate_db "$url"
psql -X -q -v ON_ERROR_STOP=1 -d "$url" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION pgtap SCHEMA public;
CREATE EXTENSION plpgsql_check SCHEMA public;
SQL

files=("$@")
if [[ ${#files[@]} -eq 0 || ${files[-1]} == -* ]]; then
    files+=(tests/pgtap/[0-9]*.sql)
fi
# pg_prove splits option values on '=', which breaks connection strings with parameters, so psql
# gets the connection string from a wrapper instead of pg_prove's --dbname.
psql_wrapper=$(mktemp)
trap 'rm -f "$psql_wrapper"; drop_scratch_dbs' EXIT
printf '#!/bin/sh\nexec psql "$@" --dbname="$ANNALS_PGTAP_URL"\n' >"$psql_wrapper"
chmod +x "$psql_wrapper"
ANNALS_PGTAP_URL=$url pg_prove --psql-bin "$psql_wrapper" --failures --comments --timer "${files[@]}"
