-- Structure: annals_owner (not a superuser) owns both schemas and every object in them. Each
-- catalog test lists the offenders, so a new object created by the wrong role names itself.
BEGIN;
SELECT plan(9);

SELECT schema_owner_is('annals', 'annals_owner', 'schema annals is owned by annals_owner');
SELECT schema_owner_is('annals_internal', 'annals_owner', 'schema annals_internal is owned by annals_owner');

SELECT is_empty(
    $$SELECT c.oid::regclass AS relation, c.relkind, pg_catalog.pg_get_userbyid(c.relowner) AS owner
        FROM pg_catalog.pg_class AS c
       WHERE c.relnamespace IN ('annals'::regnamespace, 'annals_internal'::regnamespace)
         AND c.relowner <> 'annals_owner'::regrole$$,
    'every table, partition, index, sequence, view and composite type relation is owned by annals_owner');
SELECT is_empty(
    $$SELECT p.oid::regprocedure AS function, pg_catalog.pg_get_userbyid(p.proowner) AS owner
        FROM pg_catalog.pg_proc AS p
       WHERE p.pronamespace IN ('annals'::regnamespace, 'annals_internal'::regnamespace)
         AND p.proowner <> 'annals_owner'::regrole$$,
    'every function is owned by annals_owner');
SELECT is_empty(
    $$SELECT t.oid::regtype AS type, pg_catalog.pg_get_userbyid(t.typowner) AS owner
        FROM pg_catalog.pg_type AS t
       WHERE t.typnamespace IN ('annals'::regnamespace, 'annals_internal'::regnamespace)
         AND t.typowner <> 'annals_owner'::regrole$$,
    'every type (composite, row and array types) is owned by annals_owner');
SELECT is_empty(
    $$SELECT o.oid::regoperator AS operator FROM pg_catalog.pg_operator AS o
       WHERE o.oprnamespace IN ('annals'::regnamespace, 'annals_internal'::regnamespace)
         AND o.oprowner <> 'annals_owner'::regrole$$,
    'every operator is owned by annals_owner');

-- The checks above must have something to look at.
SELECT cmp_ok((SELECT count(*) FROM pg_catalog.pg_class
                WHERE relnamespace = 'annals_internal'::regnamespace),
              '>=', 20::bigint, 'annals_internal holds the storage relations the ownership checks cover');

-- The owner owns everything but is no superuser and cannot log in; neither can the other roles.
SELECT isnt_superuser('annals_owner', 'annals_owner is not a superuser');
SELECT is_empty(
    $$SELECT rolname FROM pg_catalog.pg_roles
       WHERE rolname IN ('annals_owner', 'annals_writer', 'annals_reader', 'annals_bi')
         AND (rolsuper OR rolcanlogin OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication)$$,
    'the four Annals roles are NOLOGIN, NOSUPERUSER, NOCREATEROLE, NOCREATEDB, NOBYPASSRLS, NOREPLICATION');

SELECT * FROM finish();
ROLLBACK;
