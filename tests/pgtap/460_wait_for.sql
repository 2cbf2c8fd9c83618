-- Structure and behaviour: annals.wait_for and annals.wait_for_projection, the read-your-writes
-- waits (M12). What needs another session (a commit seen while waiting, a standby's replay) is in
-- tests/replicas; here: signatures, volatility, privileges, validation, and the caller's own
-- transaction, which is all one pgTAP transaction can show.
BEGIN;
SELECT plan(23);

SELECT has_function('annals', 'wait_for', ARRAY['xid8', 'interval'], 'annals.wait_for(xid8, interval) exists');
SELECT has_function('annals', 'wait_for_projection', ARRAY['text', 'xid8', 'interval'],
                    'annals.wait_for_projection(text, xid8, interval) exists');
SELECT function_returns('annals', 'wait_for', ARRAY['xid8', 'interval'], 'boolean', 'wait_for returns boolean');
SELECT function_returns('annals', 'wait_for_projection', ARRAY['text', 'xid8', 'interval'], 'boolean',
                        'wait_for_projection returns boolean');
-- VOLATILE: a fresh snapshot for every check while it waits (a STABLE function keeps one).
SELECT volatility_is('annals', 'wait_for', ARRAY['xid8', 'interval'], 'volatile', 'wait_for is VOLATILE');
SELECT volatility_is('annals', 'wait_for_projection', ARRAY['text', 'xid8', 'interval'], 'volatile',
                     'wait_for_projection is VOLATILE');
SELECT is_definer('annals', 'wait_for', ARRAY['xid8', 'interval'], 'wait_for is SECURITY DEFINER');
SELECT function_privs_are('annals', 'wait_for', ARRAY['xid8', 'interval'], 'annals_reader', ARRAY['EXECUTE'],
                          'annals_reader may call wait_for');
SELECT function_privs_are('annals', 'wait_for_projection', ARRAY['text', 'xid8', 'interval'], 'annals_bi', ARRAY[]::name[],
                          'annals_bi may not call wait_for_projection (BI gets data, not calls)');
SELECT is((SELECT pg_catalog.pg_get_function_arguments('annals.wait_for(xid8, interval)'::regprocedure)),
          'transaction_id xid8, timeout interval DEFAULT ''00:00:05''::interval', 'the timeout defaults to 5 seconds');

-- Validation.
SELECT throws_ok($$SELECT annals.wait_for(NULL)$$, 'ST422', NULL, 'a NULL transaction id: ST422');
SELECT throws_ok($$SELECT annals.wait_for((pg_current_xact_id()::text::bigint + 1000000)::text::xid8, '0')$$,
                 'ST422', NULL, 'an id in the future: ST422');
SELECT throws_ok($$SELECT annals.wait_for('3', '-1 second')$$, 'ST422', NULL, 'a negative timeout: ST422');
SELECT throws_ok($$SELECT annals.wait_for('3', NULL)$$, 'ST422', NULL, 'a NULL timeout: ST422');
SELECT throws_ok($$SELECT annals.wait_for_projection('no_such_projection', '3')$$, 'ST404', NULL,
                 'an unknown projection: ST404');

-- Finished long ago, and the caller's own transaction: true at once.
SELECT ok(annals.wait_for('3', '0'), 'a frozen (long finished) id is visible');
SELECT ok(annals.wait_for((SELECT r.transaction_id FROM annals.append_events('w-1', NULL, '[{"type": "T"}]') AS r), '0'),
          'the caller''s own append is visible to it');

CREATE TABLE public.w_seen (n int);
CREATE TABLE public.w_seen_async (n int);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.w_seen, public.w_seen_async TO annals_owner;
CREATE FUNCTION public.w_apply(annals.event[]) RETURNS void LANGUAGE sql AS 'INSERT INTO public.w_seen VALUES (1)';
SELECT lives_ok($$SELECT annals.register_projection('w_inline', 'public.w_apply(annals.event[])', '{public.w_seen}')$$, 'an inline projection registers');
SELECT lives_ok($$SELECT annals.register_projection('w_async', 'public.w_apply(annals.event[])', '{public.w_seen_async}', mode => 'async')$$, 'an async projection registers');
SELECT ok(annals.wait_for_projection('w_inline', pg_current_xact_id(), '0'),
          'an inline projection has the caller''s own appends');
SELECT ok(NOT annals.wait_for_projection('w_async', pg_current_xact_id(), '1 hour'),
          'an async projection cannot pass an uncommitted transaction: false at once, no wait');
SELECT throws_ok($$SELECT annals.wait_for_projection(NULL, '3')$$, 'ST422', NULL, 'a NULL projection name: ST422');
SELECT throws_ok($$SELECT annals.wait_for_projection('w_async', NULL)$$, 'ST422', NULL,
                 'wait_for_projection with a NULL id: ST422');

SELECT * FROM finish();
ROLLBACK;
