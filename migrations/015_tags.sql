-- +goose Up
-- M15, dynamic consistency boundaries. An event's tags ("course:7", "student:42"), stored with it
-- as given; NULL for an untagged event (no default: adding the column rewrites nothing, and the
-- append of an untagged event writes no more than before).
ALTER TABLE annals_internal.events ADD COLUMN tags text[];
COMMENT ON COLUMN annals_internal.events.tags IS
    'The event''s tags (DCB consistency boundaries), as appended; NULL when it has none.';

-- annals.read_tagged and append_conditional's check find events by tag containment (tags @> ...).
-- Partial: untagged events, usually most of the store, are not in the index and cost it nothing.
CREATE INDEX events_tags_idx ON annals_internal.events USING gin (tags) WHERE tags IS NOT NULL;

-- What a conditional append at REPEATABLE READ or SERIALIZABLE needs beyond its advisory locks:
-- one row per tag lock key, updated by every conditional append whose events carry that key and
-- read FOR SHARE by every conditional append whose condition has it. A snapshot taken before the
-- locks cannot see a conflicting append that committed in between, but locking a row that such an
-- append updated fails with 40001 instead of passing the check on stale facts.
CREATE TABLE annals_internal.tag_heads (
    lock_key       bigint NOT NULL,
    transaction_id xid8,
    CONSTRAINT tag_heads_pkey PRIMARY KEY (lock_key)
);
ALTER TABLE annals_internal.tag_heads OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.tag_heads IS
    'One row per (event type, tag) lock key a conditional append wrote or checked: the last conditional appender''s transaction id. Makes a stale snapshot fail (40001) at REPEATABLE READ.';
REVOKE ALL ON TABLE annals_internal.tag_heads FROM PUBLIC;

-- +goose Down
DROP TABLE annals_internal.tag_heads;
DROP INDEX annals_internal.events_tags_idx;
ALTER TABLE annals_internal.events DROP COLUMN tags;
