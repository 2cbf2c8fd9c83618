-- +goose Up

-- Limits enforced by annals.append_events. One row, so the append reads it with no branching.
CREATE TABLE annals_internal.settings (
    singleton        boolean PRIMARY KEY DEFAULT true,
    max_event_bytes  integer NOT NULL DEFAULT 1048576,
    max_batch_events integer NOT NULL DEFAULT 10000,
    max_batch_bytes  integer NOT NULL DEFAULT 67108864,
    CONSTRAINT settings_singleton_chk CHECK (singleton),
    CONSTRAINT settings_max_event_bytes_chk CHECK (max_event_bytes > 0),
    CONSTRAINT settings_max_batch_events_chk CHECK (max_batch_events > 0),
    CONSTRAINT settings_max_batch_bytes_chk CHECK (max_batch_bytes > 0)
);
INSERT INTO annals_internal.settings DEFAULT VALUES;
ALTER TABLE annals_internal.settings OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.settings IS
    'Append limits: max_event_bytes (JSON text of one event''s data), max_batch_events and max_batch_bytes (one call''s events argument). Change with annals.configure().';

-- One row per stream. The append serializes on an advisory lock, then reads and moves this row;
-- last_transaction_id lets it refuse an append whose transaction id is older than the previous
-- appender's (it would break per-stream order in the transaction-ordered feed).
CREATE TABLE annals_internal.streams (
    stream_id           text        NOT NULL,
    category            text        NOT NULL,
    stream_version      bigint      NOT NULL,
    last_transaction_id xid8        NOT NULL,
    state               text        NOT NULL DEFAULT 'active',
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    CONSTRAINT streams_pkey PRIMARY KEY (stream_id),
    CONSTRAINT streams_version_chk CHECK (stream_version >= 1),
    CONSTRAINT streams_state_chk CHECK (state IN ('active', 'deleted'))
) WITH (fillfactor = 70);  -- room for HOT updates: every append rewrites its stream's row
ALTER TABLE annals_internal.streams OWNER TO annals_owner;
CREATE INDEX streams_category_idx ON annals_internal.streams (category, stream_id);
COMMENT ON TABLE annals_internal.streams IS
    'One row per stream that has events: current version, state and the last appending transaction id.';

CREATE SEQUENCE annals_internal.global_position_seq AS bigint;
ALTER SEQUENCE annals_internal.global_position_seq OWNER TO annals_owner;
COMMENT ON SEQUENCE annals_internal.global_position_seq IS
    'Global positions: unique and increasing in insert order, with gaps (rolled-back appends).';

-- Hash-partitioned by stream id so (stream_id, stream_version) and (stream_id, event_id) are real
-- unique keys and a sharded deployment can distribute by the same column.
CREATE TABLE annals_internal.events (
    global_position bigint      NOT NULL DEFAULT pg_catalog.nextval('annals_internal.global_position_seq'),
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    transaction_id  xid8        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    category        text        NOT NULL GENERATED ALWAYS AS (pg_catalog.split_part(stream_id, '-', 1)) STORED,
    CONSTRAINT events_pkey PRIMARY KEY (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (stream_id, event_id),
    CONSTRAINT events_stream_version_chk CHECK (stream_version >= 1),
    CONSTRAINT events_schema_version_chk CHECK (schema_version >= 1),
    CONSTRAINT events_data_object_chk CHECK (pg_catalog.jsonb_typeof(data) = 'object'),
    CONSTRAINT events_metadata_object_chk CHECK (pg_catalog.jsonb_typeof(metadata) = 'object')
) PARTITION BY HASH (stream_id);
ALTER TABLE annals_internal.events OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.events IS
    'Every event ever appended. Append-only: UPDATE, DELETE and TRUNCATE are rejected by triggers.';

-- +goose StatementBegin
DO $$
BEGIN
    FOR i IN 0..7 LOOP
        EXECUTE pg_catalog.format(
            'CREATE TABLE annals_internal.events_p%s PARTITION OF annals_internal.events
                 FOR VALUES WITH (MODULUS 8, REMAINDER %s)', i, i);
        EXECUTE pg_catalog.format('ALTER TABLE annals_internal.events_p%s OWNER TO annals_owner', i);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- The gap-free feed reads in (transaction_id, global_position) order: an index scan, no Sort.
CREATE INDEX events_feed_idx ON annals_internal.events (transaction_id, global_position);
CREATE INDEX events_category_feed_idx ON annals_internal.events (category, transaction_id, global_position);

-- The row type every read function returns and every projection handler receives.
CREATE TYPE annals.event AS (
    stream_id       text,
    stream_version  bigint,
    global_position bigint,
    event_id        uuid,
    event_type      text,
    schema_version  integer,
    data            jsonb,
    metadata        jsonb,
    transaction_id  xid8,
    recorded_at     timestamptz
);
ALTER TYPE annals.event OWNER TO annals_owner;
COMMENT ON TYPE annals.event IS
    'One stored event as every Annals read returns it and every projection handler receives it.';

-- What annals.stream_info returns.
CREATE TYPE annals.stream AS (
    stream_id      text,
    stream_version bigint,
    created_at     timestamptz,
    updated_at     timestamptz,
    state          text
);
ALTER TYPE annals.stream OWNER TO annals_owner;
COMMENT ON TYPE annals.stream IS
    'A stream''s current version, creation and last-append times, and state (active or deleted).';

-- Audit trail of lifecycle operations (stream deletion now; archival and erasure later).
CREATE TABLE annals_internal.lifecycle_log (
    log_id         bigint      GENERATED ALWAYS AS IDENTITY,
    stream_id      text        NOT NULL,
    operation      text        NOT NULL,
    stream_version bigint      NOT NULL,
    performed_by   text        NOT NULL,
    performed_at   timestamptz NOT NULL,
    reason         text,
    CONSTRAINT lifecycle_log_pkey PRIMARY KEY (log_id),
    CONSTRAINT lifecycle_log_operation_chk CHECK (operation IN ('delete'))
);
ALTER TABLE annals_internal.lifecycle_log OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.lifecycle_log IS
    'Audit trail of stream lifecycle operations: who did what to which stream, when and why.';

-- Which release is installed; annals.Migrate checks it and skips re-applying unchanged functions.
CREATE TABLE annals_internal.schema_info (
    singleton          boolean     PRIMARY KEY DEFAULT true,
    schema_version     bigint      NOT NULL,
    functions_checksum text        NOT NULL,
    installed_at       timestamptz NOT NULL,
    CONSTRAINT schema_info_singleton_chk CHECK (singleton)
);
ALTER TABLE annals_internal.schema_info OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.schema_info IS
    'The installed migration version and a checksum of the applied functions.';

-- +goose Down
DROP TABLE annals_internal.schema_info;
DROP TABLE annals_internal.lifecycle_log;
DROP TYPE annals.stream;
DROP TYPE annals.event;
DROP TABLE annals_internal.events;
DROP SEQUENCE annals_internal.global_position_seq;
DROP TABLE annals_internal.streams;
DROP TABLE annals_internal.settings;
