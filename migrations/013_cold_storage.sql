-- +goose Up
-- Cold storage (annals.compress_events, annals.archive_stream): older events move out of
-- annals_internal.events into compressed segments. A segment holds up to 100 consecutive
-- versions of one stream as one annals.event[] value, which PostgreSQL compresses as a whole
-- (lz4 where the server has it, else pglz): single events are below the TOAST threshold and never
-- compressed, a segment of a hundred similar events is several kB and compresses 4-5 times
-- (BENCHMARKS.md, "Cold storage"). Every segment belongs to a batch: the events one move took,
-- whose transaction id span lets the feed find the segments around a checkpoint.

CREATE SEQUENCE annals_internal.cold_batch_seq AS bigint;
ALTER SEQUENCE annals_internal.cold_batch_seq OWNER TO annals_owner;
COMMENT ON SEQUENCE annals_internal.cold_batch_seq IS 'Cold storage batch ids, in move order.';

CREATE TABLE annals_internal.cold_batches (
    batch_id   bigint      NOT NULL,
    lo_tx      xid8        NOT NULL,
    lo_pos     bigint      NOT NULL,
    hi_tx      xid8        NOT NULL,
    hi_pos     bigint      NOT NULL,
    -- lo_tx..hi_tx as bigints, for the feed's overlap search (GiST).
    tx_span    int8range   NOT NULL,
    events     bigint      NOT NULL,
    kind       text        NOT NULL,
    moved_at   timestamptz NOT NULL,
    CONSTRAINT cold_batches_pkey PRIMARY KEY (batch_id),
    CONSTRAINT cold_batches_order_chk CHECK ((lo_tx, lo_pos) <= (hi_tx, hi_pos)),
    CONSTRAINT cold_batches_events_chk CHECK (events >= 1),
    CONSTRAINT cold_batches_kind_chk CHECK (kind IN ('compress', 'archive'))
);
ALTER TABLE annals_internal.cold_batches OWNER TO annals_owner;
CREATE INDEX cold_batches_hi_idx ON annals_internal.cold_batches (hi_tx, hi_pos);
CREATE INDEX cold_batches_span_idx ON annals_internal.cold_batches USING gist (tx_span);
COMMENT ON TABLE annals_internal.cold_batches IS
    'One row per cold storage move (a compress_events chunk or an archive_stream call): the feed span (transaction id, position) of the events it moved.';

CREATE SEQUENCE annals_internal.cold_segment_seq AS bigint;
ALTER SEQUENCE annals_internal.cold_segment_seq OWNER TO annals_owner;
COMMENT ON SEQUENCE annals_internal.cold_segment_seq IS 'Cold storage segment ids.';

CREATE TABLE annals_internal.cold_segments (
    segment_id    bigint          NOT NULL,
    batch_id      bigint          NOT NULL,
    stream_id     text            NOT NULL,
    category      text            NOT NULL,
    first_version bigint          NOT NULL,
    last_version  bigint          NOT NULL,
    -- The events' ids, uncompressed, for annals.read_event by id (GIN).
    event_ids     uuid[]          NOT NULL,
    events        annals.event[]  NOT NULL,
    CONSTRAINT cold_segments_pkey PRIMARY KEY (segment_id),
    CONSTRAINT cold_segments_stream_key UNIQUE (stream_id, first_version),
    CONSTRAINT cold_segments_versions_chk CHECK (first_version >= 1 AND last_version >= first_version),
    CONSTRAINT cold_segments_count_chk CHECK (cardinality(events) = last_version - first_version + 1
                                              AND cardinality(event_ids) = cardinality(events)),
    CONSTRAINT cold_segments_batch_fkey FOREIGN KEY (batch_id) REFERENCES annals_internal.cold_batches (batch_id)
) WITH (toast_tuple_target = 128);
ALTER TABLE annals_internal.cold_segments OWNER TO annals_owner;
CREATE INDEX cold_segments_batch_idx ON annals_internal.cold_segments (batch_id);
CREATE INDEX cold_segments_event_ids_idx ON annals_internal.cold_segments USING gin (event_ids);
COMMENT ON TABLE annals_internal.cold_segments IS
    'Cold events: up to 100 consecutive versions of one stream per row, stored as a compressed annals.event[] exactly as read_stream(raw) returns them.';

-- lz4 when this server was built with it (smaller and several times faster to pack), else pglz.
-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE 'ALTER TABLE annals_internal.cold_segments ALTER COLUMN events SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    ALTER TABLE annals_internal.cold_segments ALTER COLUMN events SET COMPRESSION pglz;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE annals_internal.cold_segments;
DROP SEQUENCE annals_internal.cold_segment_seq;
DROP TABLE annals_internal.cold_batches;
DROP SEQUENCE annals_internal.cold_batch_seq;
