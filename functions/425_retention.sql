-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Sets, replaces or (all three limits NULL) removes the retention rule of a stream or a category.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.set_retention(
    stream_id       text     DEFAULT NULL,
    category        text     DEFAULT NULL,
    max_age         interval DEFAULT NULL,
    max_count       bigint   DEFAULT NULL,
    truncate_before bigint   DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_found boolean;
BEGIN
    IF (set_retention.stream_id IS NULL) = (set_retention.category IS NULL) THEN
        IF annals_internal.raise_invalid('stream_id', 'give exactly one of stream_id and category') IS NULL THEN END IF;
    END IF;
    IF set_retention.stream_id IS NOT NULL THEN
        IF annals_internal.check_stream_id(set_retention.stream_id) IS NULL THEN END IF;
    END IF;
    IF set_retention.category IS NOT NULL
       AND (NOT annals_internal.is_valid_name(set_retention.category, 512) OR strpos(set_retention.category, '-') > 0) THEN
        IF annals_internal.raise_invalid('category',
            'must be a stream id''s category: 1..512 bytes, no "-", not ending with whitespace') IS NULL THEN END IF;
    END IF;
    IF set_retention.max_age <= interval '0' THEN
        IF annals_internal.raise_invalid('max_age', 'must be positive, got ' || set_retention.max_age) IS NULL THEN END IF;
    END IF;
    IF set_retention.max_count < 1 THEN
        IF annals_internal.raise_invalid('max_count', 'must be >= 1 (the last event always stays), got ' || set_retention.max_count) IS NULL THEN END IF;
    END IF;
    IF set_retention.truncate_before < 1 THEN
        IF annals_internal.raise_invalid('truncate_before', 'must be a stream version >= 1, got ' || set_retention.truncate_before) IS NULL THEN END IF;
    END IF;

    -- M15: the tenant's stored stream id or category.
    set_retention.stream_id := annals_internal.qualify(set_retention.stream_id);
    set_retention.category := annals_internal.qualify(set_retention.category);
    IF num_nonnulls(set_retention.max_age, set_retention.max_count, set_retention.truncate_before) = 0 THEN
        DELETE FROM annals_internal.retention_rules AS r
         WHERE r.stream_id IS NOT DISTINCT FROM set_retention.stream_id
           AND r.category IS NOT DISTINCT FROM set_retention.category;
        RETURN FOUND;
    END IF;
    UPDATE annals_internal.retention_rules AS r
       SET max_age = set_retention.max_age, max_count = set_retention.max_count,
           truncate_before = set_retention.truncate_before, updated_at = clock_timestamp()
     WHERE r.stream_id IS NOT DISTINCT FROM set_retention.stream_id
       AND r.category IS NOT DISTINCT FROM set_retention.category;
    v_found := FOUND;
    IF NOT v_found THEN
        INSERT INTO annals_internal.retention_rules (stream_id, category, max_age, max_count, truncate_before, created_at, updated_at)
        VALUES (set_retention.stream_id, set_retention.category, set_retention.max_age, set_retention.max_count,
                set_retention.truncate_before, clock_timestamp(), clock_timestamp());
    END IF;
    RETURN true;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.set_retention(text, text, interval, bigint, bigint) IS
$$Sets the retention rule of one stream (stream_id) or of every stream of a category (category): events older
than max_age, beyond the newest max_count, or below version truncate_before are removed by
annals.apply_retention. All three NULL removes the rule. A stream's own rule overrides its category's.
Returns true when a rule was set or removed. Owner only. Errors: ST422 invalid argument.$$;
REVOKE ALL ON FUNCTION annals.set_retention(text, text, interval, bigint, bigint) FROM PUBLIC;

-- The highest version a rule lets apply_retention remove from a stream (0: none). Never the last
-- event; max_age and max_count never above the newest snapshot when the stream has one (its
-- aggregate loads from the snapshot and the events after it); truncate_before is the owner's
-- explicit cut and is not held back by snapshots.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.retention_limit(
    stream_id text, last_version bigint, max_age interval, max_count bigint, truncate_before bigint)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit bigint := 0;
    v_snap  bigint;
    v_kept  bigint;
BEGIN
    IF retention_limit.max_count IS NOT NULL THEN
        v_limit := greatest(v_limit, retention_limit.last_version - retention_limit.max_count);
    END IF;
    IF retention_limit.max_age IS NOT NULL THEN
        -- recorded_at never decreases within a stream: the expired events are a prefix.
        SELECT e.stream_version INTO v_kept
          FROM annals_internal.events AS e
         WHERE e.stream_id = retention_limit.stream_id
           AND e.recorded_at >= clock_timestamp() - retention_limit.max_age
         ORDER BY e.stream_version
         LIMIT 1;
        v_limit := greatest(v_limit, coalesce(v_kept - 1, retention_limit.last_version));
    END IF;
    IF v_limit > 0 THEN
        SELECT max(s.stream_version) INTO v_snap FROM annals_internal.snapshots AS s
         WHERE s.stream_id = retention_limit.stream_id;
        IF v_snap IS NOT NULL THEN
            v_limit := least(v_limit, v_snap);
        END IF;
    END IF;
    IF retention_limit.truncate_before IS NOT NULL THEN
        v_limit := greatest(v_limit, retention_limit.truncate_before - 1);
    END IF;
    RETURN greatest(0, least(v_limit, retention_limit.last_version - 1));
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.retention_limit(text, bigint, interval, bigint, bigint) IS
    'The highest stream version a retention rule removes (0: none): never the last event, max_age/max_count never above the newest snapshot.';
REVOKE ALL ON FUNCTION annals_internal.retention_limit(text, bigint, interval, bigint, bigint) FROM PUBLIC;

-- Applies every rule, removing at most max_events events in this call (one transaction: a crash
-- or an error removes nothing of this call). Called again until it returns less than max_events.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.apply_retention(max_events bigint DEFAULT 100000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_left    bigint := apply_retention.max_events;
    v_total   bigint := 0;
    v_target  record;
    v_first   bigint;
    v_upto    bigint;
    v_removed bigint;
    v_last    bigint;
BEGIN
    IF apply_retention.max_events IS NULL OR apply_retention.max_events < 1 THEN
        IF annals_internal.raise_invalid('max_events', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    -- One apply at a time: two would count the same events against their budgets.
    PERFORM pg_advisory_xact_lock(hashtextextended('annals:apply_retention', 0));
    -- Nor beside a cold storage move (400_cold_storage.sql): one committing between this
    -- function's count of a stream's events and their removal would make them disagree.
    PERFORM pg_advisory_xact_lock(hashtextextended('annals cold storage', 0));

    FOR v_target IN
        SELECT s.stream_id, s.stream_version, r.rule_id, r.max_age, r.max_count, r.truncate_before
          FROM annals_internal.retention_rules AS r
          JOIN annals_internal.streams AS s ON s.stream_id = r.stream_id
         WHERE s.state <> 'purged'
        UNION ALL
        SELECT s.stream_id, s.stream_version, r.rule_id, r.max_age, r.max_count, r.truncate_before
          FROM annals_internal.retention_rules AS r
          JOIN annals_internal.streams AS s ON s.category = r.category
         WHERE s.state <> 'purged'
           AND NOT EXISTS (SELECT FROM annals_internal.retention_rules AS o WHERE o.stream_id = s.stream_id)
        ORDER BY 1
    LOOP
        EXIT WHEN v_left <= 0;
        v_upto := annals_internal.retention_limit(v_target.stream_id, v_target.stream_version,
                                                  v_target.max_age, v_target.max_count, v_target.truncate_before);
        CONTINUE WHEN v_upto < 1;
        -- The oldest stored version, hot or in a cold segment (functions/400_cold_storage.sql).
        SELECT least((SELECT min(e.stream_version) FROM annals_internal.events AS e WHERE e.stream_id = v_target.stream_id),
                     (SELECT min(c.first_version) FROM annals_internal.cold_segments AS c WHERE c.stream_id = v_target.stream_id))
          INTO v_first;
        CONTINUE WHEN v_first IS NULL OR v_first > v_upto;
        v_upto := least(v_upto, v_first + v_left - 1);
        -- What goes: the hot events up to v_upto and the cold segments that end by then (a segment
        -- reaching beyond stays whole until a later run can take all of it). Logged first (the
        -- history trigger lets only a logged range go), then removed.
        SELECT (SELECT count(*) FROM annals_internal.events AS e
                 WHERE e.stream_id = v_target.stream_id AND e.stream_version BETWEEN v_first AND v_upto)
             + coalesce((SELECT sum(cardinality(c.events)) FROM annals_internal.cold_segments AS c
                          WHERE c.stream_id = v_target.stream_id AND c.last_version <= v_upto), 0)
          INTO v_removed;
        CONTINUE WHEN v_removed = 0;
        INSERT INTO annals_internal.lifecycle_log
               (stream_id, operation, stream_version, first_version, event_count, performed_by, performed_at, details)
        VALUES (v_target.stream_id, 'retention', v_upto, v_first, v_removed, session_user, clock_timestamp(),
                jsonb_strip_nulls(jsonb_build_object('rule_id', v_target.rule_id, 'max_age', v_target.max_age,
                    'max_count', v_target.max_count, 'truncate_before', v_target.truncate_before)));
        DELETE FROM annals_internal.events AS e
         WHERE e.stream_id = v_target.stream_id
           AND e.stream_version BETWEEN v_first AND v_upto;
        GET DIAGNOSTICS v_last = ROW_COUNT;
        WITH gone AS (
            DELETE FROM annals_internal.cold_segments AS c
             WHERE c.stream_id = v_target.stream_id AND c.last_version <= v_upto
            RETURNING cardinality(c.events) AS n
        )
        SELECT v_last + coalesce(sum(gone.n), 0) INTO v_last FROM gone;
        IF v_last <> v_removed THEN
            RAISE EXCEPTION 'retention of stream % removed % events where % were expected', v_target.stream_id, v_last, v_removed;
        END IF;
        v_total := v_total + v_removed;
        v_left := v_left - v_removed;
    END LOOP;

    INSERT INTO annals_internal.retention_runs AS r (singleton, last_run_at, last_removed, last_done)
    VALUES (true, clock_timestamp(), v_total, v_left > 0)
    ON CONFLICT ON CONSTRAINT retention_runs_pkey DO UPDATE
       SET last_run_at = excluded.last_run_at, last_removed = excluded.last_removed, last_done = excluded.last_done;
    RETURN v_total;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.apply_retention(bigint) IS
$$Removes events past their retention rule, at most max_events (default 100000) in one call, and returns how
many it removed; call again while it returns max_events. Never a stream's last event, never (for max_age
and max_count) an event above the stream's newest snapshot. Each stream's removed range is logged in the
lifecycle log. Owner only. Errors: ST422 invalid max_events.$$;
REVOKE ALL ON FUNCTION annals.apply_retention(bigint) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.retention_rules_rows()
RETURNS TABLE (stream_id text, category text, max_age interval, max_count bigint, truncate_before bigint,
               created_at timestamptz, updated_at timestamptz)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
BEGIN ATOMIC
    SELECT annals_internal.unqualify(r.stream_id), annals_internal.unqualify(r.category), r.max_age, r.max_count, r.truncate_before, r.created_at, r.updated_at
      FROM annals_internal.retention_rules AS r
     ORDER BY r.category NULLS LAST, r.stream_id;
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.retention_rules_rows() IS 'The rows of the annals.retention_rules view.';
REVOKE ALL ON FUNCTION annals_internal.retention_rules_rows() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals_internal.retention_rules_rows() TO annals_writer, annals_reader, annals_bi;

CREATE OR REPLACE VIEW annals.retention_rules AS
SELECT * FROM annals_internal.retention_rules_rows();
COMMENT ON VIEW annals.retention_rules IS
$$Retention rules (annals.set_retention): per category or per stream (stream_id), max_age, max_count,
truncate_before; a stream's own rule overrides its category's.$$;
REVOKE ALL ON annals.retention_rules FROM PUBLIC;
GRANT SELECT ON annals.retention_rules TO annals_writer, annals_reader, annals_bi;

-- When retention last ran, for annals doctor.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.retention_status()
RETURNS TABLE (rules bigint, last_run_at timestamptz, last_removed bigint, last_done boolean)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
BEGIN ATOMIC
    SELECT (SELECT count(*) FROM annals_internal.retention_rules), r.last_run_at, r.last_removed, r.last_done
      FROM (SELECT 1) AS one
      LEFT JOIN annals_internal.retention_runs AS r ON true;
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.retention_status() IS
$$How many retention rules exist and the last annals.apply_retention run: when, how many events it removed,
and whether it finished (false: it stopped at max_events and more is due). NULLs: never ran.$$;
REVOKE ALL ON FUNCTION annals.retention_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.retention_status() TO annals_writer, annals_reader;
