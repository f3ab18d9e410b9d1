-- Hub schema, version 1. Applied by hub.storage.migrations in one transaction.
-- Every timestamp is timestamptz; the API speaks epoch milliseconds, all in UTC.

-- One row per device the hub has heard of, from telemetry or from a status message.
CREATE TABLE devices (
    device_id        text PRIMARY KEY,
    site             text NOT NULL,
    type             text,
    gateway_id       text NOT NULL,
    first_seen       timestamptz NOT NULL,  -- earliest reading ts (or first status ts)
    last_seen        timestamptz,           -- newest reading ts; only ever moves forward
    state            text NOT NULL DEFAULT 'unknown'
                     CHECK (state IN ('online', 'offline', 'unknown')),
    state_changed_at timestamptz,           -- when `state` last took its current value
    state_ts         timestamptz,           -- ts of the newest status applied; older ones are ignored
    -- Metric names this device ever reported: readings has no cheap "distinct metrics of a
    -- device" query (no skip scan in PostgreSQL 15), and the dashboard needs it per device.
    metrics          text[] NOT NULL DEFAULT '{}'
);

CREATE INDEX devices_site_idx ON devices (site, device_id);

-- Raw readings, narrow: one row per (device, metric, ts). Booleans are stored as 1.0 (true) and
-- 0.0 (false). The primary key makes every write idempotent (INSERT ... ON CONFLICT DO NOTHING)
-- and serves the main query, one device and metric over a time range; scanned backwards it also
-- gives the latest value of one metric.
--
-- No (device_id, ts DESC) index for "latest reading per device": devices.last_seen answers "when"
-- and Redis holds the latest values, and a second index on the largest, hottest table would cost
-- every insert a second B-tree descent for a query that never reaches this table.
--
-- Partitioned by UTC day, one partition named readings_pYYYYMMDD each, created ahead of time by
-- hub.storage.partitions.ensure_partitions and on demand by the writer for a day that has none.
-- Retention drops whole partitions. There is deliberately no DEFAULT partition: rows in it would
-- have to be moved out before a partition for their day could be created.
CREATE TABLE readings (
    device_id text NOT NULL,
    metric    text NOT NULL,
    ts        timestamptz NOT NULL,
    value     double precision NOT NULL,
    seq       bigint,
    PRIMARY KEY (device_id, metric, ts)
) PARTITION BY RANGE (ts);

-- One-minute rollups, recomputed from readings (never incremented), so a replay or a late
-- reading leaves them exact. bucket is the start of the UTC minute.
CREATE TABLE readings_1m (
    device_id text NOT NULL,
    metric    text NOT NULL,
    bucket    timestamptz NOT NULL,
    count     integer NOT NULL CHECK (count > 0),
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    avg       double precision NOT NULL,
    last      double precision NOT NULL,  -- value of the reading with the newest ts in the bucket
    last_ts   timestamptz NOT NULL,
    PRIMARY KEY (device_id, metric, bucket)
);

-- Alert lifecycle. An alert concerns a device, a gateway, or both (device_id and/or gateway_id).
CREATE TABLE alerts (
    id           bigserial PRIMARY KEY,
    device_id    text,
    gateway_id   text,
    rule         text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('warning', 'critical')),
    state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'cleared')),
    acknowledged boolean NOT NULL DEFAULT false,
    ack_by       text,
    ack_at       timestamptz,
    ack_comment  text,
    metric       text,
    value        double precision,
    message      text NOT NULL,
    raised_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    cleared_at   timestamptz,
    cleared_by   text,                    -- NULL when the rule cleared it, else the operator
    occurrences  integer NOT NULL DEFAULT 1 CHECK (occurrences > 0),
    CHECK (device_id IS NOT NULL OR gateway_id IS NOT NULL),
    CHECK ((state = 'cleared') = (cleared_at IS NOT NULL))
);

-- At most one open alert per (device or gateway, rule): a repeat updates it, never duplicates.
-- Also the conflict target of the "raised" upsert, so keep the expressions in step with
-- hub/storage/postgres.py.
CREATE UNIQUE INDEX alerts_one_active_idx
    ON alerts ((coalesce(device_id, '')), (coalesce(gateway_id, '')), rule)
    WHERE state = 'active';

-- Listing: newest first, optionally by state.
CREATE INDEX alerts_state_raised_idx ON alerts (state, raised_at DESC, id DESC);
CREATE INDEX alerts_raised_idx ON alerts (raised_at DESC, id DESC);

-- schema_migrations (version, name, applied_at) is created by the migrator itself, before it
-- can tell which migrations are pending.
