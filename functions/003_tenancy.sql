-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Multi-tenancy (M15). A session's tenant is the setting annals.tenant (annals.set_tenant, or SET,
-- or ALTER ROLE ... SET). A stream created under a tenant is stored as tenant || U+001F || id:
-- U+001F is a control character the name rule forbids in stream ids, so a tenant's ids never
-- collide with another tenant's or with untenanted ids, and the unique keys, hash partitions,
-- stream locks, snapshots and cold segments work unchanged. Functions qualify the ids they are
-- given (qualify) and return them unqualified (unqualify); row-level security policies, created
-- by annals.enable_tenancy(), make every other tenant's rows invisible and unwritable, whatever
-- a function or a client does. Without a tenant set, qualify returns its argument: with tenancy
-- off, the append pays one current_setting() call and a comparison.

-- The session's tenant: NULL when none is set (or set to ''); '*' is the all-tenants scope.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.session_tenant()
RETURNS text
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN nullif(current_setting('annals.tenant', true), '');
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.session_tenant() IS
    'The session''s annals.tenant setting, NULL when unset or empty. Inlined.';
REVOKE ALL ON FUNCTION annals_internal.session_tenant() FROM PUBLIC;

-- A stream id (or category) as stored for the session's tenant. Inlined: with no tenant set, a
-- comparison and the argument itself. Under '*' ids are taken as given (untenanted streams).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.qualify(id text)
RETURNS text
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN CASE WHEN coalesce(annals_internal.session_tenant(), '*') = '*' THEN id
            ELSE annals_internal.session_tenant() || chr(31) || id END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.qualify(text) IS
    'A stream id or category as stored for the session''s tenant: tenant || U+001F || id; the id itself when no tenant (or ''*'') is set.';
REVOKE ALL ON FUNCTION annals_internal.qualify(text) FROM PUBLIC;

-- The same for an array of categories (a filter); NULL stays NULL.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.qualify_all(ids text[])
RETURNS text[]
LANGUAGE sql
STABLE PARALLEL SAFE
RETURN CASE WHEN ids IS NULL OR coalesce(annals_internal.session_tenant(), '*') = '*' THEN ids
            ELSE ARRAY(SELECT annals_internal.qualify(x) FROM unnest(ids) AS x) END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.qualify_all(text[]) IS
    'annals_internal.qualify for each element of an array of stream ids or categories; NULL stays NULL.';
REVOKE ALL ON FUNCTION annals_internal.qualify_all(text[]) FROM PUBLIC;

-- A stored stream id or category as its tenant's clients see it: the part after U+001F, the
-- whole id when it has none. One split_part per row. Inlined.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.unqualify(id text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN split_part(id, chr(31), -1);
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.unqualify(text) IS
    'A stored stream id or category without its tenant prefix (the part after U+001F), as clients see it.';
REVOKE ALL ON FUNCTION annals_internal.unqualify(text) FROM PUBLIC;

-- The tenant a stored stream id or category belongs to: '' for an untenanted one.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.tenant_of(id text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN split_part(id, chr(31), -2);
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.tenant_of(text) IS
    'The tenant of a stored stream id or category (the part before U+001F), '''' when it has none.';
REVOKE ALL ON FUNCTION annals_internal.tenant_of(text) FROM PUBLIC;

-- The stored stream id of an event as reads return it: its tenant is in metadata "$tenant".
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.stored_stream_id(stream_id text, metadata jsonb)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN metadata ? '$tenant' THEN (metadata ->> '$tenant') || chr(31) || stream_id ELSE stream_id END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.stored_stream_id(text, jsonb) IS
    'The stored (tenant-qualified) stream id of an event read back: its metadata''s "$tenant" || U+001F || stream_id.';
REVOKE ALL ON FUNCTION annals_internal.stored_stream_id(text, jsonb) FROM PUBLIC;

-- Why a tenant name is invalid (NULL when valid): the name rule in 1..63 bytes, no '-' (it would
-- move the category split), '*' is the all-tenants scope, '$' names are reserved (ST403).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.tenant_problem(tenant text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN annals_internal.name_problem(tenant, 63) IS NOT NULL THEN annals_internal.name_problem(tenant, 63)
    WHEN strpos(tenant, '-') > 0 THEN 'must not contain ''-'': it would change the categories of the tenant''s streams'
    WHEN strpos(tenant, '*') > 0 AND tenant <> '*' THEN 'must not contain ''*'' (''*'' alone is the all-tenants scope)'
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.tenant_problem(text) IS
    'Why a tenant name is invalid, NULL when valid: the name rule (1..63 bytes), no ''-'', ''*'' only alone.';
REVOKE ALL ON FUNCTION annals_internal.tenant_problem(text) FROM PUBLIC;

-- Raises for a tenant that appends or reads cannot use: ST422 malformed, ST403 '$...', 42501 '*'
-- for a session that is not a member of annals_owner. The slow path of a set tenant.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_tenant(tenant text)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF check_tenant.tenant = '*' THEN
        IF NOT pg_has_role(session_user, 'annals_owner', 'MEMBER') THEN
            IF annals_internal.raise_error('42501',
                format('tenant scope ''*'' (all tenants) is for members of annals_owner; %I is not one', session_user),
                jsonb_build_object('tenant', '*', 'role', session_user),
                'Set the tenant this client works for, or connect as the worker''s or an operator''s role.') IS NULL THEN END IF;
        END IF;
        RETURN;
    END IF;
    -- Without the policies a tenant would isolate nothing: refuse rather than pretend.
    IF NOT annals.tenancy_enabled() THEN
        IF annals_internal.raise_error('55000',
            format('tenant %L: tenancy is off in this database', check_tenant.tenant),
            jsonb_build_object('tenant', check_tenant.tenant),
            'Turn it on first: SELECT annals.enable_tenancy() as annals_owner (annals tenancy enable).') IS NULL THEN END IF;
    END IF;
    IF annals_internal.tenant_problem(check_tenant.tenant) IS NOT NULL THEN
        IF annals_internal.raise_invalid('tenant', annals_internal.tenant_problem(check_tenant.tenant)) IS NULL THEN END IF;
    END IF;
    IF left(check_tenant.tenant, 1) = '$' THEN
        IF annals_internal.raise_error('ST403',
            format('tenant %L is reserved: names starting with $ belong to Annals', check_tenant.tenant),
            jsonb_build_object('argument', 'tenant')) IS NULL THEN END IF;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_tenant(text) IS
    'Raises 55000 while tenancy is off, ST422 for a malformed tenant name, ST403 for a reserved one ($...), 42501 for ''*'' outside annals_owner.';
REVOKE ALL ON FUNCTION annals_internal.check_tenant(text) FROM PUBLIC;

-- Feed-wide work (async projections, rebuilds, compression, view refreshes) moves global
-- checkpoints or replaces whole tables: with tenancy on, run under one tenant it would see that
-- tenant's events only and lose the others'. It must run under '*' as a member of annals_owner.
-- With tenancy off: one catalog lookup.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.check_all_tenants(what text)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (annals_internal.session_tenant() IS NOT DISTINCT FROM '*' AND pg_has_role(session_user, 'annals_owner', 'MEMBER'))
       AND annals.tenancy_enabled() THEN
        IF annals_internal.raise_error('42501',
            format('%s works for every tenant: with tenancy on it runs under tenant ''*'' only, as a member of annals_owner (tenant now: %s)',
                   check_all_tenants.what, coalesce(annals_internal.session_tenant(), 'none')),
            jsonb_build_object('function', check_all_tenants.what, 'tenant', annals_internal.session_tenant()),
            'Run it as a member of annals_owner after SELECT annals.set_tenant(''*''), as annals worker does.') IS NULL THEN END IF;
    END IF;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.check_all_tenants(text) IS
    'Raises 42501 when tenancy is on and the session is not under ''*'' as a member of annals_owner: for feed-wide work.';
REVOKE ALL ON FUNCTION annals_internal.check_all_tenants(text) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.current_tenant()
RETURNS text
LANGUAGE sql
STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
RETURN annals_internal.session_tenant();
-- +goose StatementEnd
COMMENT ON FUNCTION annals.current_tenant() IS
    'The session''s tenant (the annals.tenant setting): NULL when none is set, ''*'' for the all-tenants scope.';
REVOKE ALL ON FUNCTION annals.current_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.current_tenant() TO annals_writer, annals_reader;

-- Sets the session's tenant. Within one transaction the tenant may not change once the
-- transaction has written or once set_tenant set a different one in it (ST424): the writes and
-- reads of one transaction belong to one tenant. The mark of the transaction's tenant is a
-- transaction-local setting, gone at its end.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.set_tenant(tenant text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_new     text := nullif(set_tenant.tenant, '');
    v_current text := annals_internal.session_tenant();
    v_marked  text := nullif(current_setting('annals.tenant_of_transaction', true), '');
BEGIN
    IF v_new IS NOT NULL THEN
        PERFORM annals_internal.check_tenant(v_new);
    END IF;
    IF v_new IS DISTINCT FROM v_current
       AND (pg_current_xact_id_if_assigned() IS NOT NULL
            OR v_marked IS NOT NULL AND v_marked IS DISTINCT FROM coalesce(v_new, '-')) THEN
        IF annals_internal.raise_error('ST424',
            format('cannot switch tenant from %s to %s inside a transaction that %s',
                   coalesce(quote_literal(v_current), 'none'), coalesce(quote_literal(v_new), 'none'),
                   CASE WHEN pg_current_xact_id_if_assigned() IS NOT NULL THEN 'has already written'
                        ELSE 'already set its tenant' END),
            jsonb_build_object('tenant', v_new, 'current', v_current)) IS NULL THEN END IF;
    END IF;
    PERFORM set_config('annals.tenant', coalesce(v_new, ''), false);
    -- '-' (no valid tenant contains it) marks "set to none in this transaction".
    PERFORM set_config('annals.tenant_of_transaction', coalesce(v_new, '-'), true);
    RETURN v_new;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.set_tenant(text) IS
$$Sets the session's tenant (the annals.tenant setting): NULL or '' clears it. Returns the tenant set.
With a tenant set, every Annals read and append sees and touches only that tenant's streams (row-level
security, once annals.enable_tenancy() has run). '*' (all tenants) is for members of annals_owner.
Errors: 55000 tenancy is off, ST422 malformed name (name rule, 1..63 bytes, no '-'), ST403 reserved ($...),
42501 '*' outside annals_owner, ST424 a switch inside a transaction that has written or already set another tenant.$$;
REVOKE ALL ON FUNCTION annals.set_tenant(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.set_tenant(text) TO annals_writer, annals_reader;

-- The tables whose rows belong to one stream, and the expression naming that stream's stored id.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.tenant_tables()
RETURNS TABLE (tbl regclass, id_expr text)
LANGUAGE sql
STABLE
BEGIN ATOMIC
    SELECT t.tbl, t.id_expr
      FROM (VALUES ('annals_internal.events'::regclass, 'stream_id'),
                   ('annals_internal.streams'::regclass, 'stream_id'),
                   ('annals_internal.cold_segments'::regclass, 'stream_id'),
                   ('annals_internal.cold_tags'::regclass, 'stream_id'),
                   ('annals_internal.snapshots'::regclass, 'stream_id'),
                   ('annals_internal.dead_letters'::regclass, 'stream_id'),
                   ('annals_internal.retention_rules'::regclass, 'coalesce(stream_id, category)')) AS t(tbl, id_expr)
    UNION ALL
    SELECT i.inhrelid::regclass, 'stream_id'
      FROM pg_catalog.pg_inherits AS i
     WHERE i.inhparent = 'annals_internal.events'::regclass;
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.tenant_tables() IS
    'The store''s tables holding per-stream rows (events and its partitions, streams, cold segments and their tags, snapshots, dead letters, retention rules) and the expression of each row''s stored stream id.';
REVOKE ALL ON FUNCTION annals_internal.tenant_tables() FROM PUBLIC;

-- The policy's condition. Per row one split_part and a text comparison; the session's parts are
-- scalar subqueries, evaluated once per query (an InitPlan). '*' is honoured only for a session
-- whose login role is a member of annals_owner; for anyone else it matches no tenant.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.tenant_policy_sql(tenant_expr text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN '(SELECT pg_catalog.current_setting(''annals.tenant'', true) = ''*'''
       || ' AND pg_catalog.pg_has_role(session_user, ''annals_owner'', ''MEMBER''))'
       || ' OR ' || tenant_expr
       || ' = (SELECT pg_catalog.concat(pg_catalog.current_setting(''annals.tenant'', true)))';
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.tenant_policy_sql(text) IS
    'The tenancy policy condition for a row whose tenant (''''/NULL-free text) is tenant_expr.';
REVOKE ALL ON FUNCTION annals_internal.tenant_policy_sql(text) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.enable_tenancy()
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    t       record;
    v_cond  text;
    v_done  boolean := false;
BEGIN
    FOR t IN SELECT * FROM annals_internal.tenant_tables() LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_catalog.pg_policy AS p
                               WHERE p.polrelid = t.tbl AND p.polname = 'annals_tenant');
        v_cond := annals_internal.tenant_policy_sql(
            format('pg_catalog.split_part(%s, pg_catalog.chr(31), -2)', t.id_expr));
        EXECUTE format('CREATE POLICY annals_tenant ON %s USING (%s) WITH CHECK (%s)', t.tbl, v_cond, v_cond);
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t.tbl);
        -- Annals' functions run as annals_owner, the tables' owner: FORCE makes the policy hold for them too.
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', t.tbl);
        EXECUTE format('COMMENT ON POLICY annals_tenant ON %s IS %L', t.tbl,
                       'Tenancy (annals.enable_tenancy): rows of the session''s tenant only (annals.tenant; none: untenanted rows; ''*'': all, for annals_owner members).');
        v_done := true;
    END LOOP;
    RETURN v_done;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.enable_tenancy() IS
$$Turns tenancy on: row-level security (ENABLE and FORCE) with the policy annals_tenant on every table
holding per-stream rows, so every query, by Annals' functions or anyone else, sees and writes only the
session tenant's rows. Idempotent, returns true when it created policies. Owner only, and where the history
guard is installed a superuser (it changes the history tables: ST401 otherwise).$$;
REVOKE ALL ON FUNCTION annals.enable_tenancy() FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.disable_tenancy()
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    t      record;
    v_done boolean := false;
BEGIN
    -- Look past the policy (NO FORCE for the owner, undone by the raise) for tenant streams.
    ALTER TABLE annals_internal.streams NO FORCE ROW LEVEL SECURITY;
    IF EXISTS (SELECT FROM annals_internal.streams AS s WHERE strpos(s.stream_id, chr(31)) > 0) THEN
        IF annals_internal.raise_error('ST409', 'cannot disable tenancy: tenants'' streams exist',
            jsonb_build_object('tenant_streams', (SELECT count(*) FROM annals_internal.streams AS s
                                                   WHERE strpos(s.stream_id, chr(31)) > 0)),
            'Tenant streams would become visible to every session: keep tenancy on.') IS NULL THEN END IF;
    END IF;
    FOR t IN SELECT * FROM annals_internal.tenant_tables() LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_policy AS p WHERE p.polrelid = t.tbl AND p.polname = 'annals_tenant') THEN
            EXECUTE format('DROP POLICY annals_tenant ON %s', t.tbl);
            v_done := true;
        END IF;
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', t.tbl);
        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', t.tbl);
    END LOOP;
    RETURN v_done;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.disable_tenancy() IS
$$Turns tenancy off again (drops the policies, disables row-level security), refused (ST409) once any
tenant's stream exists. Returns true when it dropped policies. Owner only.$$;
REVOKE ALL ON FUNCTION annals.disable_tenancy() FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.tenancy_enabled()
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
BEGIN ATOMIC
    SELECT EXISTS (SELECT FROM pg_catalog.pg_policy AS p
                    WHERE p.polrelid = 'annals_internal.events'::regclass AND p.polname = 'annals_tenant');
END;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.tenancy_enabled() IS 'Whether annals.enable_tenancy() has turned tenancy on.';
REVOKE ALL ON FUNCTION annals.tenancy_enabled() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION annals.tenancy_enabled() TO annals_writer, annals_reader;

-- A projection table opts in: row-level security (ENABLE, not FORCE: its owner, annals_owner,
-- which runs the handlers, is not restricted) with the same condition on the table's tenant
-- column, for reading and writing. ALTER TABLE needs the table's owner: annals_owner.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.enable_tenant_policy(tbl regclass, tenant_column name DEFAULT 'tenant')
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_cond text;
BEGIN
    IF NOT pg_has_role(session_user, 'annals_owner', 'MEMBER') THEN
        IF annals_internal.raise_error('42501',
            format('enable_tenant_policy is for members of annals_owner; %I is not one', session_user),
            jsonb_build_object('role', session_user),
            'Run it as the role that installed Annals or owns the projection''s tables.') IS NULL THEN END IF;
    END IF;
    IF enable_tenant_policy.tbl IS NULL OR enable_tenant_policy.tenant_column IS NULL THEN
        IF annals_internal.raise_invalid('tbl', 'must not be null') IS NULL THEN END IF;
    END IF;
    IF NOT EXISTS (SELECT FROM annals_internal.projections AS p WHERE enable_tenant_policy.tbl = ANY (p.tables)) THEN
        IF annals_internal.raise_invalid('tbl', format('%s is not a table of a registered projection', enable_tenant_policy.tbl)) IS NULL THEN END IF;
    END IF;
    IF annals_internal.table_trust_problem(enable_tenant_policy.tbl) IS NOT NULL THEN
        IF annals_internal.raise_error('42501',
            annals_internal.table_trust_problem(enable_tenant_policy.tbl),
            jsonb_build_object('table', enable_tenant_policy.tbl::text),
            'Make the table''s owner a member of annals_owner, then try again.') IS NULL THEN END IF;
    END IF;
    IF (SELECT c.relowner FROM pg_catalog.pg_class AS c WHERE c.oid = enable_tenant_policy.tbl)
       <> (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = 'annals_owner') THEN
        IF annals_internal.raise_error('42501',
            format('%s is owned by %s, not annals_owner: its policy cannot be created for it',
                             enable_tenant_policy.tbl, (SELECT c.relowner::regrole FROM pg_catalog.pg_class AS c WHERE c.oid = enable_tenant_policy.tbl)),
            jsonb_build_object('table', enable_tenant_policy.tbl::text),
            format('ALTER TABLE %s OWNER TO annals_owner, then try again.', enable_tenant_policy.tbl)) IS NULL THEN END IF;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = enable_tenant_policy.tbl AND a.attname = enable_tenant_policy.tenant_column
                      AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'text'::regtype) THEN
        IF annals_internal.raise_invalid('tenant_column',
            format('%s has no text column %I', enable_tenant_policy.tbl, enable_tenant_policy.tenant_column)) IS NULL THEN END IF;
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_policy AS p
                WHERE p.polrelid = enable_tenant_policy.tbl AND p.polname = 'annals_tenant') THEN
        RETURN false;
    END IF;
    v_cond := annals_internal.tenant_policy_sql(format('pg_catalog.concat(%I)', enable_tenant_policy.tenant_column));
    EXECUTE format('CREATE POLICY annals_tenant ON %s USING (%s) WITH CHECK (%s)', enable_tenant_policy.tbl, v_cond, v_cond);
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', enable_tenant_policy.tbl);
    EXECUTE format('COMMENT ON POLICY annals_tenant ON %s IS %L', enable_tenant_policy.tbl,
                   format('Tenancy (annals.enable_tenant_policy): rows whose %I is the session''s tenant (annals.tenant; none: NULL; ''*'': all, for annals_owner members).',
                          enable_tenant_policy.tenant_column));
    RETURN true;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.enable_tenant_policy(regclass, name) IS
$$Opts a projection table into tenancy: row-level security with a policy that lets a session read and
write only the rows whose tenant_column (text, default "tenant") is its tenant (NULL rows without a tenant,
all rows under '*' for members of annals_owner). Handlers fill the column from (e).metadata->>'$tenant'.
The table must belong to a registered projection, be owned by annals_owner and pass the projection trust
checks. Idempotent, returns true when it created the policy. Errors: 42501 not a member of annals_owner,
a table not owned by annals_owner or untrusted, ST422.$$;
REVOKE ALL ON FUNCTION annals.enable_tenant_policy(regclass, name) FROM PUBLIC;

-- A store with tenancy on gets the policy on every table of tenant_tables(), including tables a
-- later release adds (enable_tenancy skips the tables that have it).
-- +goose StatementBegin
DO $$
BEGIN
    IF annals.tenancy_enabled() THEN
        PERFORM annals.enable_tenancy();
    END IF;
END
$$;
-- +goose StatementEnd
