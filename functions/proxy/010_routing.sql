-- Routing: the hash, the partition map as functions, errors, and how a shard's error reaches the
-- caller unchanged.
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- The proxy's error raiser, the shards' annals_internal.raise_error repeated: SQLSTATE, message,
-- JSON DETAIL, optional HINT. Called as `IF annals_proxy.raise_error(...) IS NULL THEN END IF;`.
CREATE OR REPLACE FUNCTION annals_proxy.raise_error(code text, message text, detail jsonb, hint text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF raise_error.hint IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = raise_error.code, MESSAGE = raise_error.message, DETAIL = raise_error.detail::text;
    END IF;
    RAISE EXCEPTION USING ERRCODE = raise_error.code, MESSAGE = raise_error.message, DETAIL = raise_error.detail::text,
        HINT = raise_error.hint;
END
$$;
COMMENT ON FUNCTION annals_proxy.raise_error(text, text, jsonb, text) IS
    'Raises an Annals error on the proxy: SQLSTATE code, message, a JSON DETAIL, an optional hint.';
REVOKE ALL ON FUNCTION annals_proxy.raise_error(text, text, jsonb, text) FROM PUBLIC;

-- The routing hash, the one every layer uses: PostgreSQL's hashtext(stream_id), NULL as ''. The
-- PL/Proxy functions RUN ON it; PL/Proxy keeps its low bits, hash & (partitions - 1).
CREATE OR REPLACE FUNCTION annals_proxy.stream_hash(stream_id text)
RETURNS integer
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN pg_catalog.hashtext(coalesce(stream_id, ''));
COMMENT ON FUNCTION annals_proxy.stream_hash(text) IS
    'The routing hash of a stream id: hashtext(stream_id) (NULL as ''''); its low bits pick the partition.';
REVOKE ALL ON FUNCTION annals_proxy.stream_hash(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.stream_hash(text) TO annals_writer, annals_reader;

-- The first partition of a shard: what the per-shard calls RUN ON. ST422 for an unknown shard.
CREATE OR REPLACE FUNCTION annals_proxy.shard_partition(shard integer)
RETURNS integer
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_partition integer;
BEGIN
    SELECT min(p.partition) INTO v_partition FROM annals_proxy.partitions AS p WHERE p.shard = shard_partition.shard;
    IF v_partition IS NULL THEN
        IF annals_proxy.raise_error('ST422',
            'invalid argument shard: no shard ' || coalesce(shard_partition.shard::text, 'NULL'),
            jsonb_build_object('argument', 'shard', 'reason', 'no shard ' || coalesce(shard_partition.shard::text, 'NULL')),
            'annals.shards() lists the shards.') IS NULL THEN END IF;
    END IF;
    RETURN v_partition;
END
$$;
COMMENT ON FUNCTION annals_proxy.shard_partition(integer) IS
    'The lowest partition a shard owns: the hash the per-shard PL/Proxy calls run on. ST422 for an unknown shard.';
REVOKE ALL ON FUNCTION annals_proxy.shard_partition(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.shard_partition(integer) TO annals_writer, annals_reader;

-- The partition of a stream: its hash's low bits, as PL/Proxy computes it.
CREATE OR REPLACE FUNCTION annals.partition_of(stream_id text)
RETURNS integer
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
RETURN annals_proxy.stream_hash(stream_id) & ((SELECT count(*) FROM annals_proxy.partitions)::integer - 1);
COMMENT ON FUNCTION annals.partition_of(text) IS
    'The hash partition owning a stream id: hashtext(stream_id) & (partition count - 1), as PL/Proxy routes it.';
REVOKE ALL ON FUNCTION annals.partition_of(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.partition_of(text) TO annals_writer, annals_reader;

-- The shard of a stream: the shard owning its partition.
CREATE OR REPLACE FUNCTION annals.shard_of(stream_id text)
RETURNS integer
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
RETURN (SELECT p.shard FROM annals_proxy.partitions AS p WHERE p.partition = annals.partition_of(stream_id));
COMMENT ON FUNCTION annals.shard_of(text) IS
    'The shard (1..N) that stores a stream id''s events: the owner of annals.partition_of(stream_id).';
REVOKE ALL ON FUNCTION annals.shard_of(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.shard_of(text) TO annals_writer, annals_reader;

-- The map, without connection strings (they may hold passwords).
CREATE OR REPLACE FUNCTION annals.shards()
RETURNS TABLE (shard integer, name text, partitions integer[])
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
BEGIN ATOMIC
    SELECT s.shard, s.name,
           coalesce((SELECT array_agg(p.partition ORDER BY p.partition) FROM annals_proxy.partitions AS p
                      WHERE p.shard = s.shard), '{}')
      FROM annals_proxy.shards AS s
     ORDER BY s.shard;
END;
COMMENT ON FUNCTION annals.shards() IS
    'The shards of this sharded store: number, name and the hash partitions each owns.';
REVOKE ALL ON FUNCTION annals.shards() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.shards() TO annals_writer, annals_reader;

-- Re-raises an error caught around a PL/Proxy call as the caller would have got it from the shard.
-- A shard's own error arrives as "fn(n): [db] REMOTE ERROR: message" with "Remote detail: " and
-- "Remote hint: " prefixes: the prefixes go, SQLSTATE, message, JSON DETAIL and HINT stay. Any
-- other PL/Proxy error (connect refused, connection lost, timeout) becomes ST502 naming the shard.
-- Errors raised on the proxy itself pass as they are.
CREATE OR REPLACE FUNCTION annals_proxy.reraise(shard integer, code text, message text, detail text, hint text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_remote text[];
    v_name   text;
    v_detail text := reraise.detail;
    v_hint   text := reraise.hint;
    v_msg    text := reraise.message;
BEGIN
    v_remote := regexp_match(reraise.message, '^\S+\(\d+\): \[[^]]*\] REMOTE ERROR: (.*)$', 's');
    IF v_remote IS NOT NULL THEN
        v_msg := v_remote[1];
        v_detail := regexp_replace(v_detail, '^Remote detail: ', '');
        v_hint := regexp_replace(v_hint, '^Remote hint: ', '');
    ELSIF reraise.message LIKE 'PL/Proxy function %' THEN
        SELECT s.name INTO v_name FROM annals_proxy.shards AS s WHERE s.shard = reraise.shard;
        IF annals_proxy.raise_error('ST502',
            pg_catalog.format('shard %s (%s) is unavailable: %s', reraise.shard, coalesce(v_name, '?'),
                regexp_replace(reraise.message, '^PL/Proxy function \S+\(\d+\): (\[[^]]*\] )?', '')),
            jsonb_build_object('shard', reraise.shard, 'name', v_name),
            'Check that the shard''s server is up and accepts the proxy''s connections; streams on other shards are served as usual.') IS NULL THEN END IF;
    END IF;
    v_detail := nullif(v_detail, '');
    v_hint := nullif(v_hint, '');
    IF v_detail IS NULL AND v_hint IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = reraise.code, MESSAGE = v_msg;
    ELSIF v_hint IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = reraise.code, MESSAGE = v_msg, DETAIL = v_detail;
    ELSIF v_detail IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = reraise.code, MESSAGE = v_msg, HINT = v_hint;
    END IF;
    RAISE EXCEPTION USING ERRCODE = reraise.code, MESSAGE = v_msg, DETAIL = v_detail, HINT = v_hint;
END
$$;
COMMENT ON FUNCTION annals_proxy.reraise(integer, text, text, text, text) IS
    'Raises an error caught around a PL/Proxy call as the shard raised it (PL/Proxy''s prefixes removed), or ST502 naming the shard when it could not be reached.';
REVOKE ALL ON FUNCTION annals_proxy.reraise(integer, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.reraise(integer, text, text, text, text) TO annals_writer, annals_reader;

-- Writes the partition map into the PL/Proxy cluster's options (p0..pN-1 = the owning shard's
-- conninfo). Run by the installer, as the server's owner, after every change to the map.
CREATE OR REPLACE FUNCTION annals_proxy.apply_map()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_opts  text;
    v_count integer;
BEGIN
    SELECT count(*) INTO v_count FROM annals_proxy.partitions;
    IF v_count < 1 OR v_count & (v_count - 1) <> 0 THEN
        IF annals_proxy.raise_error('ST422',
            'invalid argument partitions: the partition count must be a power of two, got ' || v_count,
            jsonb_build_object('argument', 'partitions', 'reason', 'must be a power of two, got ' || v_count)) IS NULL THEN END IF;
    END IF;
    IF EXISTS (SELECT FROM generate_series(0, v_count - 1) AS g(n)
                WHERE NOT EXISTS (SELECT FROM annals_proxy.partitions AS p WHERE p.partition = g.n)) THEN
        IF annals_proxy.raise_error('ST422', 'invalid argument partitions: partitions must be numbered 0..count-1',
            jsonb_build_object('argument', 'partitions', 'reason', 'must be numbered 0..count-1')) IS NULL THEN END IF;
    END IF;
    -- One ALTER (the validator checks the resulting list): SET the partitions the server has, ADD
    -- the ones it lacks, DROP any other option.
    SELECT string_agg(CASE WHEN o.name IS NULL THEN pg_catalog.format('ADD %I %L', m.name, m.conninfo)
                           WHEN m.name IS NULL THEN pg_catalog.format('DROP %I', o.name)
                           ELSE pg_catalog.format('SET %I %L', m.name, m.conninfo) END, ', ')
      INTO v_opts
      FROM (SELECT 'p' || p.partition AS name, s.conninfo
              FROM annals_proxy.partitions AS p JOIN annals_proxy.shards AS s ON s.shard = p.shard) AS m
      FULL JOIN (SELECT split_part(so.opt, '=', 1) AS name
                   FROM pg_catalog.pg_foreign_server AS fs, unnest(fs.srvoptions) AS so(opt)
                  WHERE fs.srvname = 'annals_shards') AS o ON o.name = m.name;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_server AS fs WHERE fs.srvname = 'annals_shards') THEN
        SELECT string_agg(pg_catalog.format('%I %L', 'p' || p.partition, s.conninfo), ', ' ORDER BY p.partition)
          INTO v_opts
          FROM annals_proxy.partitions AS p JOIN annals_proxy.shards AS s ON s.shard = p.shard;
        EXECUTE 'CREATE SERVER annals_shards FOREIGN DATA WRAPPER plproxy OPTIONS (' || v_opts || ')';
        -- No options: PL/Proxy connects as the calling role (user=current_user), so each shard
        -- checks the caller's own privileges. A role that needs a password gets its own mapping:
        -- CREATE USER MAPPING FOR r SERVER annals_shards OPTIONS (user 'r', password '...').
        CREATE USER MAPPING FOR PUBLIC SERVER annals_shards;
        COMMENT ON SERVER annals_shards IS
            'Annals shards as a PL/Proxy cluster: one option per hash partition (p0..pN-1), the connection string of the shard owning it.';
        GRANT USAGE ON FOREIGN SERVER annals_shards TO annals_writer, annals_reader;
    ELSE
        EXECUTE 'ALTER SERVER annals_shards OPTIONS (' || v_opts || ')';
    END IF;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION annals_proxy.apply_map() IS
    'Writes annals_proxy.partitions into the annals_shards server''s options (the PL/Proxy cluster); returns the partition count. Installer only.';
REVOKE ALL ON FUNCTION annals_proxy.apply_map() FROM PUBLIC;
