-- +goose Up
-- Appends that skipped an inline projection because a rebuild held it. A successful rebuild
-- applies their events and clears the rows in its own transaction; when the rebuild fails the
-- rows stay, committed by the appends themselves, and the projection shows as stale until the
-- next rebuild, instead of silently missing those events.
CREATE TABLE annals_internal.projection_skips (
    projection_name text        NOT NULL,
    transaction_id  xid8        NOT NULL,
    skipped_at      timestamptz NOT NULL,
    CONSTRAINT projection_skips_pkey PRIMARY KEY (projection_name, transaction_id),
    CONSTRAINT projection_skips_projection_fkey FOREIGN KEY (projection_name)
        REFERENCES annals_internal.projections (projection_name) ON DELETE CASCADE
);
ALTER TABLE annals_internal.projection_skips OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.projection_skips IS
    'Appending transactions that skipped an inline projection during its rebuild; left behind only by a failed rebuild.';

-- +goose Down
DROP TABLE annals_internal.projection_skips;
