-- +goose Up
-- Cold storage of tagged events (M11 with M15). A segment's events are stored without their tags
-- (annals.event has none); the tags of its tagged events stay here, uncompressed, one row per
-- tagged event, with what annals.read_tagged and the conditional append's check select on: the
-- tags (GIN, as events_tags_idx on the hot table), the type and the feed position. The event
-- itself is read from its segment. Untagged events, usually most of the store, have no row.
-- A row goes with its segment (ON DELETE CASCADE: purge_stream and apply_retention remove whole
-- segments, and the history trigger lets the rows go only for a range they logged).
CREATE TABLE annals_internal.cold_tags (
    segment_id      bigint NOT NULL,
    stream_id       text   NOT NULL,
    stream_version  bigint NOT NULL,
    global_position bigint NOT NULL,
    transaction_id  xid8   NOT NULL,
    event_type      text   NOT NULL,
    tags            text[] NOT NULL,
    CONSTRAINT cold_tags_pkey PRIMARY KEY (stream_id, stream_version),
    CONSTRAINT cold_tags_segment_fkey FOREIGN KEY (segment_id)
        REFERENCES annals_internal.cold_segments (segment_id) ON DELETE CASCADE
);
ALTER TABLE annals_internal.cold_tags OWNER TO annals_owner;
CREATE INDEX cold_tags_tags_idx ON annals_internal.cold_tags USING gin (tags);
CREATE INDEX cold_tags_segment_idx ON annals_internal.cold_tags (segment_id);
COMMENT ON TABLE annals_internal.cold_tags IS
    'The tags of cold tagged events, one row per event (its segment holds the event): what read_tagged and conditional appends search.';
REVOKE ALL ON TABLE annals_internal.cold_tags FROM PUBLIC;

-- +goose Down
DROP TABLE annals_internal.cold_tags;
