-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Here, not beside the upcasting helpers they call (025_upcasting.sql), because their SQL bodies
-- bind at creation to the personal-data functions of 430_personal_data.sql. Every caller is
-- PL/pgSQL (or generated at run time), so it may come after them.

-- An event as every read returns it: renamed and upcast when its stored type is in `up`
-- (annals_internal.types_to_upcast(), or NULL for raw reads), personal data decrypted (raw too).
-- Inlined by the planner, whole-row argument included (each (e).field becomes the column), so
-- `(annals_internal.as_read(e, up)).*` evaluates each CASE once and costs nothing when up is NULL;
-- TestReadsInlineAsRead (tests/plan_test.go) and pgTAP 004 check that it is.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.as_read(e annals.event, up text[])
RETURNS annals.event
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN ROW(annals_internal.unqualify((e).stream_id), (e).stream_version,  -- M15: without the tenant prefix
           (e).global_position, (e).event_id,
           CASE WHEN (e).event_type = ANY (up) THEN annals_internal.current_type((e).event_type) ELSE (e).event_type END,
           CASE WHEN (e).event_type = ANY (up) THEN annals_internal.upcast_version((e).event_type, (e).schema_version)
                ELSE (e).schema_version END,
           -- M13: personal data (the "$pii" marker, 430_personal_data.sql) decrypted before upcasting.
           CASE WHEN (e).event_type = ANY (up)
                THEN annals_internal.upcast_data((e).event_type, (e).schema_version,
                         CASE WHEN (e).metadata ? '$pii' THEN annals_internal.reveal_data((e).event_type, (e).data, (e).metadata)
                              ELSE (e).data END)
                WHEN (e).metadata ? '$pii' THEN annals_internal.reveal_data((e).event_type, (e).data, (e).metadata)
                ELSE (e).data END,
           CASE WHEN (e).metadata ? '$pii' THEN annals_internal.reveal_metadata((e).event_type, (e).metadata)
                ELSE (e).metadata END,
           (e).transaction_id, (e).recorded_at)::annals.event;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.as_read(annals.event, text[]) IS
    'An event as reads return it: renamed and upcast when its type is listed in up (NULL: as stored), personal data revealed.';
REVOKE ALL ON FUNCTION annals_internal.as_read(annals.event, text[]) FROM PUBLIC;

-- The same for a row of the events table.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.as_read(e annals_internal.events, up text[])
RETURNS annals.event
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN annals_internal.as_read(annals_internal.as_event(e), up);
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.as_read(annals_internal.events, text[]) IS
    'An events row as reads return it (as_read of its annals.event).';
REVOKE ALL ON FUNCTION annals_internal.as_read(annals_internal.events, text[]) FROM PUBLIC;

-- Its predecessor took the ten columns one by one; every call listed them.
DROP FUNCTION IF EXISTS annals_internal.as_read(text, bigint, bigint, uuid, text, integer, jsonb, jsonb, xid8, timestamptz, text[]);
