-- +goose Up
-- Objects are created as their owner; names in SQL-standard bodies bind at creation, so pin
-- the search path here too.
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- One notification per appending statement with an empty payload: PostgreSQL folds identical
-- notifications within a transaction, the payload never carries data, and listeners re-read the
-- feed. NOTIFY serializes committing transactions on a cluster-wide lock, so it can be switched
-- off (annals.configure(notify => false)); that disables the trigger, costing nothing at all.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.notify_append()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('annals_events', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.notify_append() IS
    'Trigger function: NOTIFY annals_events with an empty payload once per appending statement.';
REVOKE ALL ON FUNCTION annals_internal.notify_append() FROM PUBLIC;

CREATE OR REPLACE TRIGGER events_notify
    AFTER INSERT ON annals_internal.events
    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.notify_append();

-- +goose StatementBegin
DO $$
BEGIN
    IF NOT (SELECT s.notify FROM annals_internal.settings AS s) THEN
        ALTER TABLE annals_internal.events DISABLE TRIGGER events_notify;
    END IF;
END
$$;
-- +goose StatementEnd
