-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Runs every enabled async projection one batch forward from the gap-free feed. Handler writes
-- and the checkpoint commit together (exactly-once). Concurrent runners split the projections
-- (SKIP LOCKED); a projection being rebuilt is skipped. When a batch fails, its events are applied
-- one by one and the failing ones parked as dead letters, so the projection keeps moving.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.run_async_projections(max_events integer DEFAULT 1000)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET enable_sort = off
AS $$
DECLARE
    p        annals_internal.projections%ROWTYPE;
    v_sub    text;
    v_cp     annals_internal.subscription_checkpoints%ROWTYPE;
    v_events annals.event[];
    v_n      integer;
    v_total  bigint := 0;
    v_err    text;
    v_up     text[] := annals_internal.types_to_upcast();
BEGIN
    PERFORM annals_internal.check_all_tenants('annals.run_async_projections');  -- M15: tenancy on: '*' only
    IF run_async_projections.max_events IS NULL OR run_async_projections.max_events < 1 THEN
        IF annals_internal.raise_invalid('max_events', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    FOR p IN SELECT * FROM annals_internal.projections AS pr
              WHERE pr.mode = 'async' AND pr.enabled ORDER BY pr.projection_name LOOP
        CONTINUE WHEN NOT pg_try_advisory_xact_lock_shared(annals_internal.projection_lock_key(p.projection_name));
        v_sub := annals_internal.projection_subscription(p.projection_name);
        SELECT * INTO v_cp FROM annals_internal.subscription_checkpoints AS c
         WHERE c.subscription_name = v_sub AND c.member = 0
           FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;

        SELECT array_agg(annals_internal.as_read(b, v_up)
                         ORDER BY b.transaction_id, b.global_position),
               count(*)
          INTO v_events, v_n
          -- Hot and cold (400_cold_storage.sql), in feed order, filtered.
          FROM annals_internal.feed_page(v_cp.checkpoint_transaction, v_cp.checkpoint_position,
                   run_async_projections.max_events, annals_internal.feed_barrier(),
                   p.event_types, p.categories, 0, 1, v_up) AS b;
        CONTINUE WHEN v_n = 0;

        BEGIN
            PERFORM annals_internal.apply_projection(p.handler_call, v_events);
        EXCEPTION WHEN OTHERS THEN
            FOR i IN 1 .. v_n LOOP
                BEGIN
                    PERFORM annals_internal.apply_projection(p.handler_call, ARRAY[v_events[i]]);
                EXCEPTION WHEN OTHERS THEN
                    v_err := format('%s (SQLSTATE %s)', SQLERRM, SQLSTATE);
                    INSERT INTO annals_internal.dead_letters AS d
                           (subscription_name, member, stream_id, stream_version, global_position, transaction_id,
                            attempts, last_error, parked_at)
                    VALUES (v_sub, 0, annals_internal.stored_stream_id(v_events[i].stream_id, v_events[i].metadata), v_events[i].stream_version, v_events[i].global_position,
                            v_events[i].transaction_id, 1, v_err, clock_timestamp())
                    ON CONFLICT ON CONSTRAINT dead_letters_event_key DO UPDATE
                       SET attempts = d.attempts + 1, last_error = excluded.last_error, status = 'parked',
                           parked_at = excluded.parked_at, resolved_at = NULL;
                    UPDATE annals_internal.projections AS pr
                       SET last_error = format('%s@%s: %s', v_events[i].stream_id, v_events[i].stream_version, v_err),
                           last_error_at = clock_timestamp()
                     WHERE pr.projection_name = p.projection_name;
                END;
            END LOOP;
        END;

        UPDATE annals_internal.subscription_checkpoints AS c
           SET checkpoint_transaction = v_events[v_n].transaction_id,
               checkpoint_position = v_events[v_n].global_position,
               updated_at = clock_timestamp()
         WHERE c.subscription_name = v_sub AND c.member = 0;
        v_total := v_total + v_n;
    END LOOP;
    RETURN v_total;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.run_async_projections(integer) IS
$$Moves every enabled async projection forward by at most max_events events from the gap-free feed, with
the handler's writes and the checkpoint in this transaction. Failing events are parked in annals.dead_letters
(subscription '$projection:<name>') and recorded as the projection's last_error. Returns events processed:
call it from a scheduler (pg_cron) or `annals worker` until it returns 0.$$;
REVOKE ALL ON FUNCTION annals.run_async_projections(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.run_async_projections(integer) TO annals_writer;
