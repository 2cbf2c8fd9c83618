-- +goose Up

-- Read models maintained from events. The handler is stored as text (a regprocedure's text form)
-- because pg_upgrade refuses reg* columns other than regclass in user tables; tables are regclass.
CREATE TABLE annals_internal.projections (
    projection_name text        NOT NULL,
    handler         text        NOT NULL,
    handler_call    text        NOT NULL,
    tables          regclass[]  NOT NULL,
    event_types     text[],
    categories      text[],
    mode            text        NOT NULL,
    enabled         boolean     NOT NULL DEFAULT true,
    last_error      text,
    last_error_at   timestamptz,
    rebuilt_at      timestamptz,
    rebuilt_events  bigint,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT projections_pkey PRIMARY KEY (projection_name),
    CONSTRAINT projections_mode_chk CHECK (mode IN ('inline', 'async')),
    CONSTRAINT projections_tables_chk CHECK (cardinality(tables) >= 1)
);
ALTER TABLE annals_internal.projections OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.projections IS
    'Registered projections: handler, owned tables, filters, inline or async mode, state and last error.';

-- Materialized views refreshed CONCURRENTLY by annals.refresh_views(), never in the append path.
CREATE TABLE annals_internal.materialized_views (
    view_name                     regclass    NOT NULL,
    refresh_interval              interval    NOT NULL,
    refreshed_at                  timestamptz,
    refreshed_through_transaction xid8,
    refreshed_through_position    bigint,
    last_duration                 interval,
    last_error                    text,
    registered_at                 timestamptz NOT NULL,
    CONSTRAINT materialized_views_pkey PRIMARY KEY (view_name),
    CONSTRAINT materialized_views_interval_chk CHECK (refresh_interval >= interval '0')
);
ALTER TABLE annals_internal.materialized_views OWNER TO annals_owner;
COMMENT ON TABLE annals_internal.materialized_views IS
    'Registered materialized views: refresh interval and freshness (when, through which feed position).';

-- +goose Down
DROP TABLE annals_internal.materialized_views;
DROP TABLE annals_internal.projections;
