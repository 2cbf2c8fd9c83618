-- +goose Up

-- A named, durable position in the gap-free feed. A subscription split into group_size members
-- gives each member the streams whose hash lands on it; each member keeps its own checkpoint.
CREATE TABLE annals_internal.subscriptions (
    subscription_name text        NOT NULL,
    event_types       text[],
    categories        text[],
    group_size        integer     NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL,
    CONSTRAINT subscriptions_pkey PRIMARY KEY (subscription_name),
    CONSTRAINT subscriptions_group_size_chk CHECK (group_size BETWEEN 1 AND 1024)
);
ALTER TABLE annals_internal.subscriptions OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.subscriptions IS
    'Named feed subscriptions: their filters and consumer-group size.';

-- The checkpoint is the feed position (transaction_id, global_position) of the last event the
-- member acknowledged. A lease lets one consumer instance own a member at a time.
CREATE TABLE annals_internal.subscription_checkpoints (
    subscription_name      text        NOT NULL,
    member                 integer     NOT NULL,
    checkpoint_transaction xid8        NOT NULL,
    checkpoint_position    bigint      NOT NULL,
    lease_holder           text,
    lease_expires_at       timestamptz,
    updated_at             timestamptz NOT NULL,
    CONSTRAINT subscription_checkpoints_pkey PRIMARY KEY (subscription_name, member),
    CONSTRAINT subscription_checkpoints_subscription_fkey FOREIGN KEY (subscription_name)
        REFERENCES annals_internal.subscriptions (subscription_name) ON DELETE CASCADE,
    CONSTRAINT subscription_checkpoints_member_chk CHECK (member >= 0)
) WITH (fillfactor = 70);  -- every acknowledgement rewrites the row: keep updates HOT
ALTER TABLE annals_internal.subscription_checkpoints OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.subscription_checkpoints IS
    'Per subscription member: the feed position acknowledged so far, and which consumer holds the lease.';

-- Events a consumer gave up on after its retries: parked so the rest of the feed flows, kept for
-- inspection and replay.
CREATE TABLE annals_internal.dead_letters (
    dead_letter_id    bigint      GENERATED ALWAYS AS IDENTITY,
    subscription_name text        NOT NULL,
    member            integer     NOT NULL,
    stream_id         text        NOT NULL,
    stream_version    bigint      NOT NULL,
    global_position   bigint      NOT NULL,
    transaction_id    xid8        NOT NULL,
    attempts          integer     NOT NULL,
    last_error        text        NOT NULL,
    status            text        NOT NULL DEFAULT 'parked',
    parked_at         timestamptz NOT NULL,
    resolved_at       timestamptz,
    CONSTRAINT dead_letters_pkey PRIMARY KEY (dead_letter_id),
    CONSTRAINT dead_letters_event_key UNIQUE (subscription_name, stream_id, stream_version),
    CONSTRAINT dead_letters_subscription_fkey FOREIGN KEY (subscription_name)
        REFERENCES annals_internal.subscriptions (subscription_name) ON DELETE CASCADE,
    CONSTRAINT dead_letters_status_chk CHECK (status IN ('parked', 'retry', 'resolved'))
);
CREATE INDEX dead_letters_pending_idx ON annals_internal.dead_letters (subscription_name, member, dead_letter_id)
    WHERE status = 'retry';
ALTER TABLE annals_internal.dead_letters OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.dead_letters IS
    'Events a subscription consumer parked after exhausting its retries; status parked, retry (requested) or resolved.';

-- The feed's restore repair is audited like every other lifecycle operation.
ALTER TABLE annals_internal.lifecycle_log DROP CONSTRAINT lifecycle_log_operation_chk;
ALTER TABLE annals_internal.lifecycle_log ADD CONSTRAINT lifecycle_log_operation_chk
    CHECK (operation IN ('delete', 'rebase_transaction_ids'));

-- +goose Down
ALTER TABLE annals_internal.lifecycle_log DROP CONSTRAINT lifecycle_log_operation_chk;
ALTER TABLE annals_internal.lifecycle_log ADD CONSTRAINT lifecycle_log_operation_chk
    CHECK (operation IN ('delete'));
DROP TABLE annals_internal.dead_letters;
DROP TABLE annals_internal.subscription_checkpoints;
DROP TABLE annals_internal.subscriptions;
