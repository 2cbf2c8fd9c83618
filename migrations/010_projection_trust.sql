-- +goose Up
-- A projection whose tables miss part of the history: registered over matching events, or changed,
-- and not rebuilt since. annals.projections shows it as 'incomplete'.
ALTER TABLE annals_internal.projections ADD COLUMN incomplete_since timestamptz;
COMMENT ON COLUMN annals_internal.projections.incomplete_since IS
    'When the projection''s tables stopped holding its whole history (registration over existing events, or a change of handler, tables or filters); NULL after a successful rebuild.';
-- The number (from the projection's rebuild-attempts sequence) of the last successful rebuild. A
-- failed rebuild rolls back everything but its sequence value, so the sequence runs ahead.
ALTER TABLE annals_internal.projections ADD COLUMN rebuilt_attempt bigint;
COMMENT ON COLUMN annals_internal.projections.rebuilt_attempt IS
    'Attempt number of the last successful rebuild; behind annals.rebuild_attempts(name) when a later rebuild failed.';

-- Inline projections registered over events before this column existed and never rebuilt.
UPDATE annals_internal.projections AS p
   SET incomplete_since = p.created_at
 WHERE p.mode = 'inline' AND p.rebuilt_at IS NULL
   AND EXISTS (SELECT FROM annals_internal.events AS e
                WHERE e.recorded_at < p.created_at
                  AND (p.event_types IS NULL
                       OR coalesce((SELECT a.event_type FROM annals_internal.event_type_aliases AS a WHERE a.alias = e.event_type),
                                   e.event_type) = ANY (p.event_types))
                  AND (p.categories IS NULL OR e.category = ANY (p.categories)));

-- +goose Down
ALTER TABLE annals_internal.projections DROP COLUMN rebuilt_attempt;
ALTER TABLE annals_internal.projections DROP COLUMN incomplete_since;
