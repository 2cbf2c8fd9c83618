-- +goose Up
-- An append that notes a skip must not lock the projection's registry row: the foreign key's
-- KEY SHARE lock made an append wait for a registry change (drop, re-register) that itself waits
-- for the append's hold on the events table. annals.drop_projection deletes the skips itself.
ALTER TABLE annals_internal.projection_skips DROP CONSTRAINT projection_skips_projection_fkey;
COMMENT ON TABLE annals_internal.projection_skips IS
    'Appending transactions that skipped an inline projection during its rebuild; left behind only by a failed rebuild. No foreign key: appends must not lock the registry; drop_projection deletes a projection''s rows.';

-- +goose Down
DELETE FROM annals_internal.projection_skips AS k
 WHERE NOT EXISTS (SELECT FROM annals_internal.projections AS p WHERE p.projection_name = k.projection_name);
ALTER TABLE annals_internal.projection_skips ADD CONSTRAINT projection_skips_projection_fkey FOREIGN KEY (projection_name)
    REFERENCES annals_internal.projections (projection_name) ON DELETE CASCADE;
COMMENT ON TABLE annals_internal.projection_skips IS
    'Appending transactions that skipped an inline projection during its rebuild; left behind only by a failed rebuild.';
