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
    -- M13, the one exception here: removing a cold segment (and the tags kept beside it) whose
    -- removal this transaction logged first, as annals.purge_stream and annals.apply_retention do
    -- (functions/420_purge_stream.sql). The row is read as JSON: this function guards tables of
    -- several shapes. DELETE on events has its own check, once per statement
    -- (annals_internal.check_history_delete below).
    IF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW' AND TG_TABLE_SCHEMA = 'annals_internal'
       AND TG_TABLE_NAME IN ('cold_segments', 'cold_tags') THEN
        v_old := pg_catalog.to_jsonb(OLD) - 'events' - 'event_ids' - 'tags';
        IF EXISTS (SELECT FROM annals_internal.lifecycle_log AS l
                    WHERE l.transaction_id = pg_catalog.pg_current_xact_id()
                      AND l.stream_id = v_old ->> 'stream_id'
                      AND l.operation IN ('purge', 'retention', 'archive')
                      AND coalesce(v_old ->> 'first_version', v_old ->> 'stream_version')::bigint >= l.first_version
                      AND coalesce(v_old ->> 'last_version', v_old ->> 'stream_version')::bigint <= l.stream_version) THEN
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

-- The one exception for events (M13): removing events whose removal this transaction logged
-- first, as annals.purge_stream and annals.apply_retention do (functions/420_purge_stream.sql), or
-- that cold storage moves (functions/400_cold_storage.sql: annals.archive_stream logs a stream
-- range, annals.compress_events the stretch of the feed it moves, before it deletes those rows in
-- the transaction that stores them again). One check per DELETE statement, after it, over the rows
-- it deleted (the transition table deleted_events): a query per deleted row was most of the time
-- compress_events took (BENCHMARKS.md, "Cold storage"). The statement is undone with the error.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_history_delete()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_LEVEL = 'STATEMENT' AND TG_WHEN = 'AFTER'
       AND NOT EXISTS (
           SELECT FROM deleted_events AS o
            WHERE NOT EXISTS (
                  SELECT FROM annals_internal.lifecycle_log AS l
                   WHERE l.transaction_id = pg_catalog.pg_current_xact_id()
                     AND ((l.stream_id = o.stream_id
                           AND l.operation IN ('purge', 'retention', 'archive')
                           AND o.stream_version BETWEEN l.first_version AND l.stream_version)
                       OR (l.stream_id IS NULL
                           AND l.operation = 'compress'
                           AND (o.transaction_id, o.global_position)
                               BETWEEN ((l.details #>> '{from,0}')::xid8, (l.details #>> '{from,1}')::bigint)
                                   AND ((l.details #>> '{to,0}')::xid8, (l.details #>> '{to,1}')::bigint))))) THEN
        RETURN NULL;
    END IF;
    -- reject_history_change's error, raised here too: trigger functions run as the role whose
    -- statement fired them, which may not execute annals_internal.raise_error.
    RAISE EXCEPTION USING
        ERRCODE = 'ST405',
        MESSAGE = pg_catalog.format('%s on %I.%I is not allowed: Annals history is append-only',
                                    TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME),
        DETAIL  = jsonb_build_object('table', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 'operation', TG_OP)::text,
        HINT    = 'Append a compensating event instead; close a stream with annals.delete_stream.';
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_history_delete() IS
    'Trigger function (AFTER DELETE, per statement, transition table deleted_events): rejects the DELETE of events (SQLSTATE ST405) unless this transaction logged each deleted row''s removal (purge, retention, archive, compress).';
REVOKE ALL ON FUNCTION annals_internal.check_history_delete() FROM PUBLIC;

-- Row-level triggers on the partitioned parent are cloned onto every partition, present and
-- future; TRUNCATE triggers are statement-level only, so each partition gets its own.
CREATE OR REPLACE TRIGGER events_append_only
    BEFORE UPDATE ON annals_internal.events
    FOR EACH ROW EXECUTE FUNCTION annals_internal.reject_history_change();
-- DELETE is checked once per statement (annals_internal.check_history_delete), on the parent and
-- on each partition: a DELETE naming a partition fires that partition's statement triggers only.
CREATE OR REPLACE TRIGGER events_delete_check
    AFTER DELETE ON annals_internal.events
    REFERENCING OLD TABLE AS deleted_events
    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.check_history_delete();
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
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE TRIGGER events_delete_check AFTER DELETE ON %s
                 REFERENCING OLD TABLE AS deleted_events
                 FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.check_history_delete()', part);
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
