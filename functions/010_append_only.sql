-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- History is append-only, for every role including the owner. The only sanctioned way to end a
-- stream is annals.delete_stream, which closes it and keeps its events; the only removals are
-- annals.purge_stream and annals.apply_retention (owner only, logged).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.reject_history_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old jsonb;
BEGIN
    -- M13, the one exception: removing an event (or a cold segment) whose removal this
    -- transaction logged first, as annals.purge_stream and annals.apply_retention do
    -- (functions/420_purge_stream.sql). The row is read as JSON: this function guards tables of
    -- several shapes.
    IF TG_OP = 'DELETE' AND TG_TABLE_SCHEMA = 'annals_internal'
       AND (TG_TABLE_NAME LIKE 'events\_p%' OR TG_TABLE_NAME = 'cold_segments') THEN
        v_old := pg_catalog.to_jsonb(OLD) - 'events' - 'data' - 'metadata' - 'event_ids';
        IF EXISTS (SELECT FROM annals_internal.lifecycle_log AS l
                    WHERE l.transaction_id = pg_catalog.pg_current_xact_id()
                      AND l.stream_id = v_old ->> 'stream_id'
                      AND l.operation IN ('purge', 'retention', 'archive')
                      AND coalesce(v_old ->> 'first_version', v_old ->> 'stream_version')::bigint >= l.first_version
                      AND coalesce(v_old ->> 'last_version', v_old ->> 'stream_version')::bigint <= l.stream_version) THEN
            RETURN OLD;
        END IF;
    END IF;
    -- Cold storage (functions/400_cold_storage.sql): annals.compress_events logs the stretch of
    -- the feed it moves before it deletes those rows from the hot table (annals.archive_stream
    -- logs a stream range, checked above), in the transaction that stores them again.
    IF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW' AND TG_TABLE_SCHEMA = 'annals_internal' AND TG_TABLE_NAME LIKE 'events\_p%' THEN
        v_old := pg_catalog.to_jsonb(OLD) - 'data' - 'metadata';
        IF EXISTS (SELECT FROM annals_internal.lifecycle_log AS l
                    WHERE l.transaction_id = pg_catalog.pg_current_xact_id()
                      AND l.stream_id IS NULL
                      AND l.operation = 'compress'
                      AND ((v_old ->> 'transaction_id')::xid8, (v_old ->> 'global_position')::bigint)
                          BETWEEN ((l.details #>> '{from,0}')::xid8, (l.details #>> '{from,1}')::bigint)
                              AND ((l.details #>> '{to,0}')::xid8, (l.details #>> '{to,1}')::bigint)) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'ST405',
        MESSAGE = pg_catalog.format('%s on %I.%I is not allowed: Annals history is append-only',
                                    TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME),
        DETAIL  = jsonb_build_object('table', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 'operation', TG_OP)::text,
        HINT    = 'Append a compensating event instead; close a stream with annals.delete_stream.';
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.reject_history_change() IS
    'Trigger function: rejects UPDATE, DELETE and TRUNCATE on event history (SQLSTATE ST405).';
REVOKE ALL ON FUNCTION annals_internal.reject_history_change() FROM PUBLIC;

-- Row-level triggers on the partitioned parent are cloned onto every partition, present and
-- future; TRUNCATE triggers are statement-level only, so each partition gets its own.
CREATE OR REPLACE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON annals_internal.events
    FOR EACH ROW EXECUTE FUNCTION annals_internal.reject_history_change();
CREATE OR REPLACE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON annals_internal.events
    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.reject_history_change();
-- +goose StatementBegin
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_catalog.pg_inherits
                WHERE inhparent = 'annals_internal.events'::regclass LOOP
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE TRIGGER events_no_truncate BEFORE TRUNCATE ON %s
                 FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.reject_history_change()', part);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- A stream row may change (version, state) but never disappear: its version is what the next
-- append checks against.
CREATE OR REPLACE TRIGGER streams_no_delete
    BEFORE DELETE ON annals_internal.streams
    FOR EACH ROW EXECUTE FUNCTION annals_internal.reject_history_change();
CREATE OR REPLACE TRIGGER streams_no_truncate
    BEFORE TRUNCATE ON annals_internal.streams
    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.reject_history_change();
CREATE OR REPLACE TRIGGER lifecycle_log_append_only
    BEFORE UPDATE OR DELETE ON annals_internal.lifecycle_log
    FOR EACH ROW EXECUTE FUNCTION annals_internal.reject_history_change();
CREATE OR REPLACE TRIGGER lifecycle_log_no_truncate
    BEFORE TRUNCATE ON annals_internal.lifecycle_log
    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.reject_history_change();
