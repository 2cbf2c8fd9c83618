-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- An events row as the annals.event it holds: the one place that lists the stored columns, so a
-- read over the table or over cold segments (annals.event already) passes its row whole.
-- Inlined wherever it is called. Taking the table's row type, it makes PostgreSQL refuse column
-- type changes of events (a migration that needs one drops it first; the functions pass after the
-- migrations creates it again).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.as_event(e annals_internal.events)
RETURNS annals.event
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN ROW((e).stream_id, (e).stream_version, (e).global_position, (e).event_id, (e).event_type,
           (e).schema_version, (e).data, (e).metadata, (e).transaction_id, (e).recorded_at)::annals.event;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.as_event(annals_internal.events) IS
    'An events row as the annals.event it stores (no upcasting, no decryption).';
REVOKE ALL ON FUNCTION annals_internal.as_event(annals_internal.events) FROM PUBLIC;
