-- Hub schema, version 5: alert notifications (hub/notify). Applied by hub.storage.migrations.

-- Channels and routes as the dispatcher uses them. `spec` is the JSON the model of
-- hub/notify/config.py validates; `source` is 'file' for entries of HUB_NOTIFICATIONS_FILE
-- (replaced from the file at every worker start, read-only in the API) or 'api'.
CREATE TABLE notification_channels (
    name       text PRIMARY KEY,
    spec       jsonb NOT NULL,
    source     text NOT NULL CHECK (source IN ('file', 'api')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notification_routes (
    name       text PRIMARY KEY,
    position   integer NOT NULL,         -- the order routes are listed in
    spec       jsonb NOT NULL,
    source     text NOT NULL CHECK (source IN ('file', 'api')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The outbox: one row per alert transition worth telling (firing, resolved), written in the
-- same transaction as the transition itself, so none is lost and none is invented.
CREATE TABLE notification_outbox (
    id         bigserial PRIMARY KEY,
    alert_id   bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    event      text NOT NULL CHECK (event IN ('firing', 'resolved')),
    created_at timestamptz NOT NULL DEFAULT now(),
    routed_at  timestamptz                -- NULL until the dispatcher made its deliveries
);
CREATE INDEX notification_outbox_unrouted_idx ON notification_outbox (id) WHERE routed_at IS NULL;

-- One notification of one alert to one channel: what the outbox event (or a repeat, or an
-- escalation) owes. idempotency_key is unique, so a notification is made once whoever makes it.
CREATE TABLE notification_deliveries (
    id              bigserial PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    event           text NOT NULL
                    CHECK (event IN ('firing', 'resolved', 'repeat', 'escalation')),
    channel         text NOT NULL,
    route           text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    due_at          timestamptz NOT NULL,  -- the group window's end, then the next retry
    attempts        integer NOT NULL DEFAULT 0,
    lease_until     timestamptz,           -- a dispatcher is sending it until then
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed', 'suppressed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX notification_deliveries_due_idx
    ON notification_deliveries (due_at) WHERE state = 'pending';

-- Every attempt at a delivery, as shown on the alert: when, by which channel, and the outcome.
CREATE TABLE notification_attempts (
    id              bigserial PRIMARY KEY,
    delivery_id     bigint REFERENCES notification_deliveries (id) ON DELETE CASCADE,
    alert_id        bigint REFERENCES alerts (id) ON DELETE CASCADE,  -- NULL for a test message
    channel         text NOT NULL,
    event           text NOT NULL,
    idempotency_key text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    outcome         text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'suppressed')),
    detail          text                   -- why it failed or was suppressed
);
CREATE INDEX notification_attempts_alert_idx ON notification_attempts (alert_id, at, id);

-- A route's pacing of one alert (hub/notify/routing.Schedule): tiers told, next escalation,
-- next repeat. Kept until the alert's resolved message is routed (it says who was told).
CREATE TABLE notification_schedules (
    alert_id           bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    route              text NOT NULL,
    tiers              integer NOT NULL,
    repeats            integer NOT NULL DEFAULT 0,
    next_escalation_at timestamptz,
    next_repeat_at     timestamptz,
    PRIMARY KEY (alert_id, route)
);
CREATE INDEX notification_schedules_due_idx
    ON notification_schedules (least(next_escalation_at, next_repeat_at))
    WHERE next_escalation_at IS NOT NULL OR next_repeat_at IS NOT NULL;

-- Grouping: per (route, channel), when its latest message is or was due
-- (hub/notify/routing.group_slot).
CREATE TABLE notification_groups (
    route       text NOT NULL,
    channel     text NOT NULL,
    last_due_at timestamptz NOT NULL,
    PRIMARY KEY (route, channel)
);
