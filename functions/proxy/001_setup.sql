-- The proxy database of a sharded store: roles, the plproxy extension, schemas, the result types
-- and the partition map. Applied by a superuser (CREATE EXTENSION plproxy needs one).

-- Roles are cluster-wide; created as the shard install does (migrations/001) when missing, so a
-- proxy on its own cluster has the roles its GRANTs name.
DO $$
DECLARE
    r text;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('annals:roles', 0));
    FOREACH r IN ARRAY ARRAY['annals_owner', 'annals_writer', 'annals_reader', 'annals_bi'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

-- A schema of ours that someone else created first would let its owner put objects beside the
-- proxy's (a function shadowing a routed call): only annals_owner or a superuser may own them.
DO $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT n.nspname, pg_catalog.pg_get_userbyid(n.nspowner) AS owner
               FROM pg_catalog.pg_namespace AS n
               JOIN pg_catalog.pg_roles AS r ON r.oid = n.nspowner
              WHERE n.nspname IN ('annals', 'annals_proxy', 'annals_plproxy')
                AND r.rolname <> 'annals_owner' AND NOT r.rolsuper LOOP
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = pg_catalog.format('schema %I already exists and belongs to %I, not to annals_owner or a superuser', s.nspname, s.owner),
            DETAIL = pg_catalog.jsonb_build_object('schema', s.nspname, 'owner', s.owner)::text,
            HINT = pg_catalog.format('Drop it or ALTER SCHEMA %I OWNER TO annals_owner after checking what is in it, then run the setup again.', s.nspname);
    END LOOP;
END
$$;

-- PL/Proxy's handler and validator functions get a schema of their own (the extension is not
-- relocatable and would otherwise land in whatever schema comes first in the search path).
CREATE SCHEMA IF NOT EXISTS annals_plproxy;
COMMENT ON SCHEMA annals_plproxy IS 'The plproxy extension''s handler and validator functions.';
REVOKE ALL ON SCHEMA annals_plproxy FROM PUBLIC;
CREATE EXTENSION IF NOT EXISTS plproxy SCHEMA annals_plproxy;

-- The PL/Proxy cluster itself, SQL/MED server annals_shards, is created by
-- annals_proxy.apply_map() (010_routing.sql) once the map exists: PL/Proxy's validator refuses a
-- cluster without partitions.

CREATE SCHEMA IF NOT EXISTS annals AUTHORIZATION annals_owner;
COMMENT ON SCHEMA annals IS
    'Annals public API of a sharded store''s proxy: the stream calls routed to the owning shard, and fan-out reads.';
REVOKE ALL ON SCHEMA annals FROM PUBLIC;
GRANT USAGE ON SCHEMA annals TO annals_writer, annals_reader;

CREATE SCHEMA IF NOT EXISTS annals_proxy AUTHORIZATION annals_owner;
COMMENT ON SCHEMA annals_proxy IS
    'Annals proxy internals: the partition map and the PL/Proxy functions the public wrappers call.';
REVOKE ALL ON SCHEMA annals_proxy FROM PUBLIC;
-- The wrappers run as their caller (PL/Proxy connects as current_user), so callers need USAGE
-- here and EXECUTE on the routed functions; the tables stay private to the owner.
GRANT USAGE ON SCHEMA annals_proxy TO annals_writer, annals_reader;

SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- The same row types as a shard's (migrations/002): PL/Proxy matches result columns by name.
DO $$
BEGIN
    IF to_regtype('annals.event') IS NULL THEN
        CREATE TYPE annals.event AS (
            stream_id       text,
            stream_version  bigint,
            global_position bigint,
            event_id        uuid,
            event_type      text,
            schema_version  integer,
            data            jsonb,
            metadata        jsonb,
            transaction_id  xid8,
            recorded_at     timestamptz
        );
    END IF;
    IF to_regtype('annals.stream') IS NULL THEN
        CREATE TYPE annals.stream AS (
            stream_id      text,
            stream_version bigint,
            created_at     timestamptz,
            updated_at     timestamptz,
            state          text
        );
    END IF;
END
$$;
COMMENT ON TYPE annals.event IS
    'One stored event as every Annals read returns it (the shards'' type, repeated on the proxy).';
COMMENT ON TYPE annals.stream IS
    'A stream''s current version, creation and last-append times, and state (the shards'' type, repeated on the proxy).';

-- The shards, numbered from 1. conninfo is what the proxy connects with (libpq key=value,
-- without user: PL/Proxy adds the caller's); it may hold a password, so only the owner reads it.
CREATE TABLE IF NOT EXISTS annals_proxy.shards (
    shard    integer NOT NULL,
    name     text    NOT NULL,
    conninfo text    NOT NULL,
    CONSTRAINT shards_pkey PRIMARY KEY (shard),
    CONSTRAINT shards_name_key UNIQUE (name),
    CONSTRAINT shards_shard_chk CHECK (shard >= 1),
    CONSTRAINT shards_name_chk CHECK (name ~ '^[A-Za-z0-9_.-]{1,63}$')
);
COMMENT ON TABLE annals_proxy.shards IS
    'Shards of the store: number, name (used in messages) and the connection string the proxy uses.';

-- The fixed hash partitions (a power of two; partition = hashtext(stream_id) & (count - 1)) and
-- the shard owning each. Moving a partition is an UPDATE here plus annals_proxy.apply_map(),
-- after its streams were copied (README, "Scale-out").
CREATE TABLE IF NOT EXISTS annals_proxy.partitions (
    partition integer NOT NULL,
    shard     integer NOT NULL,
    CONSTRAINT partitions_pkey PRIMARY KEY (partition),
    CONSTRAINT partitions_shard_fkey FOREIGN KEY (shard) REFERENCES annals_proxy.shards (shard),
    CONSTRAINT partitions_partition_chk CHECK (partition >= 0)
);
CREATE INDEX IF NOT EXISTS partitions_shard_idx ON annals_proxy.partitions (shard, partition);
COMMENT ON TABLE annals_proxy.partitions IS
    'Hash partition -> shard. The partition count is fixed at init (a power of two, as PL/Proxy requires).';

-- Which build installed the proxy functions (annals shard status, annals migrate).
CREATE TABLE IF NOT EXISTS annals_proxy.info (
    singleton      boolean     NOT NULL DEFAULT true,
    files_checksum text        NOT NULL,
    installed_at   timestamptz NOT NULL,
    CONSTRAINT info_pkey PRIMARY KEY (singleton),
    CONSTRAINT info_singleton_chk CHECK (singleton)
);
COMMENT ON TABLE annals_proxy.info IS 'The checksum of the proxy SQL files last applied, and when.';
REVOKE ALL ON annals_proxy.shards, annals_proxy.partitions, annals_proxy.info FROM PUBLIC;
