-- The worker's calls on one shard. Async projections, their checkpoints and the materialized views
-- live on each shard (a shard is an ordinary Annals install), so `annals worker` pointed at the
-- proxy runs annals.run_async_projections and annals.refresh_views on every shard in turn, through
-- these: each shard's events are applied by that shard's own call, in that shard's transaction,
-- exactly once. A shard that cannot be reached raises ST502 naming it (annals_proxy.reraise).
-- Created as the installing superuser (plproxy is an untrusted language); 090_owner.sql hands
-- every function to annals_owner.
SET LOCAL search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION annals_proxy.run_async_projections_on(shard integer, max_events integer)
RETURNS bigint
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.shard_partition(shard);
    SELECT annals.run_async_projections(max_events);
$$;
COMMENT ON FUNCTION annals_proxy.run_async_projections_on(integer, integer) IS
    'PL/Proxy call of annals.run_async_projections on one shard; called by the public annals.run_async_projections(shard, ...).';
REVOKE ALL ON FUNCTION annals_proxy.run_async_projections_on(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.run_async_projections_on(integer, integer) TO annals_writer;

CREATE OR REPLACE FUNCTION annals.run_async_projections(shard integer, max_events integer DEFAULT 1000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN annals_proxy.run_async_projections_on(run_async_projections.shard, run_async_projections.max_events);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(run_async_projections.shard, v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION annals.run_async_projections(integer, integer) IS
$$The single-node annals.run_async_projections run on shard (1..N, see annals.shards()): moves that
shard's async projections forward by at most max_events events of its feed, with the handler's writes
and the checkpoint in the shard's transaction. Returns events processed; `annals worker` calls it for
every shard.$$;
REVOKE ALL ON FUNCTION annals.run_async_projections(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.run_async_projections(integer, integer) TO annals_writer;

CREATE OR REPLACE FUNCTION annals_proxy.refresh_views_on(shard integer, force boolean)
RETURNS TABLE (view_name text, refreshed boolean, duration interval, error text)
LANGUAGE plproxy
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
SET client_min_messages = warning
AS $$
    CLUSTER 'annals_shards';
    RUN ON annals_proxy.shard_partition(shard);
    SELECT view_name, refreshed, duration, error FROM annals.refresh_views(force);
$$;
COMMENT ON FUNCTION annals_proxy.refresh_views_on(integer, boolean) IS
    'PL/Proxy call of annals.refresh_views on one shard; called by the public annals.refresh_views(shard, ...).';
REVOKE ALL ON FUNCTION annals_proxy.refresh_views_on(integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_proxy.refresh_views_on(integer, boolean) TO annals_writer;

CREATE OR REPLACE FUNCTION annals.refresh_views(shard integer, force boolean DEFAULT false)
RETURNS TABLE (view_name text, refreshed boolean, duration interval, error text)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_code text; v_message text; v_detail text; v_hint text;
BEGIN
    RETURN QUERY SELECT r.view_name, r.refreshed, r.duration, r.error
                   FROM annals_proxy.refresh_views_on(refresh_views.shard, refresh_views.force) AS r;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_code = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
    IF annals_proxy.reraise(refresh_views.shard, v_code, v_message, v_detail, v_hint) IS NULL THEN END IF;
END
$$;
COMMENT ON FUNCTION annals.refresh_views(integer, boolean) IS
$$The single-node annals.refresh_views run on shard (1..N, see annals.shards()): refreshes that shard's
due materialized views. One row per view; `annals worker` calls it for every shard.$$;
REVOKE ALL ON FUNCTION annals.refresh_views(integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.refresh_views(integer, boolean) TO annals_writer;
