#!/usr/bin/env bash
# A/B of the read and append paths between two builds of Annals, for changes that must not slow
# them down (BENCHMARKS.md, "M10"). Each build installs Annals into a scratch database of its
# own on the same server; both get the same events and an inline projection; pgbench then runs
# each statement against A and B in turn, ROUNDS times, and the script prints B's throughput as
# a ratio of A's. Alternating the two keeps a noisy machine's drift out of the ratio.
#
#   tests/scripts/ab_builds.sh OLD_REF [NEW_REF] [SECONDS] [ROUNDS]
#
# OLD_REF and NEW_REF are git revisions (NEW_REF defaults to the working tree). AB_ONLY, a regular
# expression, keeps the statements whose names match. The server is TEST_DATABASE_URL, else the
# local 127.0.0.1:5432 (see lib.sh). Needs pgbench.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source tests/scripts/lib.sh

old_ref=${1:?usage: ab_builds.sh OLD_REF [NEW_REF] [SECONDS] [ROUNDS]}
new_ref=${2:-}
secs=${3:-4}
rounds=${4:-3}
command -v pgbench >/dev/null || { echo "error: pgbench not found (Debian: postgresql-client)" >&2; exit 1; }
check_server

work=$(mktemp -d)
wt="$work/old"
cleanup() {
    drop_scratch_dbs
    git worktree remove --force "$wt" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "building $old_ref and ${new_ref:-the working tree}" >&2
git worktree add -q --detach "$wt" "$old_ref"
(cd "$wt" && go build -o "$work/annals-a" ./cmd/annals)
if [[ -n $new_ref ]]; then
    git -C "$wt" checkout -q --detach "$new_ref"
    (cd "$wt" && go build -o "$work/annals-b" ./cmd/annals)
else
    go build -o "$work/annals-b" ./cmd/annals
fi

urls=()
for side in a b; do
    db=$(create_scratch_db "annals_ab_$side")
    SCRATCH_DBS+=("$db")
    url=$(db_url "$db")
    urls+=("$url")
    "$work/annals-$side" migrate --database-url "$url" >/dev/null
    # 50 streams of 20 events, one of 1,000, 200 tagged events; an inline projection; a subscription.
    psql -X -q -v ON_ERROR_STOP=1 -d "$url" >/dev/null <<'SQL'
SELECT count(*) FROM generate_series(1, 50) AS g,
       LATERAL annals.append_events('s20-' || g, NULL,
           (SELECT jsonb_agg(jsonb_build_object('type', 'Filled', 'data',
                       jsonb_build_object('i', i, 'sku', 'abc-' || i, 'note', 'some text payload here')))
              FROM generate_series(1, 20) AS i));
SELECT count(*) FROM generate_series(0, 9) AS g,
       LATERAL annals.append_events('s1000-1', g * 100,
           (SELECT jsonb_agg(jsonb_build_object('type', 'Filled', 'data',
                       jsonb_build_object('i', i, 'sku', 'abc-' || i, 'note', 'some text payload here')))
              FROM generate_series(1, 100) AS i));
SELECT annals.append_events('tagged-1', NULL,
           (SELECT jsonb_agg(jsonb_build_object('type', 'Tagged', 'data', jsonb_build_object('i', i),
                                                'tags', jsonb_build_array('t:' || i % 2)))
              FROM generate_series(1, 200) AS i));
SELECT annals.create_subscription('ab');
CREATE SCHEMA ab;
CREATE TABLE ab.seen (n integer NOT NULL);
CREATE FUNCTION ab.note(events annals.event[]) RETURNS void LANGUAGE sql
    AS 'INSERT INTO ab.seen SELECT (e).stream_version::integer FROM unnest(events) AS e';
GRANT USAGE ON SCHEMA ab TO annals_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON ab.seen TO annals_owner;
SELECT annals.register_projection('ab_inline', 'ab.note(annals.event[])', ARRAY['ab.seen']::regclass[]);
ANALYZE;
SQL
done

# name|statement (one pgbench script line each).
cases=(
    "read_stream 20|SELECT count(*) FROM annals.read_stream('s20-7');"
    "read_stream 1000|SELECT count(*) FROM annals.read_stream('s1000-1');"
    "read_stream backwards 10|SELECT count(*) FROM annals.read_stream('s20-7', NULL, 10, true);"
    "read_stream_as_of 500|SELECT count(*) FROM annals.read_stream_as_of('s1000-1', as_of_version => 500);"
    "read_all 10|SELECT count(*) FROM annals.read_all('0', 0, 10);"
    "read_all 1000|SELECT count(*) FROM annals.read_all('0', 0, 1000);"
    "read_category 10|SELECT count(*) FROM annals.read_category('s20', '0', 0, 10);"
    "read_tagged, 100 of 200|SELECT count(*) FROM annals.read_tagged('[{\"tags\": [\"t:1\"]}]');"
    "read_subscription 10|BEGIN; SELECT count(*) FROM annals.read_subscription('ab', 0, 10); ROLLBACK;"
    "append_event + inline projection|\\set id random(1, 1000000000)
SELECT * FROM annals.append_event('ab-' || :id, NULL, 'Filled', '{\"a\": 1}');"
)

tps() { # url script
    pgbench -n -M prepared -T "$secs" -c 1 -f "$2" "$1" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}

printf '%-34s %12s %12s %8s\n' "statement ($rounds x ${secs}s each)" "A tx/s" "B tx/s" "B/A"
for c in "${cases[@]}"; do
    name=${c%%|*}
    [[ $name =~ ${AB_ONLY:-.} ]] || continue
    printf '%s\n' "${c#*|}" >"$work/script.sql"
    runs=()
    for _ in $(seq "$rounds"); do
        runs+=("$(tps "${urls[0]}" "$work/script.sql")" "$(tps "${urls[1]}" "$work/script.sql")")
    done
    printf '%s\n' "${runs[@]}" | awk -v name="$name" '
        NR % 2 { a += $1; next } { b += $1 }
        END { printf "%-34s %12.0f %12.0f %7.2fx\n", name, a / (NR / 2), b / (NR / 2), b / a }'
done
