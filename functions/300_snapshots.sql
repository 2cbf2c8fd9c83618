-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Keeps the newest snapshot per (stream, type). Saving an older one than stored is a no-op (two
-- writers racing), the same version in another schema replaces it (new code), and one ahead of
-- the stream is a caller bug (ST422).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.save_snapshot(
    stream_id      text,
    snapshot_type  text,
    schema_version integer,
    stream_version bigint,
    state          jsonb)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_current bigint;
    v_saved   boolean;
BEGIN
    IF annals_internal.check_stream_id(save_snapshot.stream_id) IS NULL THEN END IF;
    save_snapshot.stream_id := annals_internal.qualify(save_snapshot.stream_id);  -- M15: the tenant's stored id
    IF annals_internal.name_problem(save_snapshot.snapshot_type, 256) IS NOT NULL THEN
        IF annals_internal.raise_invalid('snapshot_type', annals_internal.name_problem(save_snapshot.snapshot_type, 256)) IS NULL THEN END IF;
    END IF;
    IF save_snapshot.schema_version IS NULL OR save_snapshot.schema_version < 1 THEN
        IF annals_internal.raise_invalid('schema_version', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    IF save_snapshot.stream_version IS NULL OR save_snapshot.stream_version < 1 THEN
        IF annals_internal.raise_invalid('stream_version', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    IF save_snapshot.state IS NULL OR jsonb_typeof(save_snapshot.state) = 'null' THEN
        IF annals_internal.raise_invalid('state', 'must be a JSON value, not null') IS NULL THEN END IF;
    END IF;
    SELECT s.stream_version INTO v_current FROM annals_internal.streams AS s WHERE s.stream_id = save_snapshot.stream_id;
    IF save_snapshot.stream_version > coalesce(v_current, 0) THEN
        IF annals_internal.raise_invalid('stream_version',
            format('snapshot at version %s is ahead of stream %L at version %s', save_snapshot.stream_version,
                   save_snapshot.stream_id, coalesce(v_current, 0))) IS NULL THEN END IF;
    END IF;
    INSERT INTO annals_internal.snapshots AS s (stream_id, snapshot_type, schema_version, stream_version, state, saved_at)
    VALUES (save_snapshot.stream_id, save_snapshot.snapshot_type, save_snapshot.schema_version,
            save_snapshot.stream_version, save_snapshot.state, clock_timestamp())
    ON CONFLICT ON CONSTRAINT snapshots_pkey DO UPDATE
       SET schema_version = excluded.schema_version, stream_version = excluded.stream_version,
           state = excluded.state, saved_at = excluded.saved_at
     WHERE s.stream_version < excluded.stream_version
        OR s.stream_version = excluded.stream_version AND s.schema_version <> excluded.schema_version
    RETURNING true INTO v_saved;
    RETURN coalesce(v_saved, false);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.save_snapshot(text, text, integer, bigint, jsonb) IS
$$Saves the state of a stream's aggregate at stream_version as the latest snapshot of snapshot_type, in the
state's own schema_version. An older snapshot than the stored one is ignored (returns false); one ahead of
the stream is an error (ST422). Returns true when saved.$$;
REVOKE ALL ON FUNCTION annals.save_snapshot(text, text, integer, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.save_snapshot(text, text, integer, bigint, jsonb) TO annals_writer;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.load_snapshot(stream_id text, snapshot_type text, schema_version integer)
RETURNS TABLE (stream_version bigint, state jsonb)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 1
AS $$
#variable_conflict use_column
BEGIN
    IF annals_internal.check_stream_id(load_snapshot.stream_id) IS NULL THEN END IF;
    load_snapshot.stream_id := annals_internal.qualify(load_snapshot.stream_id);  -- M15: the tenant's stored id
    IF load_snapshot.schema_version IS NULL OR load_snapshot.schema_version < 1 THEN
        IF annals_internal.raise_invalid('schema_version', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    -- A snapshot in another schema, or ahead of the stream (a restore from an older backup of the
    -- events than of the snapshots), is not trusted: the caller replays instead.
    RETURN QUERY
        SELECT sn.stream_version, sn.state
          FROM annals_internal.snapshots AS sn
          JOIN annals_internal.streams AS st ON st.stream_id = sn.stream_id
         WHERE sn.stream_id = load_snapshot.stream_id
           AND sn.snapshot_type = load_snapshot.snapshot_type
           AND sn.schema_version = load_snapshot.schema_version
           AND sn.stream_version <= st.stream_version;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.load_snapshot(text, text, integer) IS
$$The latest snapshot of snapshot_type for a stream: its stream_version and state. No row when there is none,
when it was saved in another schema_version, or when it is ahead of the stream.$$;
REVOKE ALL ON FUNCTION annals.load_snapshot(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.load_snapshot(text, text, integer) TO annals_writer, annals_reader;
