# Shared by the test scripts (sourced, not run): find the server, make and drop scratch databases.
#
# The server is TEST_DATABASE_URL when set (a URL or a key=value connection string pointing at a
# maintenance database such as postgres), else the local 127.0.0.1:5432 server as user postgres.

ADMIN_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}

# Scratch databases this shell created; drop_scratch_dbs removes them (installed as an EXIT trap).
SCRATCH_DBS=()

# admin_psql ARGS... runs psql against the maintenance database, failing on the first error.
admin_psql() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_URL" "$@"
}

# db_url NAME prints the connection string of database NAME on the same server.
db_url() {
    local name=$1
    case $ADMIN_URL in
        postgres://* | postgresql://*)
            # Replace the path (the database name), keep user, host, port and query parameters.
            local scheme=${ADMIN_URL%%://*} rest=${ADMIN_URL#*://}
            local authority=${rest%%[/?]*} query=
            [[ $rest == *\?* ]] && query="?${rest#*\?}"
            printf '%s://%s/%s%s\n' "$scheme" "$authority" "$name" "$query"
            ;;
        *)
            # key=value form: a later keyword wins.
            printf '%s dbname=%s\n' "$ADMIN_URL" "$name"
            ;;
    esac
}

# check_server fails with a clear message when the server cannot be reached.
check_server() {
    if ! admin_psql -Atc 'SELECT 1' >/dev/null; then
        echo "error: cannot connect to PostgreSQL at ${ADMIN_URL}" >&2
        echo "       set TEST_DATABASE_URL, or start a local server on 127.0.0.1:5432 (user postgres, trust auth)" >&2
        return 1
    fi
}

# create_scratch_db PREFIX creates a fresh, empty database and prints its name.
create_scratch_db() {
    local name
    name="$1_$(date +%s)_$$_${RANDOM}"
    admin_psql -c "CREATE DATABASE \"$name\"" >/dev/null
    printf '%s\n' "$name"
}

drop_scratch_dbs() {
    local name
    for name in "${SCRATCH_DBS[@]}"; do
        admin_psql -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 ||
            echo "warning: could not drop scratch database $name" >&2
    done
    SCRATCH_DBS=()
}

# migrate_db URL installs Annals into the database at URL with the project's own migrator.
migrate_db() {
    DATABASE_URL=$1 go run ./cmd/annals migrate
}
