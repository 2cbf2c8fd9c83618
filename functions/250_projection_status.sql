-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- A rebuild reports 'annals rebuild <lock key hex> <done>/<total> <name>' in its session's
-- application_name (annals_internal.report_rebuild_progress), which other sessions see at once (its
-- table writes they see only at commit). pg_stat_activity spans the cluster: keep this database's.
-- Rows from a function with JIT off, as annals.subscription_status (130_feed_status.sql) explains.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.projections_rows()
RETURNS TABLE (
    projection_name text,
    mode text,
    enabled boolean,
    state text,
    handler text,
    tables text[],
    event_types text[],
    categories text[],
    checkpoint_transaction xid8,
    checkpoint_position bigint,
    events_behind bigint,
    time_behind interval,
    rebuild_done bigint,
    rebuild_total bigint,
    dead_letters bigint,
    last_error text,
    last_error_at timestamp with time zone,
    rebuilt_at timestamp with time zone,
    rebuilt_events bigint,
    updated_at timestamp with time zone,
    incomplete_since timestamp with time zone)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
ROWS 10
BEGIN ATOMIC
SELECT p.projection_name, p.mode, p.enabled,
       CASE WHEN r.done IS NOT NULL THEN 'rebuilding'
            WHEN EXISTS (SELECT FROM annals_internal.projection_skips AS k WHERE k.projection_name = p.projection_name)
                 OR annals.rebuild_attempts(p.projection_name) > coalesce(p.rebuilt_attempt, 0)
                 THEN 'stale'
            WHEN p.incomplete_since IS NOT NULL THEN 'incomplete'
            WHEN NOT p.enabled THEN 'disabled'
            WHEN p.last_error IS NOT NULL THEN 'failing'
            ELSE 'active' END AS state,
       p.handler, p.tables::text[] AS tables, p.event_types, p.categories,
       c.checkpoint_transaction, c.checkpoint_position,
       CASE WHEN p.mode = 'async' THEN least(
            (SELECT count(*) FROM (SELECT 1 FROM annals_internal.events AS e
                                    WHERE (e.transaction_id, e.global_position) > (c.checkpoint_transaction, c.checkpoint_position)
                                      AND (p.event_types IS NULL OR coalesce((SELECT a.event_type FROM annals_internal.event_type_aliases AS a WHERE a.alias = e.event_type), e.event_type) = ANY (p.event_types))
                                      AND (p.categories IS NULL OR annals_internal.unqualify(e.category) = ANY (p.categories))
                                    LIMIT 100000) AS pending)
            + cold.events, 100000)
            ELSE 0 END AS events_behind,
       CASE WHEN p.mode = 'async' THEN clock_timestamp() - least(
            (SELECT min(e.recorded_at) FROM annals_internal.events AS e
              WHERE (e.transaction_id, e.global_position) > (c.checkpoint_transaction, c.checkpoint_position)
                AND (p.event_types IS NULL OR coalesce((SELECT a.event_type FROM annals_internal.event_type_aliases AS a WHERE a.alias = e.event_type), e.event_type) = ANY (p.event_types))
                AND (p.categories IS NULL OR annals_internal.unqualify(e.category) = ANY (p.categories))),
            cold.oldest_recorded_at)
            END AS time_behind,
       r.done AS rebuild_done, r.total AS rebuild_total,
       (SELECT count(*) FROM annals_internal.dead_letters AS d
         WHERE d.subscription_name = '$projection:' || p.projection_name AND d.status <> 'resolved') AS dead_letters,
       p.last_error, p.last_error_at, p.rebuilt_at, p.rebuilt_events, p.updated_at, p.incomplete_since
  FROM annals_internal.projections AS p
  LEFT JOIN annals_internal.subscription_checkpoints AS c
         ON c.subscription_name = '$projection:' || p.projection_name AND c.member = 0
  LEFT JOIN LATERAL (
        SELECT (regexp_match(a.application_name, '^annals rebuild [0-9a-f]+ (\d+)/(\d+)'))[1]::bigint AS done,
               (regexp_match(a.application_name, '^annals rebuild [0-9a-f]+ (\d+)/(\d+)'))[2]::bigint AS total
          FROM pg_stat_activity AS a
         WHERE a.datname = current_database()
           AND a.application_name LIKE 'annals rebuild %'
           -- The key is annals_internal.projection_lock_key, spelled out: BI may not execute that.
           AND substring(a.application_name FROM '^annals rebuild ([0-9a-f]+) ')
               = to_hex(hashtextextended('annals:projection:' || p.projection_name, 0))
         LIMIT 1) AS r ON true
  -- Cold history after an async projection's checkpoint (one index probe when there is none).
  LEFT JOIN LATERAL annals_internal.cold_pending(c.checkpoint_transaction, c.checkpoint_position,
        p.event_types, p.categories, 0, 1, 100000) AS cold ON p.mode = 'async';
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.projections_rows() IS 'The rows of annals.projections, computed with JIT off.';
REVOKE ALL ON FUNCTION annals_internal.projections_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_internal.projections_rows() TO annals_writer, annals_reader, annals_bi;

CREATE OR REPLACE VIEW annals.projections AS
SELECT * FROM annals_internal.projections_rows();
COMMENT ON VIEW annals.projections IS
$$Every projection: mode, state (active, failing, disabled, rebuilding; stale: the last rebuild failed, so
rebuild again; incomplete: registered over existing events, or its handler, tables or filters changed, and
not rebuilt since, so its tables miss history), handler and tables, checkpoint and
lag for async ones (events counted up to 100000, time since the oldest pending), rebuild progress
(rebuild_done of rebuild_total), open dead letters, last error.$$;
REVOKE ALL ON annals.projections FROM PUBLIC;
GRANT SELECT ON annals.projections TO annals_writer, annals_reader, annals_bi;

-- What would let someone other than annals_owner's members run code as annals_owner through a
-- registration, for annals doctor: callbacks not pinned (registered before pins existed, and
-- dropped since) or owned by, or in a schema of, an untrusted role; projection tables that
-- table_trust_problem rejects. Owner-only: it reads the catalog on behalf of an administrator.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.trust_problems()
RETURNS TABLE (subject text, problem text)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
BEGIN ATOMIC
    WITH callbacks AS (
        SELECT format('projection %s', p.projection_name) AS subject, p.handler AS fn, p.handler_call AS call,
               annals_internal.handler_pin(p.projection_name) AS pin
          FROM annals_internal.projections AS p
        UNION ALL
        SELECT format('upcaster of %s from version %s', u.event_type, u.from_version), u.upcaster, u.upcaster_call,
               annals_internal.upcaster_pin(u.event_type, u.from_version)
          FROM annals_internal.upcasters AS u),
    checked AS (
        SELECT c.subject,
               CASE WHEN f.oid IS NULL
                         THEN format('its function %s no longer exists: register it again with an existing function, or drop it', c.fn)
                    WHEN c.call <> format('annals_internal.%I', c.pin) OR NOT EXISTS (
                             SELECT FROM pg_catalog.pg_proc AS w
                               JOIN pg_catalog.pg_depend AS d
                                 ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = w.oid
                                AND d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid = f.oid
                              WHERE w.proname = c.pin
                                AND w.pronamespace = (SELECT n2.oid FROM pg_catalog.pg_namespace AS n2 WHERE n2.nspname = 'annals_internal'))
                         THEN format('%s is called by name, not pinned by OID: run annals migrate', c.fn)
                    WHEN NOT annals_internal.trusted_role(f.proowner)
                         THEN format('%s is owned by %s, who is not a member of annals_owner: ALTER FUNCTION %s OWNER TO annals_owner',
                                     c.fn, f.proowner::regrole, c.fn)
                    WHEN NOT annals_internal.trusted_role(n.nspowner)
                         THEN format('%s is in schema %I, owned by %s, who is not a member of annals_owner: ALTER SCHEMA %I OWNER TO annals_owner',
                                     c.fn, n.nspname, n.nspowner::regrole, n.nspname)
               END AS problem
          FROM callbacks AS c
          LEFT JOIN pg_catalog.pg_proc AS f ON f.oid = to_regprocedure(c.fn)
          LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid = f.pronamespace
        UNION ALL
        SELECT format('projection %s', p.projection_name), annals_internal.table_trust_problem(t.tbl)
          FROM annals_internal.projections AS p, unnest(p.tables) AS t(tbl)
        UNION ALL
        SELECT format('materialized view %s', m.view_name), annals_internal.view_trust_problem(m.view_name)
          FROM annals_internal.materialized_views AS m)
    SELECT k.subject, k.problem FROM checked AS k WHERE k.problem IS NOT NULL ORDER BY 1, 2;
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.trust_problems() IS
    'Registrations through which a role outside annals_owner could run code as annals_owner (unpinned or untrusted callbacks, untrusted projection tables, materialized views using untrusted objects), with the fix; for annals doctor.';
REVOKE ALL ON FUNCTION annals_internal.trust_problems() FROM PUBLIC;
