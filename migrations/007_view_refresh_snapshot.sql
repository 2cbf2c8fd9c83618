-- +goose Up
-- What a refresh saw, exactly: events_behind then counts the events invisible to that snapshot,
-- instead of everything after the (conservative) barrier position.
ALTER TABLE annals_internal.materialized_views ADD COLUMN refreshed_snapshot pg_snapshot;
COMMENT ON COLUMN annals_internal.materialized_views.refreshed_snapshot IS
    'The snapshot taken just before the last refresh: events invisible to it are not in the view.';

-- +goose Down
ALTER TABLE annals_internal.materialized_views DROP COLUMN refreshed_snapshot;
