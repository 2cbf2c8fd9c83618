-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- Administrators only (annals_owner): limits protect every application sharing the store.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals.configure(
    max_event_bytes  integer DEFAULT NULL,
    max_batch_events integer DEFAULT NULL,
    max_batch_bytes  integer DEFAULT NULL,
    notify           boolean DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    v_settings jsonb;
BEGIN
    IF max_event_bytes < 1 THEN
        IF annals_internal.raise_invalid('max_event_bytes', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    IF max_batch_events < 1 THEN
        IF annals_internal.raise_invalid('max_batch_events', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    IF max_batch_bytes < 1 THEN
        IF annals_internal.raise_invalid('max_batch_bytes', 'must be >= 1') IS NULL THEN END IF;
    END IF;
    UPDATE annals_internal.settings AS s
           SET max_event_bytes  = coalesce(configure.max_event_bytes, s.max_event_bytes),
               max_batch_events = coalesce(configure.max_batch_events, s.max_batch_events),
               max_batch_bytes  = coalesce(configure.max_batch_bytes, s.max_batch_bytes),
               notify           = coalesce(configure.notify, s.notify)
    RETURNING jsonb_build_object('max_event_bytes', s.max_event_bytes,
                                 'max_batch_events', s.max_batch_events,
                                 'max_batch_bytes', s.max_batch_bytes,
                                 'notify', s.notify)
         INTO v_settings;
    -- The switch is the trigger itself, so an append with notify off pays nothing.
    IF configure.notify IS NOT NULL THEN
        EXECUTE format('ALTER TABLE annals_internal.events %s TRIGGER events_notify',
                       CASE WHEN configure.notify THEN 'ENABLE' ELSE 'DISABLE' END);
    END IF;
    RETURN v_settings;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals.configure(integer, integer, integer, boolean) IS
$$Sets append limits (NULL keeps a value) and returns the limits now in force as JSON: max_event_bytes (JSON text
of one event's data, default 1 MiB), max_batch_events (default 10000), max_batch_bytes (default 64 MiB), notify (NOTIFY annals_events on
append, at most about once per 20 ms as a wake-up hint, default true; switching it takes a brief table lock).
Only annals_owner may call it.$$;
REVOKE ALL ON FUNCTION annals.configure(integer, integer, integer, boolean) FROM PUBLIC;
