-- +goose Up
SET LOCAL ROLE annals_owner;
SET LOCAL search_path = pg_catalog, pg_temp;

-- A notification is a wake-up hint with an empty payload: listeners always re-read the feed, and
-- PostgreSQL folds identical notifications within a transaction. A notifying transaction holds a
-- cluster-wide lock from its pre-commit until its commit record is flushed, so notifying commits
-- run one at a time. Hence the gate: an appending statement notifies only when no append has
-- notified in the last 20 ms (annals_internal.notify_clock, a sequence set with setval: no row
-- lock, no WAL, never a wait), so at most a commit or two per 20 ms take that lock, whatever the
-- append rate. A skipped commit is announced by the notification that closed the gate (sent at
-- most 20 ms before this statement; when it arrives after this commit, the reader sees both) or,
-- when it arrived first, by the listener's trailing wake-up (Go: 50 ms after the last
-- notification, see goapi/listen.go), and in any case by the next notifying append or the
-- reader's next poll. The switch annals.configure(notify => false) disables the trigger, which
-- then costs nothing at all.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION annals_internal.notify_append()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now  bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    v_last bigint;
BEGIN
    SELECT c.last_value INTO v_last FROM annals_internal.notify_clock AS c;
    -- A clock stepped back by more than a minute reopens the gate at once; a smaller step keeps
    -- it shut for that long at most (readers poll meanwhile). Tests shut it that way.
    IF v_now - v_last >= 20 OR v_now - v_last < -60000 THEN
        PERFORM setval('annals_internal.notify_clock', v_now);
        PERFORM pg_notify('annals_events', '');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION annals_internal.notify_append() IS
    'Trigger function: NOTIFY annals_events (empty payload) once per appending statement, unless an append notified in the last 20 ms (annals_internal.notify_clock).';
REVOKE ALL ON FUNCTION annals_internal.notify_append() FROM PUBLIC;

CREATE OR REPLACE TRIGGER events_notify
    AFTER INSERT ON annals_internal.events
    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.notify_append();

-- +goose StatementBegin
DO $$
BEGIN
    IF NOT (SELECT s.notify FROM annals_internal.settings AS s) THEN
        ALTER TABLE annals_internal.events DISABLE TRIGGER events_notify;
    END IF;
END
$$;
-- +goose StatementEnd
