-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Crypto-shredding. Fields registered as personal data are stored encrypted (AES-256-CBC, a
-- random IV per value) with a key per subject; reads decrypt them; annals.forget_subject destroys
-- the key, after which those fields read as JSON null and the event's metadata says "$erased".
--
-- An encrypted event carries {"$pii": {"key": <key_id>, "paths": [...]}} in its stored metadata
-- (reads remove it) and, at each of those paths, the base64 of IV || ciphertext of the value's
-- JSON text. The marker is honoured only for registered event types, whose appends always replace
-- a marker the writer may have sent, so a writer cannot make reads decrypt what it chose.

-- The pgcrypto calls, bound to the schema pgcrypto is installed in (annals_crypto, unless the
-- database had it elsewhere before Annals was installed). Generated so the name is qualified.
-- +goose StatementBegin
DO $gen$
DECLARE
    v_schema text := (SELECT n.nspname FROM pg_catalog.pg_extension AS x
                        JOIN pg_catalog.pg_namespace AS n ON n.oid = x.extnamespace
                       WHERE x.extname = 'pgcrypto');
BEGIN
    EXECUTE pg_catalog.format($f$
        CREATE OR REPLACE FUNCTION annals_internal.pii_new_key()
        RETURNS bytea LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
        AS $b$ SELECT %1$I.gen_random_bytes(32) $b$$f$, v_schema);
    -- The IV is random per value, so the same value never encrypts to the same text. String
    -- bodies, not SQL-standard ones: those would record a dependency on pgcrypto's functions,
    -- which belong to the installer, and keep DROP OWNED BY / DROP ROLE of the installer from
    -- working. PL/pgSQL (plans kept per session) for the per-field calls.
    EXECUTE pg_catalog.format($f$
        CREATE OR REPLACE FUNCTION annals_internal.pii_encrypt(value jsonb, key bytea, iv bytea)
        RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
        AS $b$ BEGIN RETURN pg_catalog.translate(pg_catalog.encode(iv || %1$I.encrypt_iv(pg_catalog.convert_to(value::text, 'UTF8'),
                                                                      key, iv, 'aes-cbc/pad:pkcs'), 'base64'), E'\n', ''); END $b$$f$, v_schema);
    EXECUTE pg_catalog.format($f$
        CREATE OR REPLACE FUNCTION annals_internal.pii_new_iv()
        RETURNS bytea LANGUAGE plpgsql VOLATILE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
        AS $b$ BEGIN RETURN %1$I.gen_random_bytes(16); END $b$$f$, v_schema);
    EXECUTE pg_catalog.format($f$
        CREATE OR REPLACE FUNCTION annals_internal.pii_decrypt(sealed text, key bytea)
        RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
        AS $b$ BEGIN RETURN pg_catalog.convert_from(%1$I.decrypt_iv(pg_catalog.substr(pg_catalog.decode(sealed, 'base64'), 17), key,
                                                       pg_catalog.substr(pg_catalog.decode(sealed, 'base64'), 1, 16),
                                                       'aes-cbc/pad:pkcs'), 'UTF8')::jsonb; END $b$$f$, v_schema);
END
$gen$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.pii_new_key() IS 'A new random 256-bit subject key (pgcrypto).';
COMMENT ON FUNCTION annals_internal.pii_encrypt(jsonb, bytea, bytea) IS
    'Encrypts a JSON value with a subject key and an IV (pii_new_iv): base64 of the IV and the AES-256-CBC ciphertext of its text.';
COMMENT ON FUNCTION annals_internal.pii_new_iv() IS 'A random 16-byte IV (pgcrypto).';
COMMENT ON FUNCTION annals_internal.pii_decrypt(text, bytea) IS 'Decrypts what pii_encrypt sealed with the same key.';
REVOKE ALL ON FUNCTION annals_internal.pii_new_key() FROM PUBLIC;
REVOKE ALL ON FUNCTION annals_internal.pii_encrypt(jsonb, bytea, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION annals_internal.pii_new_iv() FROM PUBLIC;
REVOKE ALL ON FUNCTION annals_internal.pii_decrypt(text, bytea) FROM PUBLIC;

-- '$.a.b' or '$."a b".c' as {a,b}; NULL for anything else (wildcards, arrays, filters).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.pii_path_elems(path text)
RETURNS text[]
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rest  text := pii_path_elems.path;
    v_elems text[] := '{}'::text[];
    v_m     text[];
BEGIN
    IF v_rest IS NULL OR left(v_rest, 1) <> '$' THEN
        RETURN NULL;
    END IF;
    v_rest := substr(v_rest, 2);
    WHILE v_rest <> '' LOOP
        v_m := regexp_match(v_rest, '^\.([A-Za-z_][A-Za-z0-9_]*)(.*)$');
        IF v_m IS NULL THEN
            v_m := regexp_match(v_rest, '^\."((?:[^"\\]|\\.)+)"(.*)$');
            IF v_m IS NULL THEN
                RETURN NULL;
            END IF;
            v_m[1] := regexp_replace(v_m[1], '\\(.)', '\1', 'g');
        END IF;
        v_elems := v_elems || v_m[1];
        v_rest := v_m[2];
    END LOOP;
    RETURN nullif(v_elems, '{}');
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.pii_path_elems(text) IS
    'The keys of a member-only JSON path (''$.address.street'' is {address,street}); NULL when the path is anything else.';
REVOKE ALL ON FUNCTION annals_internal.pii_path_elems(text) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.register_personal_data(event_type text, paths text[], subject_path text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_path  text;
    v_old   text[];
    v_paths text[];
    v_subject text[];
    v_elems text[];
BEGIN
    IF annals_internal.name_problem(register_personal_data.event_type, 256) IS NOT NULL THEN
        IF annals_internal.raise_invalid('event_type', annals_internal.name_problem(register_personal_data.event_type, 256)) IS NULL THEN END IF;
    END IF;
    IF left(register_personal_data.event_type, 1) = '$' THEN
        IF annals_internal.raise_error('ST403', format('event type %L is reserved: names starting with $ belong to Annals', register_personal_data.event_type),
            jsonb_build_object('argument', 'event_type')) IS NULL THEN END IF;
    END IF;
    IF register_personal_data.paths IS NULL OR cardinality(register_personal_data.paths) = 0
       OR array_position(register_personal_data.paths, NULL) IS NOT NULL THEN
        IF annals_internal.raise_invalid('paths', 'must list at least one JSON path, none of them NULL') IS NULL THEN END IF;
    END IF;
    FOREACH v_path IN ARRAY register_personal_data.paths LOOP
        IF annals_internal.pii_path_elems(v_path) IS NULL THEN
            IF annals_internal.raise_invalid('paths',
                format('%s is not a member path like ''$.email'' or ''$.address.street'' (no wildcards, array steps or filters)', v_path)) IS NULL THEN END IF;
        END IF;
    END LOOP;
    IF annals_internal.pii_path_elems(register_personal_data.subject_path) IS NULL THEN
        IF annals_internal.raise_invalid('subject_path',
            format('%s is not a member path like ''$.customer_id''', coalesce(register_personal_data.subject_path, 'NULL'))) IS NULL THEN END IF;
    END IF;
    SELECT p.paths INTO v_old FROM annals_internal.personal_data AS p WHERE p.event_type = register_personal_data.event_type
       FOR UPDATE;
    -- Paths are added, never dropped: stored events keep whatever was encrypted when they were appended.
    SELECT array_agg(DISTINCT x ORDER BY x) INTO v_paths
      FROM unnest(coalesce(v_old, '{}') || register_personal_data.paths) AS x;
    v_subject := annals_internal.pii_path_elems(register_personal_data.subject_path);
    FOREACH v_path IN ARRAY v_paths LOOP
        v_elems := annals_internal.pii_path_elems(v_path);
        -- One a prefix of the other: the subject inside a personal field, or a field inside the subject.
        IF v_elems[1:cardinality(v_subject)] = v_subject OR v_subject[1:cardinality(v_elems)] = v_elems THEN
            IF annals_internal.raise_invalid('subject_path',
                format('%s overlaps the personal-data path %s: the subject id stays readable, so it is never encrypted', register_personal_data.subject_path, v_path)) IS NULL THEN END IF;
        END IF;
    END LOOP;

    INSERT INTO annals_internal.personal_data AS p (event_type, paths, path_keys, subject_path, subject_keys, registered_at)
    VALUES (register_personal_data.event_type, v_paths,
            ARRAY(SELECT annals_internal.pii_path_elems(x)::text FROM unnest(v_paths) WITH ORDINALITY AS u(x, n) ORDER BY u.n),
            register_personal_data.subject_path, v_subject, clock_timestamp())
    ON CONFLICT ON CONSTRAINT personal_data_pkey DO UPDATE
       SET paths = excluded.paths, path_keys = excluded.path_keys, subject_path = excluded.subject_path,
           subject_keys = excluded.subject_keys, registered_at = excluded.registered_at;
    UPDATE annals_internal.settings AS s
       SET personal_data_types = (SELECT array_agg(p.event_type ORDER BY p.event_type) FROM annals_internal.personal_data AS p)
     WHERE s.singleton;
    RETURN v_old IS NULL;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.register_personal_data(text, text[], text) IS
$$Marks JSON paths of an event type's data ('$.email', '$.address.street') as personal data of the subject whose
id is the string at subject_path: from now on appends store them encrypted with that subject's key, reads
decrypt them, and annals.forget_subject erases them for good. Registering again adds paths (never drops
any). Events appended before are not encrypted. Returns true when the type was not registered. Owner only.
Errors: ST422 invalid argument (paths must be member paths), ST403 reserved event type.$$;
REVOKE ALL ON FUNCTION annals.register_personal_data(text, text[], text) FROM PUBLIC;

-- The live key of a subject, created on first use (and again after the subject was forgotten).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.subject_key(subject_id text)
RETURNS annals_internal.subject_keys
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key annals_internal.subject_keys;
BEGIN
    SELECT * INTO v_key FROM annals_internal.subject_keys AS k
     WHERE k.subject_id = subject_key.subject_id AND k.key IS NOT NULL;
    IF NOT FOUND THEN
        INSERT INTO annals_internal.subject_keys AS k (subject_id, key, created_at)
        VALUES (subject_key.subject_id, annals_internal.pii_new_key(), clock_timestamp())
        ON CONFLICT DO NOTHING;
        -- A concurrent first append for the same subject may have won: read whichever is live.
        SELECT * INTO STRICT v_key FROM annals_internal.subject_keys AS k
         WHERE k.subject_id = subject_key.subject_id AND k.key IS NOT NULL;
    END IF;
    RETURN v_key;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.subject_key(text) IS 'A subject''s live key row, created when it has none.';
REVOKE ALL ON FUNCTION annals_internal.subject_key(text) FROM PUBLIC;

-- An append's event (an element of append_events' array) with its personal data encrypted and the
-- marker in its metadata: {"$pii": {"key": <key_id>, "paths": ["$.email", ...], "at": ["{email}",
-- ...]}} ("at": the key arrays of "paths", so reads need not parse them). Called by the append
-- only for registered types.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.protect_event(ev jsonb)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_reg     annals_internal.personal_data;
    v_data    jsonb := coalesce(nullif(protect_event.ev -> 'data', 'null'), '{}');
    v_meta    jsonb := coalesce(nullif(protect_event.ev -> 'metadata', 'null'), '{}') - '$pii';
    v_subject jsonb;
    v_key     annals_internal.subject_keys;
    v_value   jsonb;
    v_paths   jsonb := '[]'::jsonb;
    v_at      jsonb := '[]'::jsonb;
BEGIN
    SELECT * INTO v_reg FROM annals_internal.personal_data AS p WHERE p.event_type = protect_event.ev ->> 'type';
    IF NOT FOUND THEN
        RETURN protect_event.ev;
    END IF;
    v_subject := v_data #> v_reg.subject_keys;
    IF jsonb_typeof(v_subject) IS DISTINCT FROM 'string' OR v_subject #>> '{}' = '' THEN
        IF annals_internal.raise_invalid('events',
            format('an event of type %s carries personal data, so its data needs the subject id as a non-empty string at %s',
                   v_reg.event_type, v_reg.subject_path)) IS NULL THEN END IF;
    END IF;
    FOR i IN 1 .. cardinality(v_reg.paths) LOOP
        v_value := v_data #> v_reg.path_keys[i]::text[];
        CONTINUE WHEN v_value IS NULL OR v_value = 'null';
        IF v_key.key_id IS NULL THEN
            v_key := annals_internal.subject_key(v_subject #>> '{}');
        END IF;
        v_data := jsonb_set(v_data, v_reg.path_keys[i]::text[],
                            to_jsonb(annals_internal.pii_encrypt(v_value, v_key.key, annals_internal.pii_new_iv())));
        v_paths := v_paths || to_jsonb(v_reg.paths[i]);
        v_at := v_at || to_jsonb(v_reg.path_keys[i]);
    END LOOP;
    IF v_key.key_id IS NOT NULL THEN
        v_meta := v_meta || jsonb_build_object('$pii', jsonb_build_object('key', v_key.key_id, 'paths', v_paths, 'at', v_at));
    END IF;
    RETURN protect_event.ev || jsonb_build_object('data', v_data, 'metadata', v_meta);
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.protect_event(jsonb) IS
    'An appended event with its registered personal data encrypted under its subject''s key and the "$pii" marker in its metadata.';
REVOKE ALL ON FUNCTION annals_internal.protect_event(jsonb) FROM PUBLIC;

-- Stored data as reads return it: personal data decrypted, or JSON null once the key is gone.
-- Called by annals_internal.as_read only for events whose metadata has the marker. The marker
-- counts only for a type that has personal data (else it is the writer's own metadata). PL/pgSQL
-- so the lookup's plan is kept for the session.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.reveal_data(event_type text, data jsonb, metadata jsonb)
RETURNS jsonb
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_registered boolean;
    v_key        bytea;
    v_data       jsonb := reveal_data.data;
    v_at         jsonb := reveal_data.metadata #> '{$pii,at}';
    v_keys       text[];
BEGIN
    SELECT true, k.key INTO v_registered, v_key
      FROM annals_internal.personal_data AS p
      LEFT JOIN annals_internal.subject_keys AS k ON k.key_id = (reveal_data.metadata #>> '{$pii,key}')::bigint
     WHERE p.event_type = reveal_data.event_type;
    IF v_registered IS NULL OR jsonb_typeof(v_at) IS DISTINCT FROM 'array' THEN
        RETURN reveal_data.data;  -- a marker on a type that never had personal data: the writer's own key
    END IF;
    FOR i IN 0 .. jsonb_array_length(v_at) - 1 LOOP
        v_keys := (v_at ->> i)::text[];
        v_data := jsonb_set(v_data, v_keys,
                            CASE WHEN v_key IS NULL THEN 'null'::jsonb
                                 ELSE annals_internal.pii_decrypt(v_data #>> v_keys, v_key) END);
    END LOOP;
    RETURN v_data;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.reveal_data(text, jsonb, jsonb) IS
    'Stored event data as reads show it: personal data decrypted, JSON null where the subject was forgotten.';
REVOKE ALL ON FUNCTION annals_internal.reveal_data(text, jsonb, jsonb) FROM PUBLIC;

-- Stored metadata as reads return it: without the marker, with "$erased" once the key is gone.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.reveal_metadata(event_type text, metadata jsonb)
RETURNS jsonb
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_registered boolean;
    v_key        bytea;
BEGIN
    SELECT true, k.key INTO v_registered, v_key
      FROM annals_internal.personal_data AS p
      LEFT JOIN annals_internal.subject_keys AS k ON k.key_id = (reveal_metadata.metadata #>> '{$pii,key}')::bigint
     WHERE p.event_type = reveal_metadata.event_type;
    IF v_registered IS NULL THEN
        RETURN reveal_metadata.metadata;
    ELSIF v_key IS NULL THEN
        RETURN (reveal_metadata.metadata - '$pii') || jsonb_build_object('$erased', reveal_metadata.metadata #> '{$pii,paths}');
    END IF;
    RETURN reveal_metadata.metadata - '$pii';
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.reveal_metadata(text, jsonb) IS
    'Stored event metadata as reads show it: the "$pii" marker removed, "$erased": [paths] where the subject was forgotten.';
REVOKE ALL ON FUNCTION annals_internal.reveal_metadata(text, jsonb) FROM PUBLIC;

-- Erasure handlers: what forget_subject calls so projections can erase their copies.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.erasure_pin(handler regprocedure)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
RETURN 'erasure_handler_' || erasure_pin.handler::oid::text;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.erasure_pin(regprocedure) IS 'Name of the function that pins an erasure handler.';
REVOKE ALL ON FUNCTION annals_internal.erasure_pin(regprocedure) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.register_erasure_handler(handler regprocedure)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_call text;
BEGIN
    PERFORM annals_internal.check_callback(register_erasure_handler.handler, 'handler', 'text', 'void',
                                           '(subject_id text) RETURNS void');
    IF EXISTS (SELECT FROM annals_internal.erasure_handlers AS h WHERE h.handler = register_erasure_handler.handler::text) THEN
        RETURN false;
    END IF;
    v_call := annals_internal.pin_callback(register_erasure_handler.handler,
                  annals_internal.erasure_pin(register_erasure_handler.handler), 'erasure handler');
    INSERT INTO annals_internal.erasure_handlers (handler, handler_call, registered_at)
    VALUES (register_erasure_handler.handler::text, v_call, clock_timestamp());
    RETURN true;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.register_erasure_handler(regprocedure) IS
$$Registers a function (subject_id text) RETURNS void that annals.forget_subject calls, in its transaction and with
annals_owner's rights, so a projection that copied personal data can erase it. Returns true when new. Owner
only. Errors: ST422 wrong signature, untrusted owner, or annals_owner cannot execute it.$$;
REVOKE ALL ON FUNCTION annals.register_erasure_handler(regprocedure) FROM PUBLIC;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.forget_subject(subject_id text)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_destroyed bigint;
    v_handler   record;
BEGIN
    IF forget_subject.subject_id IS NULL OR forget_subject.subject_id = '' THEN
        IF annals_internal.raise_invalid('subject_id', 'must be a non-empty string') IS NULL THEN END IF;
    END IF;
    UPDATE annals_internal.subject_keys AS k
       SET key = NULL, forgotten_at = clock_timestamp()
     WHERE k.subject_id = forget_subject.subject_id AND k.key IS NOT NULL;
    GET DIAGNOSTICS v_destroyed = ROW_COUNT;
    FOR v_handler IN SELECT h.handler, h.handler_call FROM annals_internal.erasure_handlers AS h ORDER BY h.handler LOOP
        EXECUTE format('SELECT %s($1)', v_handler.handler_call) USING forget_subject.subject_id;
    END LOOP;
    INSERT INTO annals_internal.lifecycle_log (operation, performed_by, performed_at, details)
    VALUES ('forget', session_user, clock_timestamp(),
            jsonb_build_object('subject_id', forget_subject.subject_id, 'keys_destroyed', v_destroyed,
                               'handlers', (SELECT count(*) FROM annals_internal.erasure_handlers)));
    RETURN v_destroyed;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.forget_subject(text) IS
$$Erases a subject's personal data for good: destroys its key, so every read from now on returns its
registered fields as JSON null with "$erased": [paths] in the event's metadata, and calls the registered
erasure handlers with the subject id. Nothing else about the events changes. Returns the number of keys
destroyed (0 for a subject with no personal data stored). Logged. Owner only. Errors: ST422 empty subject_id.$$;
REVOKE ALL ON FUNCTION annals.forget_subject(text) FROM PUBLIC;
