-- +goose Up

-- The latest snapshot per (stream, snapshot type): an aggregate's state at a stream version, in a
-- schema version of its own so a code change can ignore old shapes.
CREATE TABLE annals_internal.snapshots (
    stream_id      text        NOT NULL,
    snapshot_type  text        NOT NULL,
    schema_version integer     NOT NULL,
    stream_version bigint      NOT NULL,
    state          jsonb       NOT NULL,
    saved_at       timestamptz NOT NULL,
    CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id, snapshot_type),
    CONSTRAINT snapshots_schema_version_chk CHECK (schema_version >= 1),
    CONSTRAINT snapshots_stream_version_chk CHECK (stream_version >= 1)
);
ALTER TABLE annals_internal.snapshots OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.snapshots IS
    'Latest snapshot per (stream_id, snapshot_type): state at stream_version, in the state''s schema_version.';

-- Upcasters lift an event type's data from one schema version to the next, on read; stored bytes
-- never change. The function is kept as text (pg_upgrade refuses regprocedure columns).
CREATE TABLE annals_internal.upcasters (
    event_type    text        NOT NULL,
    from_version  integer     NOT NULL,
    upcaster      text        NOT NULL,
    upcaster_call text        NOT NULL,
    registered_at timestamptz NOT NULL,
    CONSTRAINT upcasters_pkey PRIMARY KEY (event_type, from_version),
    CONSTRAINT upcasters_from_version_chk CHECK (from_version >= 1)
);
ALTER TABLE annals_internal.upcasters OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.upcasters IS
    'Upcasters: a function (data jsonb) RETURNS jsonb lifting event_type data from from_version to from_version + 1.';

-- A renamed event type: events stored under the old name read as the new one.
CREATE TABLE annals_internal.event_type_aliases (
    alias         text        NOT NULL,
    event_type    text        NOT NULL,
    registered_at timestamptz NOT NULL,
    CONSTRAINT event_type_aliases_pkey PRIMARY KEY (alias),
    CONSTRAINT event_type_aliases_not_self_chk CHECK (alias <> event_type)
);
ALTER TABLE annals_internal.event_type_aliases OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.event_type_aliases IS
    'Old event type names (alias) read as event_type.';

-- The read functions gain a `raw` argument (stored bytes, no upcasting): new signatures.
DROP FUNCTION IF EXISTS annals.read_stream(text, bigint, integer, boolean);
DROP FUNCTION IF EXISTS annals.read_stream_as_of(text, bigint, timestamptz, bigint, integer);
DROP FUNCTION IF EXISTS annals.read_all(xid8, bigint, integer, text[], text[]);
DROP FUNCTION IF EXISTS annals.read_category(text, xid8, bigint, integer, integer, integer);

-- +goose Down
DROP TABLE annals_internal.event_type_aliases;
DROP TABLE annals_internal.upcasters;
DROP TABLE annals_internal.snapshots;
