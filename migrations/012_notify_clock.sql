-- +goose Up
-- The NOTIFY gate's clock (functions/150_notify.sql): when an append last notified, in ms since
-- the epoch. A sequence because setval is not transactional (it takes no row lock and never
-- waits for another transaction, so the gate cannot serialize appends the way an UPDATE of a
-- shared row would), and unlogged because it is a hint: it writes no WAL and a crash resets it
-- to 0 ("long ago"), which only means the next append notifies.
CREATE UNLOGGED SEQUENCE annals_internal.notify_clock AS bigint MINVALUE 0 START 0;
ALTER SEQUENCE annals_internal.notify_clock OWNER TO annals_owner;
COMMENT ON SEQUENCE annals_internal.notify_clock IS
    'NOTIFY gate: when an append last sent NOTIFY annals_events (ms since the epoch; setval only, never nextval).';

-- +goose Down
DROP SEQUENCE annals_internal.notify_clock;
