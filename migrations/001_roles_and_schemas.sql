-- +goose Up
-- Roles are cluster-wide and several databases may be installed at once (tests clone many), so
-- creation is serialized by a transaction-scoped advisory lock and skipped when a role exists.
-- +goose StatementBegin
DO $$
DECLARE
    r text;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('annals:roles', 0));
    FOREACH r IN ARRAY ARRAY['annals_owner', 'annals_writer', 'annals_reader', 'annals_bi'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    -- A non-superuser installer (CREATEROLE) must be able to act as the owner role.
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
       AND NOT pg_catalog.pg_has_role(current_user, 'annals_owner', 'MEMBER') THEN
        EXECUTE pg_catalog.format('GRANT annals_owner TO %I', current_user);
    END IF;
END
$$;
-- +goose StatementEnd

CREATE SCHEMA IF NOT EXISTS annals_internal;
ALTER SCHEMA annals_internal OWNER TO annals_owner;
COMMENT ON SCHEMA annals_internal IS
    'Annals storage: tables, partitions, trigger functions and helpers. No application role has privileges here.';
REVOKE ALL ON SCHEMA annals_internal FROM PUBLIC;
-- goose created its version table before this file ran; the owner role reads it for
-- annals.schema_version().
ALTER TABLE IF EXISTS annals_internal.goose_db_version OWNER TO annals_owner;

CREATE SCHEMA annals AUTHORIZATION annals_owner;
COMMENT ON SCHEMA annals IS
    'Annals public API: functions, public views and composite result types.';
REVOKE ALL ON SCHEMA annals FROM PUBLIC;
GRANT USAGE ON SCHEMA annals TO annals_writer, annals_reader, annals_bi;

-- +goose Down
-- annals_internal stays: it holds goose's own version table. Roles stay: other databases in the
-- cluster may use them.
DROP SCHEMA annals CASCADE;
