-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.schema_version()
RETURNS bigint
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
BEGIN ATOMIC
    SELECT coalesce(max(v.version_id), 0)
      FROM annals_internal.goose_db_version AS v
     WHERE v.is_applied;
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.schema_version() IS
    'The newest applied Annals migration version; clients compare it with the version they were built for.';
REVOKE ALL ON FUNCTION annals.schema_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.schema_version() TO annals_writer, annals_reader, annals_bi;
