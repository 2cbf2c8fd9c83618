-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Here, not beside the upcasting helpers it calls (025_upcasting.sql), because its SQL body binds
-- at creation to the personal-data functions of 430_personal_data.sql. Every caller is PL/pgSQL
-- (or generated at run time), so it may come after them.
-- An events row as every read returns it: renamed and upcast when its stored type is in `up`
-- (annals_internal.types_to_upcast(), or NULL for raw reads), personal data decrypted (raw too). Inlined by the planner, so
-- `(annals_internal.as_read(...)).*` evaluates each CASE once and costs nothing when up is NULL.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.as_read(
    stream_id text, stream_version bigint, global_position bigint, event_id uuid, event_type text,
    schema_version integer, data jsonb, metadata jsonb, transaction_id xid8, recorded_at timestamptz,
    up text[])
RETURNS annals.event
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN ROW(annals_internal.unqualify(stream_id), stream_version,  -- M15: without the tenant prefix
           global_position, event_id,
           CASE WHEN event_type = ANY (up) THEN annals_internal.current_type(event_type) ELSE event_type END,
           CASE WHEN event_type = ANY (up) THEN annals_internal.upcast_version(event_type, schema_version) ELSE schema_version END,
           -- M13: personal data (the "$pii" marker, 430_personal_data.sql) decrypted before upcasting.
           CASE WHEN event_type = ANY (up)
                THEN annals_internal.upcast_data(event_type, schema_version,
                         CASE WHEN metadata ? '$pii' THEN annals_internal.reveal_data(event_type, data, metadata) ELSE data END)
                WHEN metadata ? '$pii' THEN annals_internal.reveal_data(event_type, data, metadata)
                ELSE data END,
           CASE WHEN metadata ? '$pii' THEN annals_internal.reveal_metadata(event_type, metadata) ELSE metadata END,
           transaction_id, recorded_at)::annals.event;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.as_read(text, bigint, bigint, uuid, text, integer, jsonb, jsonb, xid8, timestamptz, text[]) IS
    'A stored event as reads return it: renamed and upcast when its type is listed in up (NULL: as stored).';
REVOKE ALL ON FUNCTION annals_internal.as_read(text, bigint, bigint, uuid, text, integer, jsonb, jsonb, xid8, timestamptz, text[]) FROM PUBLIC;
