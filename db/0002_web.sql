-- Hub schema, version 2: who may use the web app and the API. Applied by hub.storage.migrations.

-- Dashboard users. password_hash is argon2id in PHC format (hub/web/auth.py); never a password.
CREATE TABLE users (
    name          text PRIMARY KEY,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- API bearer tokens. Only the SHA-256 of each token is stored: the token is 256 random bits,
-- so a fast unsalted hash is safe, and it makes each request a single index lookup.
CREATE TABLE api_tokens (
    name         text PRIMARY KEY,
    token_hash   text NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,            -- updated at most once a minute per token
    revoked_at   timestamptz             -- NULL while the token is valid
);

-- A device's alerts, newest first: the alerts page filtered by device and the chart's alert
-- markers (one device, a time range).
CREATE INDEX alerts_device_raised_idx ON alerts (device_id, raised_at DESC, id DESC)
    WHERE device_id IS NOT NULL;
