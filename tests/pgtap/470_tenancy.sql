-- Structure and behaviour: multi-tenancy (M15, functions/003_tenancy.sql). What needs several
-- transactions or logins (ST424 after a write, BI logins, the Go client, the feed) is in
-- tests/tenancy_test.go; here: signatures, privileges, the switch, and one tenant's view, all in
-- the one pgTAP transaction (rolled back).
BEGIN;
SELECT plan(27);

SELECT has_function('annals', 'set_tenant', ARRAY['text'], 'annals.set_tenant(text) exists');
SELECT has_function('annals', 'current_tenant', ARRAY[]::name[], 'annals.current_tenant() exists');
SELECT has_function('annals', 'enable_tenancy', ARRAY[]::name[], 'annals.enable_tenancy() exists');
SELECT has_function('annals', 'disable_tenancy', ARRAY[]::name[], 'annals.disable_tenancy() exists');
SELECT has_function('annals', 'tenancy_enabled', ARRAY[]::name[], 'annals.tenancy_enabled() exists');
SELECT has_function('annals', 'enable_tenant_policy', ARRAY['regclass', 'name'], 'annals.enable_tenant_policy(regclass, name) exists');
SELECT is_definer('annals', 'set_tenant', ARRAY['text'], 'set_tenant is SECURITY DEFINER');
SELECT function_privs_are('annals', 'set_tenant', ARRAY['text'], 'annals_bi', ARRAY[]::name[],
                          'annals_bi calls nothing: a BI login gets its tenant from ALTER ROLE ... SET annals.tenant');
SELECT function_privs_are('annals', 'set_tenant', ARRAY['text'], 'annals_writer', ARRAY['EXECUTE'], 'annals_writer may set its tenant');
SELECT function_privs_are('annals', 'enable_tenancy', ARRAY[]::text[], 'annals_writer', ARRAY[]::name[], 'annals_writer may not turn tenancy on');
SELECT function_privs_are('annals', 'enable_tenant_policy', ARRAY['regclass', 'name'], 'annals_writer', ARRAY[]::name[],
                          'annals_writer may not opt a table in');

-- Off: nothing exists, a tenant is refused.
SELECT is((SELECT count(*) FROM pg_catalog.pg_policies WHERE schemaname = 'annals_internal'), 0::bigint, 'off: no policy');
SELECT ok(NOT annals.tenancy_enabled(), 'off: tenancy_enabled() is false');
SELECT throws_ok($$SELECT annals.set_tenant('acme')$$, '55000', NULL, 'off: a tenant is refused (55000)');

-- On.
SELECT ok(annals.enable_tenancy(), 'enable_tenancy creates the policies');
SELECT ok(NOT annals.enable_tenancy(), 'and is idempotent');
SELECT is((SELECT count(*) FROM pg_catalog.pg_class AS c
            WHERE c.oid IN ('annals_internal.events'::regclass, 'annals_internal.streams'::regclass,
                            'annals_internal.cold_segments'::regclass, 'annals_internal.snapshots'::regclass,
                            'annals_internal.dead_letters'::regclass, 'annals_internal.retention_rules'::regclass,
                            'annals_internal.events_p0'::regclass, 'annals_internal.events_p7'::regclass)
              AND c.relrowsecurity AND c.relforcerowsecurity), 8::bigint,
          'row-level security is ENABLEd and FORCEd on the per-stream tables and the partitions');
SELECT throws_ok($$SELECT annals.set_tenant('a-b')$$, 'ST422', NULL, 'a tenant with - : ST422');
SELECT throws_ok($$SELECT annals.set_tenant('$sys')$$, 'ST403', NULL, 'a reserved tenant: ST403');
-- This transaction has written (the DDL above): switching the tenant is refused.
SELECT throws_ok($$SELECT annals.set_tenant('acme')$$, 'ST424', NULL, 'a switch in a transaction that wrote: ST424');

-- One tenant's view, with the setting itself (set_tenant would be a switch here).
SET LOCAL annals.tenant = 'acme';
SELECT is(annals.current_tenant(), 'acme', 'current_tenant() reads the setting');
SELECT lives_ok($$SELECT annals.append_events('order-1', 0, '[{"type": "A", "data": {}}]')$$, 'acme appends order-1');
SELECT is((SELECT metadata ->> '$tenant' FROM annals.read_stream('order-1')), 'acme', 'the event carries its tenant');
SELECT is((SELECT stream_id FROM annals.list_streams()), 'order-1', 'the stream lists under its own id');
SELECT throws_ok($$SELECT annals.append_events('order-2', 0, '[{"type": "A", "data": {}, "metadata": {"$tenant": "x"}}]')$$,
                 'ST403', NULL, 'a client''s "$tenant" metadata: ST403');
SET LOCAL annals.tenant = '';
SELECT is((SELECT count(*) FROM annals.read_stream('order-1')), 0::bigint, 'no tenant: acme''s stream does not exist');
SELECT lives_ok($$SELECT annals.append_events('order-1', 0, '[{"type": "A", "data": {}}]')$$,
                'no tenant: order-1 is a new, untenanted stream');

SELECT * FROM finish();
ROLLBACK;
