-- +goose Up
-- Unlike every other file this one does not SET ROLE annals_owner: what it creates must belong to
-- a superuser, out of reach of annals_owner's members. Pin the search path all the same.
SET LOCAL search_path = pg_catalog, pg_temp;

-- The history guard. The append-only triggers (010_append_only.sql) stop UPDATE, DELETE and
-- TRUNCATE, but annals_owner owns the tables, so any member of it could disable or drop them,
-- replace their function, detach a partition or rewrite a table with ALTER ... USING, and then
-- change history. An event trigger refuses that DDL to every session whose session_user is not a
-- superuser. It compares the guarded state (history_state below: the tables, their columns,
-- constraints, partitions, triggers and their enabled state, rules, policies, owners, and the
-- guard functions' definitions) after each DDL command with the state a superuser last left, and
-- refuses a command that changed it; it refuses any table rewrite of a guarded table outright.
-- DDL that leaves the guarded state as it was passes: re-applying these files, the dispatch
-- trigger's regeneration and switching (events_dispatch_inline and events_notify change state on
-- their own, so only their definitions count), objects created anywhere else.
--
-- Everything lives in schema annals_guard, owned by the bootstrap superuser: annals_owner owns
-- annals_internal and, as a schema's owner, could drop anything in it (and with the event
-- trigger's function, the event trigger). Creating an event trigger needs a superuser, so a
-- non-superuser's migrate skips this file; `annals migrate` by a superuser installs the guard (it
-- re-applies the functions when the guard is missing). Each superuser DDL command pins the new
-- state, so a superuser may change anything, and members go on as before afterwards.
--
-- Raise the version when anything below changes: a non-superuser's migrate refuses to go on with
-- an older installed guard (it could not replace it).
-- +goose StatementBegin
DO $install$
DECLARE
    v_version   constant text := '1';
    v_installed text;
    v_bootstrap text := (SELECT r.rolname FROM pg_catalog.pg_roles AS r WHERE r.oid = 10);
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = session_user) THEN
        IF EXISTS (SELECT FROM pg_catalog.pg_event_trigger AS e WHERE e.evtname = 'annals_history_guard') THEN
            v_installed := substring(pg_catalog.obj_description(
                               (SELECT n.oid FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'annals_guard'),
                               'pg_namespace') FROM 'history guard, version ([0-9]+)');
            IF v_installed IS DISTINCT FROM v_version THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'ST401',
                    MESSAGE = pg_catalog.format('this release brings version %s of the history guard, the database has version %s, '
                                                'and only a superuser may replace it', v_version, coalesce(v_installed, 'unknown')),
                    DETAIL  = pg_catalog.jsonb_build_object('operation', 'install history guard',
                                                            'objects', pg_catalog.jsonb_build_array('schema annals_guard'))::text,
                    HINT    = 'Run annals migrate as a superuser.';
            END IF;
        ELSE
            RAISE NOTICE 'Annals history guard not installed: it needs a superuser; run annals migrate as a superuser to install it';
        END IF;
        RETURN;
    END IF;

    CREATE SCHEMA IF NOT EXISTS annals_guard;
    EXECUTE pg_catalog.format('ALTER SCHEMA annals_guard OWNER TO %I', v_bootstrap);
    REVOKE ALL ON SCHEMA annals_guard FROM PUBLIC;
    EXECUTE pg_catalog.format('COMMENT ON SCHEMA annals_guard IS %L',
        'Annals history guard, version ' || v_version || ': the event trigger that keeps members of annals_owner from '
        'disabling or altering the append-only guards. Owned by a superuser; no other role has privileges here.');

    -- The state a superuser last left, compared after every DDL command of anyone else.
    CREATE TABLE IF NOT EXISTS annals_guard.pinned (
        singleton boolean     PRIMARY KEY DEFAULT true,
        state     text[]      NOT NULL,
        pinned_at timestamptz NOT NULL,
        pinned_by text        NOT NULL,
        CONSTRAINT pinned_singleton_chk CHECK (singleton)
    );
    EXECUTE pg_catalog.format('ALTER TABLE annals_guard.pinned OWNER TO %I', v_bootstrap);
    REVOKE ALL ON annals_guard.pinned FROM PUBLIC;
    COMMENT ON TABLE annals_guard.pinned IS
        'The guarded state (annals_guard.history_state()) as the last superuser DDL command or annals migrate left it.';

    -- The relations whose rows are history: events (every partition, at any depth), streams, the
    -- lifecycle log, and any other relation with a trigger calling the append-only function.
    CREATE OR REPLACE FUNCTION annals_guard.guarded_relations()
    RETURNS SETOF regclass
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
        WITH roots AS (
            SELECT pg_catalog.to_regclass(n.name)::pg_catalog.oid AS oid
              FROM unnest(ARRAY['annals_internal.events', 'annals_internal.streams', 'annals_internal.lifecycle_log']) AS n(name)
             WHERE pg_catalog.to_regclass(n.name) IS NOT NULL
            UNION
            SELECT t.tgrelid
              FROM pg_catalog.pg_trigger AS t
             WHERE t.tgfoid = (SELECT pg_catalog.to_regprocedure('annals_internal.reject_history_change()'))
        )
        SELECT r.oid::pg_catalog.regclass FROM roots AS r
        UNION
        SELECT p.relid FROM roots AS r, pg_catalog.pg_partition_tree(r.oid) AS p
    $fn$;
    EXECUTE pg_catalog.format('ALTER FUNCTION annals_guard.guarded_relations() OWNER TO %I', v_bootstrap);
    REVOKE ALL ON FUNCTION annals_guard.guarded_relations() FROM PUBLIC;
    COMMENT ON FUNCTION annals_guard.guarded_relations() IS
        'The relations whose rows are Annals history: events and its partitions, streams, lifecycle_log, and every relation a trigger guards with annals_internal.reject_history_change().';

    -- One line per guarded fact, "object | attributes", sorted. Names are printed with the search
    -- path pinned, so they are always schema-qualified. The two triggers Annals itself switches on
    -- and off count by definition only; the dispatch function is regenerated, so it is left out.
    -- The relations are collected first so every catalog is read by index: this runs after each
    -- DDL command.
    CREATE OR REPLACE FUNCTION annals_guard.history_state()
    RETURNS text[]
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    DECLARE
        v_rels     oid[] := ARRAY(SELECT g.oid FROM annals_guard.guarded_relations() AS g(oid));
        v_events   oid := pg_catalog.to_regclass('annals_internal.events');
        v_function oid := pg_catalog.to_regprocedure('annals_internal.reject_history_change()');
        v_triggers oid[];
        v_functions oid[];
    BEGIN
        -- Guard triggers, and the functions they call, but not the two that Annals switches.
        SELECT coalesce(pg_catalog.array_agg(t.oid), '{}'),
               coalesce(pg_catalog.array_agg(DISTINCT t.tgfoid) FILTER (
                   WHERE NOT (t.tgrelid = v_events AND t.tgname IN ('events_dispatch_inline', 'events_notify'))), '{}')
          INTO v_triggers, v_functions
          FROM pg_catalog.pg_trigger AS t
         WHERE t.tgrelid = ANY (v_rels) AND NOT t.tgisinternal;
        IF v_function IS NOT NULL THEN
            v_functions := v_functions || v_function;
        END IF;

        RETURN (
            WITH facts AS (
                SELECT pg_catalog.format('relation %s | kind=%s owner=%s persistence=%s rls=%s force_rls=%s partition_key=%s partition_of=%s bound=%s',
                           c.oid::pg_catalog.regclass, c.relkind, pg_catalog.pg_get_userbyid(c.relowner), c.relpersistence,
                           c.relrowsecurity, c.relforcerowsecurity, coalesce(pg_catalog.pg_get_partkeydef(c.oid), '-'),
                           coalesce((SELECT pg_catalog.string_agg(i.inhparent::pg_catalog.regclass::text, ',')
                                       FROM pg_catalog.pg_inherits AS i WHERE i.inhrelid = c.oid), '-'),
                           coalesce(pg_catalog.pg_get_expr(c.relpartbound, c.oid), '-'))
                  FROM pg_catalog.pg_class AS c
                 WHERE c.oid = ANY (v_rels)
                UNION
                SELECT pg_catalog.format('schema %I | owner=%s', n.nspname, pg_catalog.pg_get_userbyid(n.nspowner))
                  FROM pg_catalog.pg_namespace AS n
                 WHERE n.oid IN (SELECT c.relnamespace FROM pg_catalog.pg_class AS c WHERE c.oid = ANY (v_rels))
                UNION
                SELECT pg_catalog.format('column %s.%I | type=%s not_null=%s default=%s generated=%s identity=%s collation=%s',
                           a.attrelid::pg_catalog.regclass, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
                           coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '-'), a.attgenerated, a.attidentity,
                           a.attcollation::pg_catalog.regcollation)
                  FROM pg_catalog.pg_attribute AS a
                  LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE a.attrelid = ANY (v_rels) AND a.attnum > 0 AND NOT a.attisdropped
                UNION
                SELECT pg_catalog.format('constraint %s.%I | %s', k.conrelid::pg_catalog.regclass, k.conname,
                                         pg_catalog.pg_get_constraintdef(k.oid))
                  FROM pg_catalog.pg_constraint AS k
                 WHERE k.conrelid = ANY (v_rels)
                UNION
                SELECT pg_catalog.format('trigger %s on %s | enabled=%s %s', pg_catalog.quote_ident(t.tgname), t.tgrelid::pg_catalog.regclass,
                           CASE WHEN t.tgrelid = v_events AND t.tgname IN ('events_dispatch_inline', 'events_notify')
                                THEN '*' ELSE t.tgenabled::text END,
                           pg_catalog.pg_get_triggerdef(t.oid))
                  FROM pg_catalog.pg_trigger AS t
                 WHERE t.oid = ANY (v_triggers)
                UNION
                SELECT pg_catalog.format('rule %s on %s | enabled=%s %s', pg_catalog.quote_ident(w.rulename), w.ev_class::pg_catalog.regclass,
                           w.ev_enabled, pg_catalog.pg_get_ruledef(w.oid))
                  FROM pg_catalog.pg_rewrite AS w
                 WHERE w.ev_class = ANY (v_rels)
                UNION
                SELECT pg_catalog.format('policy %s on %s | command=%s permissive=%s roles=%s using=%s check=%s',
                           pg_catalog.quote_ident(p.polname), p.polrelid::pg_catalog.regclass, p.polcmd, p.polpermissive,
                           p.polroles::pg_catalog.regrole[], coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '-'),
                           coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '-'))
                  FROM pg_catalog.pg_policy AS p
                 WHERE p.polrelid = ANY (v_rels)
                UNION
                SELECT pg_catalog.format('function %s | owner=%s definition_md5=%s', f.oid::pg_catalog.regprocedure,
                           pg_catalog.pg_get_userbyid(f.proowner), pg_catalog.md5(pg_catalog.pg_get_functiondef(f.oid)))
                  FROM pg_catalog.pg_proc AS f
                 WHERE f.oid = ANY (v_functions)
            )
            SELECT coalesce(pg_catalog.array_agg(f.fact ORDER BY f.fact COLLATE "C"), '{}')
              FROM facts AS f(fact));
    END
    $fn$;
    EXECUTE pg_catalog.format('ALTER FUNCTION annals_guard.history_state() OWNER TO %I', v_bootstrap);
    REVOKE ALL ON FUNCTION annals_guard.history_state() FROM PUBLIC;
    COMMENT ON FUNCTION annals_guard.history_state() IS
        'The guarded state of Annals history, one sorted line per fact ("object | attributes"): relations, schemas, columns, constraints, partitions, triggers and their enabled state, rules, policies, and the append-only function''s definition.';

    -- Records the current state as the one members' DDL must leave alone. Called after each DDL
    -- command of a superuser session, at install, and by a superuser's annals migrate. It writes
    -- (and so locks the row until commit) only when the state changed: most superuser DDL leaves
    -- the history tables alone, and concurrent superuser transactions must not queue on this row.
    CREATE OR REPLACE FUNCTION annals_guard.pin()
    RETURNS void
    LANGUAGE sql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
        INSERT INTO annals_guard.pinned AS p (singleton, state, pinned_at, pinned_by)
        SELECT true, s.state, pg_catalog.clock_timestamp(), session_user
          FROM (SELECT annals_guard.history_state() AS state) AS s
         WHERE s.state IS DISTINCT FROM (SELECT q.state FROM annals_guard.pinned AS q)
        ON CONFLICT (singleton) DO UPDATE
           SET state = excluded.state, pinned_at = excluded.pinned_at, pinned_by = excluded.pinned_by
    $fn$;
    EXECUTE pg_catalog.format('ALTER FUNCTION annals_guard.pin() OWNER TO %I', v_bootstrap);
    REVOKE ALL ON FUNCTION annals_guard.pin() FROM PUBLIC;
    COMMENT ON FUNCTION annals_guard.pin() IS
        'Pins annals_guard.history_state() as the state members of annals_owner may not change (superusers only).';

    -- The event trigger function. SECURITY DEFINER, so it reads and pins the state whoever runs
    -- the DDL; it calls nothing annals_owner could replace. session_user, not current_user:
    -- SET ROLE and SECURITY DEFINER functions change the latter, and a superuser's migrate runs
    -- the function files as annals_owner.
    CREATE OR REPLACE FUNCTION annals_guard.history_guard()
    RETURNS event_trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $fn$
    DECLARE
        v_state   text[];
        v_pinned  text[];
        v_objects text[];
    BEGIN
        IF (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = session_user) THEN
            IF TG_EVENT = 'ddl_command_end' THEN
                PERFORM annals_guard.pin();
            END IF;
            RETURN;
        END IF;

        IF TG_EVENT = 'table_rewrite' THEN
            -- ALTER TABLE ... TYPE ... USING, SET ACCESS METHOD and the like rewrite every row
            -- without firing a row trigger.
            IF pg_catalog.pg_event_trigger_table_rewrite_oid() IN (SELECT g.oid FROM annals_guard.guarded_relations() AS g(oid)) THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'ST401',
                    MESSAGE = pg_catalog.format('%s refused: it rewrites %s, which holds Annals history; only a superuser may',
                                                TG_TAG, pg_catalog.pg_event_trigger_table_rewrite_oid()::pg_catalog.regclass),
                    DETAIL  = pg_catalog.jsonb_build_object('operation', TG_TAG, 'objects', pg_catalog.jsonb_build_array(
                                  'relation ' || pg_catalog.pg_event_trigger_table_rewrite_oid()::pg_catalog.regclass::text),
                                  'changed', 1)::text,
                    HINT    = 'History is append-only: append compensating events. Schema changes to history tables need a superuser (annals migrate as a superuser).';
            END IF;
            RETURN;
        END IF;

        v_state := annals_guard.history_state();
        SELECT p.state INTO v_pinned FROM annals_guard.pinned AS p;
        IF v_state IS NOT DISTINCT FROM v_pinned THEN
            RETURN;
        END IF;
        -- What changed, whole objects first (a dropped table, not each of its columns), then by name.
        SELECT pg_catalog.array_agg(o.object ORDER BY o.rank, o.object COLLATE "C")
          INTO v_objects
          FROM (SELECT DISTINCT pg_catalog.split_part(d.fact, ' | ', 1) AS object,
                       pg_catalog.array_position(ARRAY['schema', 'relation', 'function', 'trigger', 'rule', 'policy', 'constraint', 'column'],
                                                 pg_catalog.split_part(d.fact, ' ', 1)) AS rank
                  FROM ((SELECT unnest(v_state) EXCEPT SELECT unnest(v_pinned))
                        UNION
                        (SELECT unnest(v_pinned) EXCEPT SELECT unnest(v_state))) AS d(fact)) AS o;
        RAISE EXCEPTION USING
            ERRCODE = 'ST401',
            MESSAGE = pg_catalog.format('%s refused: it changes %s%s, which guards Annals history; only a superuser may',
                                        TG_TAG, v_objects[1],
                                        CASE WHEN pg_catalog.cardinality(v_objects) > 1
                                             THEN pg_catalog.format(' (and %s more)', pg_catalog.cardinality(v_objects) - 1) END),
            DETAIL  = pg_catalog.jsonb_build_object('operation', TG_TAG,
                                                    'objects', pg_catalog.to_jsonb(v_objects[1:20]),
                                                    'changed', pg_catalog.cardinality(v_objects))::text,
            HINT    = 'Members of annals_owner may not disable, drop or alter the append-only guards. '
                      'Run this as a superuser; annals migrate run by a superuser installs and pins the guard.';
    END
    $fn$;
    EXECUTE pg_catalog.format('ALTER FUNCTION annals_guard.history_guard() OWNER TO %I', v_bootstrap);
    REVOKE ALL ON FUNCTION annals_guard.history_guard() FROM PUBLIC;
    COMMENT ON FUNCTION annals_guard.history_guard() IS
        'Event trigger function: refuses, unless session_user is a superuser, DDL that changes annals_guard.history_state() and table rewrites of guarded relations (SQLSTATE ST401); a superuser''s DDL pins the new state.';

    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger AS e WHERE e.evtname = 'annals_history_guard') THEN
        CREATE EVENT TRIGGER annals_history_guard ON ddl_command_end
            EXECUTE FUNCTION annals_guard.history_guard();
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger AS e WHERE e.evtname = 'annals_history_guard_rewrite') THEN
        CREATE EVENT TRIGGER annals_history_guard_rewrite ON table_rewrite
            EXECUTE FUNCTION annals_guard.history_guard();
    END IF;
    ALTER EVENT TRIGGER annals_history_guard ENABLE;
    ALTER EVENT TRIGGER annals_history_guard_rewrite ENABLE;
    EXECUTE pg_catalog.format('ALTER EVENT TRIGGER annals_history_guard OWNER TO %I', v_bootstrap);
    EXECUTE pg_catalog.format('ALTER EVENT TRIGGER annals_history_guard_rewrite OWNER TO %I', v_bootstrap);
    COMMENT ON EVENT TRIGGER annals_history_guard IS
        'Annals history guard: after each DDL command of a non-superuser session, refuses a change to annals_guard.history_state().';
    COMMENT ON EVENT TRIGGER annals_history_guard_rewrite IS
        'Annals history guard: refuses a table rewrite of a guarded relation in a non-superuser session.';

    PERFORM annals_guard.pin();
END
$install$;
-- +goose StatementEnd
