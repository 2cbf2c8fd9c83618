-- +goose Up
-- annals.read_event looks an event up by its id alone. The unique key (stream_id, event_id) leads
-- with the partition key, and PostgreSQL 15 cannot skip-scan a b-tree, so without a stream id
-- that lookup read every partition sequentially. An index on event_id makes it one index probe
-- per partition (8), whatever the store's size. Its price is one more b-tree entry per appended
-- event.
--
-- Built with a plain CREATE INDEX, which holds a SHARE lock on the events table while it runs:
-- appends wait for the build (about 1.5 s per million stored events on this machine kind), reads
-- do not.
CREATE INDEX events_event_id_idx ON annals_internal.events (event_id);
COMMENT ON INDEX annals_internal.events_event_id_idx IS
    'annals.read_event: an event by id without its stream id (not unique: ids are unique per stream).';

-- +goose Down
DROP INDEX annals_internal.events_event_id_idx;
