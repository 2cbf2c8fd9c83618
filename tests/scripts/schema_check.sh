#!/usr/bin/env bash
# Fails when sql/900_schema.sql differs from the schema a fresh `annals migrate` installs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
tests/scripts/schema_dump.sh "$fresh"
if ! diff -u --label sql/900_schema.sql --label 'fresh install' sql/900_schema.sql "$fresh"; then
    echo >&2
    echo "schema dump is stale: run make schema-dump (and commit sql/900_schema.sql with the change that caused it)" >&2
    exit 1
fi
echo "schema dump sql/900_schema.sql matches a fresh install"
