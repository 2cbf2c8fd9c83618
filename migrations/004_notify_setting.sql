-- +goose Up
-- Appends notify listeners (annals.configure(notify => ...) switches it); the flag survives the
-- functions pass, which re-creates the trigger and then applies it.
ALTER TABLE annals_internal.settings ADD COLUMN notify boolean NOT NULL DEFAULT true;
COMMENT ON COLUMN annals_internal.settings.notify IS
    'Whether appends send NOTIFY annals_events (a wake-up hint for feed consumers, never data).';
-- configure() gains the notify argument: a new signature, so the old one goes.
DROP FUNCTION IF EXISTS annals.configure(integer, integer, integer);

-- +goose Down
ALTER TABLE annals_internal.settings DROP COLUMN notify;
