-- +goose Up
-- Lifecycle (M13): purged streams, retention rules, crypto-shredding of personal data.

-- pgcrypto (a contrib module shipped with PostgreSQL) supplies AES and random bytes for the
-- per-subject keys. It is trusted since PostgreSQL 13, so an installer with CREATE on the
-- database may install it without being superuser; the extension and its schema then belong to
-- the installer (not to annals_owner, whose members must not be able to drop or replace what
-- Annals' functions call), and annals_owner gets USAGE. Installed into a schema of its own that no
-- application role may use; a database that already has pgcrypto elsewhere keeps it there (the
-- wrappers in functions/430_personal_data.sql look the schema up).
-- +goose StatementBegin
DO $$
DECLARE
    v_schema text;
    v_owner  oid;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pgcrypto') THEN
        CREATE SCHEMA IF NOT EXISTS annals_crypto;
        REVOKE ALL ON SCHEMA annals_crypto FROM PUBLIC;
        CREATE EXTENSION pgcrypto SCHEMA annals_crypto;
        COMMENT ON SCHEMA annals_crypto IS
            'pgcrypto, for Annals'' per-subject keys. No application role has USAGE; annals_owner does.';
    END IF;
    SELECT n.nspname, n.nspowner INTO v_schema, v_owner FROM pg_catalog.pg_extension AS x
      JOIN pg_catalog.pg_namespace AS n ON n.oid = x.extnamespace
     WHERE x.extname = 'pgcrypto';
    -- Appends and reads call pgcrypto by its schema's name with annals_owner's rights: whoever
    -- owns that schema could swap in functions of their own, so it must be a role already
    -- trusted with those rights (a member of annals_owner or a superuser; pg_database_owner
    -- stands for the database's owner), as for projection handlers (functions/015_check_callback.sql).
    IF v_owner = (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = 'pg_database_owner') THEN
        v_owner := (SELECT d.datdba FROM pg_catalog.pg_database AS d WHERE d.datname = current_database());
    END IF;
    IF NOT pg_catalog.pg_has_role(v_owner, 'annals_owner', 'MEMBER') THEN
        RAISE EXCEPTION 'pgcrypto is installed in schema %, owned by %, a role not trusted with annals_owner''s rights', v_schema, v_owner::regrole
            USING ERRCODE = '42501',
                  HINT = 'Move pgcrypto to a schema owned by annals_owner or a superuser (ALTER EXTENSION pgcrypto SET SCHEMA ...), or make the schema''s owner a member of annals_owner, then migrate again.';
    END IF;
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO annals_owner', v_schema);
END
$$;
-- +goose StatementEnd

-- A purged stream keeps its row as a tombstone: the last version stays, appends get ST410.
ALTER TABLE annals_internal.streams DROP CONSTRAINT streams_state_chk;
ALTER TABLE annals_internal.streams ADD CONSTRAINT streams_state_chk
    CHECK (state IN ('active', 'deleted', 'purged'));

-- The lifecycle log now records removals (ranges and counts) and erasures (no stream).
ALTER TABLE annals_internal.lifecycle_log DROP CONSTRAINT lifecycle_log_operation_chk;
ALTER TABLE annals_internal.lifecycle_log ADD CONSTRAINT lifecycle_log_operation_chk
    CHECK (operation IN ('delete', 'rebase_transaction_ids', 'purge', 'retention', 'forget', 'compress', 'archive'));
ALTER TABLE annals_internal.lifecycle_log ALTER COLUMN stream_id DROP NOT NULL;
ALTER TABLE annals_internal.lifecycle_log ALTER COLUMN stream_version DROP NOT NULL;
ALTER TABLE annals_internal.lifecycle_log ADD COLUMN first_version bigint;
ALTER TABLE annals_internal.lifecycle_log ADD COLUMN event_count bigint;
ALTER TABLE annals_internal.lifecycle_log ADD COLUMN details jsonb;
-- The history trigger lets a DELETE of events through only when this transaction has logged the
-- removal first (a purge or retention row covering the version): removal is always logged.
ALTER TABLE annals_internal.lifecycle_log ADD COLUMN transaction_id xid8 DEFAULT pg_catalog.pg_current_xact_id();
CREATE INDEX lifecycle_log_transaction_idx ON annals_internal.lifecycle_log (transaction_id, stream_id);
COMMENT ON COLUMN annals_internal.lifecycle_log.transaction_id IS
    'The transaction that did it (NULL before M13); removals are allowed only for ranges their transaction logged.';
ALTER TABLE annals_internal.lifecycle_log ADD CONSTRAINT lifecycle_log_stream_chk
    CHECK (operation IN ('forget', 'compress') OR stream_id IS NOT NULL AND stream_version IS NOT NULL);
COMMENT ON COLUMN annals_internal.lifecycle_log.stream_version IS
    'delete/purge: the stream''s version then; retention: the last version removed.';
COMMENT ON COLUMN annals_internal.lifecycle_log.first_version IS 'purge/retention: the first version removed.';
COMMENT ON COLUMN annals_internal.lifecycle_log.event_count IS 'purge/retention: how many events were removed.';
COMMENT ON COLUMN annals_internal.lifecycle_log.details IS
    'retention: the rule applied; forget: the subject and how many keys were destroyed; compress: the feed range moved, "from" and "to" as [transaction id, position].';

-- The event types with registered personal data, read by the append in the statement that reads
-- the limits: NULL (no registration) keeps every other append exactly as it was.
ALTER TABLE annals_internal.settings ADD COLUMN personal_data_types text[];
COMMENT ON COLUMN annals_internal.settings.personal_data_types IS
    'Event types whose data has registered personal data (annals.register_personal_data); NULL when none.';

-- Retention rules: one per stream or per category.
CREATE TABLE annals_internal.retention_rules (
    rule_id         bigint      GENERATED ALWAYS AS IDENTITY,
    stream_id       text,
    category        text,
    max_age         interval,
    max_count       bigint,
    truncate_before bigint,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT retention_rules_pkey PRIMARY KEY (rule_id),
    CONSTRAINT retention_rules_stream_key UNIQUE (stream_id),
    CONSTRAINT retention_rules_category_key UNIQUE (category),
    CONSTRAINT retention_rules_target_chk CHECK ((stream_id IS NULL) <> (category IS NULL)),
    CONSTRAINT retention_rules_limit_chk CHECK (num_nonnulls(max_age, max_count, truncate_before) > 0),
    CONSTRAINT retention_rules_max_age_chk CHECK (max_age > interval '0'),
    CONSTRAINT retention_rules_max_count_chk CHECK (max_count >= 1),
    CONSTRAINT retention_rules_truncate_before_chk CHECK (truncate_before >= 1)
);
ALTER TABLE annals_internal.retention_rules OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.retention_rules IS
    'Retention rules (annals.set_retention): per stream or per category, max age, max count and/or truncate-before.';

-- When annals.apply_retention last ran and what it did (one row; doctor reports it).
CREATE TABLE annals_internal.retention_runs (
    singleton   boolean     NOT NULL DEFAULT true,
    last_run_at timestamptz NOT NULL,
    last_removed bigint     NOT NULL,
    last_done   boolean     NOT NULL,
    CONSTRAINT retention_runs_pkey PRIMARY KEY (singleton),
    CONSTRAINT retention_runs_singleton_chk CHECK (singleton)
);
ALTER TABLE annals_internal.retention_runs OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.retention_runs IS
    'The last annals.apply_retention run: when, how many events it removed, whether it finished (false: more is due).';

-- Personal data registered per event type: JSON paths of data encrypted with the subject's key.
CREATE TABLE annals_internal.personal_data (
    event_type    text        NOT NULL,
    paths         text[]      NOT NULL,
    path_keys     text[]      NOT NULL,
    subject_path  text        NOT NULL,
    subject_keys  text[]      NOT NULL,
    registered_at timestamptz NOT NULL,
    CONSTRAINT personal_data_pkey PRIMARY KEY (event_type),
    CONSTRAINT personal_data_paths_chk CHECK (cardinality(paths) >= 1),
    CONSTRAINT personal_data_path_keys_chk CHECK (cardinality(path_keys) = cardinality(paths))
);
COMMENT ON COLUMN annals_internal.personal_data.path_keys IS
    'paths as the text of the key arrays jsonb_set and #> take (''$.address.street'' is ''{address,street}''), parsed once at registration.';
COMMENT ON COLUMN annals_internal.personal_data.subject_keys IS 'subject_path as a key array.';
ALTER TABLE annals_internal.personal_data OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.personal_data IS
    'Personal-data paths of an event type''s data and the path of the subject they belong to (annals.register_personal_data).';

-- One AES-256 key per subject. forget_subject sets key to NULL: what it encrypted is unreadable
-- from then on. A forgotten subject that appears again gets a new key (a new row).
CREATE TABLE annals_internal.subject_keys (
    key_id       bigint      GENERATED ALWAYS AS IDENTITY,
    subject_id   text        NOT NULL,
    key          bytea,
    created_at   timestamptz NOT NULL,
    forgotten_at timestamptz,
    CONSTRAINT subject_keys_pkey PRIMARY KEY (key_id),
    CONSTRAINT subject_keys_forgotten_chk CHECK ((key IS NULL) = (forgotten_at IS NOT NULL))
);
CREATE UNIQUE INDEX subject_keys_live_idx ON annals_internal.subject_keys (subject_id) WHERE key IS NOT NULL;
ALTER TABLE annals_internal.subject_keys OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.subject_keys IS
    'Per-subject keys of crypto-shredded personal data. Never granted to any role; NULL key: forgotten.';

-- Functions forget_subject calls with the subject id, to erase copies in projection tables.
CREATE TABLE annals_internal.erasure_handlers (
    handler       text        NOT NULL,
    handler_call  text        NOT NULL,
    registered_at timestamptz NOT NULL,
    CONSTRAINT erasure_handlers_pkey PRIMARY KEY (handler)
);
ALTER TABLE annals_internal.erasure_handlers OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.erasure_handlers IS
    'Erasure handlers: functions (subject_id text) RETURNS void that annals.forget_subject calls, e.g. to clear projection rows.';

-- +goose Down
DROP TABLE annals_internal.erasure_handlers;
DROP TABLE annals_internal.subject_keys;
DROP TABLE annals_internal.personal_data;
DROP TABLE annals_internal.retention_runs;
DROP TABLE annals_internal.retention_rules;
ALTER TABLE annals_internal.settings DROP COLUMN personal_data_types;
ALTER TABLE annals_internal.lifecycle_log DROP CONSTRAINT lifecycle_log_stream_chk;
ALTER TABLE annals_internal.lifecycle_log DROP COLUMN transaction_id;
ALTER TABLE annals_internal.lifecycle_log DROP COLUMN details;
ALTER TABLE annals_internal.lifecycle_log DROP COLUMN event_count;
ALTER TABLE annals_internal.lifecycle_log DROP COLUMN first_version;
ALTER TABLE annals_internal.lifecycle_log DROP CONSTRAINT lifecycle_log_operation_chk;
ALTER TABLE annals_internal.lifecycle_log ADD CONSTRAINT lifecycle_log_operation_chk
    CHECK (operation IN ('delete', 'rebase_transaction_ids'));
ALTER TABLE annals_internal.streams DROP CONSTRAINT streams_state_chk;
ALTER TABLE annals_internal.streams ADD CONSTRAINT streams_state_chk CHECK (state IN ('active', 'deleted'));
