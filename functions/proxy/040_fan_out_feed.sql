-- The sharded feed in one call: every shard's next events after a checkpoint of one position per
-- shard, as JSON {"<shard>": {"transaction_id": "<xid8>", "position": <bigint>}, ...} (a shard
-- that is absent starts from the beginning). Each shard is asked in turn through the per-shard
-- calls of 020_routed_calls.sql, so each shard's part is gap-free and a failure names its shard.
-- Rows come shard by shard, each shard's in feed order, at most max_count per shard; the
-- caller's next checkpoint is each shard's last (transaction_id, global_position).
SET LOCAL search_path = pg_catalog, pg_temp;

-- One shard's position in a checkpoint: ST422 for anything but the documented shape.
CREATE OR REPLACE FUNCTION annals_proxy.checkpoint_of(checkpoint jsonb, shard integer,
    OUT after_transaction xid8, OUT after_position bigint)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_entry jsonb;
BEGIN
    IF checkpoint_of.checkpoint IS NULL OR jsonb_typeof(checkpoint_of.checkpoint) <> 'object' THEN
        IF annals_proxy.raise_error('ST422', 'invalid argument checkpoint: must be a JSON object keyed by shard number',
            jsonb_build_object('argument', 'checkpoint', 'reason', 'must be a JSON object keyed by shard number')) IS NULL THEN END IF;
    END IF;
    v_entry := checkpoint_of.checkpoint -> checkpoint_of.shard::text;
    IF v_entry IS NULL THEN
        after_transaction := '0';
        after_position := 0;
        RETURN;
    END IF;
    BEGIN
        after_transaction := (v_entry ->> 'transaction_id')::xid8;
        after_position := (v_entry ->> 'position')::bigint;
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        after_transaction := NULL;
    END;
    IF jsonb_typeof(v_entry) <> 'object' OR after_transaction IS NULL OR after_position IS NULL THEN
        IF annals_proxy.raise_error('ST422',
            pg_catalog.format('invalid argument checkpoint.%s: must be {"transaction_id": "<xid8>", "position": <bigint>}', checkpoint_of.shard),
            jsonb_build_object('argument', 'checkpoint.' || checkpoint_of.shard,
                               'reason', 'must be {"transaction_id": "<xid8>", "position": <bigint>}')) IS NULL THEN END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION annals_proxy.checkpoint_of(jsonb, integer) IS
    'One shard''s (transaction_id, position) in a sharded checkpoint {"<shard>": {"transaction_id", "position"}}; the start when absent; ST422 when malformed.';
REVOKE ALL ON FUNCTION annals_proxy.checkpoint_of(jsonb, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.checkpoint_of(jsonb, integer) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals.read_all_shards(
    checkpoint  jsonb   DEFAULT '{}',
    max_count   integer DEFAULT 1000,
    event_types text[]  DEFAULT NULL,
    categories  text[]  DEFAULT NULL,
    raw         boolean DEFAULT false)
RETURNS TABLE (shard integer, stream_id text, stream_version bigint, global_position bigint, event_id uuid,
               event_type text, schema_version integer, data jsonb, metadata jsonb, transaction_id xid8,
               recorded_at timestamptz)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_shard integer;
    v_after record;
BEGIN
    FOR v_shard IN SELECT s.shard FROM annals.shards() AS s LOOP
        v_after := annals_proxy.checkpoint_of(read_all_shards.checkpoint, v_shard);
        RETURN QUERY SELECT v_shard, e.stream_id, e.stream_version, e.global_position, e.event_id, e.event_type,
                            e.schema_version, e.data, e.metadata, e.transaction_id, e.recorded_at
                       FROM annals.read_all(v_shard, v_after.after_transaction, v_after.after_position,
                                            read_all_shards.max_count, read_all_shards.event_types,
                                            read_all_shards.categories, read_all_shards.raw) AS e;
    END LOOP;
END
$$;
COMMENT ON FUNCTION annals.read_all_shards(jsonb, integer, text[], text[], boolean) IS
$$The sharded feed in one call: each shard's next events (at most max_count per shard, in its feed
order) after its position in checkpoint {"<shard>": {"transaction_id", "position"}} (absent: from the
start), each row with its shard. Filters and errors as annals.read_all; ST502 names a shard that is down.$$;
REVOKE ALL ON FUNCTION annals.read_all_shards(jsonb, integer, text[], text[], boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_all_shards(jsonb, integer, text[], text[], boolean) TO annals_writer, annals_reader;

CREATE OR REPLACE FUNCTION annals.read_category_shards(
    category   text,
    checkpoint jsonb   DEFAULT '{}',
    max_count  integer DEFAULT 1000,
    raw        boolean DEFAULT false)
RETURNS TABLE (shard integer, stream_id text, stream_version bigint, global_position bigint, event_id uuid,
               event_type text, schema_version integer, data jsonb, metadata jsonb, transaction_id xid8,
               recorded_at timestamptz)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_shard integer;
    v_after record;
BEGIN
    FOR v_shard IN SELECT s.shard FROM annals.shards() AS s LOOP
        v_after := annals_proxy.checkpoint_of(read_category_shards.checkpoint, v_shard);
        RETURN QUERY SELECT v_shard, e.stream_id, e.stream_version, e.global_position, e.event_id, e.event_type,
                            e.schema_version, e.data, e.metadata, e.transaction_id, e.recorded_at
                       FROM annals.read_category(v_shard, read_category_shards.category, v_after.after_transaction,
                                                 v_after.after_position, read_category_shards.max_count,
                                                 0, 1, read_category_shards.raw) AS e;
    END LOOP;
END
$$;
COMMENT ON FUNCTION annals.read_category_shards(text, jsonb, integer, boolean) IS
$$One category's sharded feed in one call: each shard's next events of the category (at most max_count
per shard) after its position in checkpoint, as annals.read_all_shards.$$;
REVOKE ALL ON FUNCTION annals.read_category_shards(text, jsonb, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.read_category_shards(text, jsonb, integer, boolean) TO annals_writer, annals_reader;
