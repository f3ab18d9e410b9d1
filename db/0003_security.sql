-- Hub schema, version 3: server-side web sessions, token expiry and the audit log.
-- Applied by hub.storage.migrations.

-- API tokens may expire; NULL means never (tokens created before this version keep working).
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;

-- Dashboard sign-ins. The browser's NiceGUI storage holds the session id; only its SHA-256 is
-- kept here (like the API tokens), so a copy of this table lets no one in. A session is valid
-- while its row exists and has not expired: logout deletes it, a password change deletes all
-- of the user's, and removing the user deletes them by the foreign key. Every replica of the
-- web app sees the same rows, so a session ended on one is ended on all at once.
CREATE TABLE web_sessions (
    id_hash    text PRIMARY KEY,
    user_name  text NOT NULL REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    client     text,                     -- address the sign-in came from
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX web_sessions_user_idx ON web_sessions (user_name);
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);

-- Who did what, when, from where: sign-ins (both outcomes), alert acknowledgements and
-- clears, user and token changes, from the dashboard, the API and the CLI. Never a password or
-- a token value (hub/web/audit.py refuses such detail keys before they reach SQL).
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,               -- user name, "token:<name>", "cli", or the name tried
    action  text NOT NULL,               -- e.g. auth.login, alert.acknowledge, user.remove
    outcome text NOT NULL CHECK (outcome IN ('success', 'failure')),
    client  text,                        -- client address, or "<os user>@<host>" for the CLI
    target  text,                        -- what was acted on: alert id, user or token name
    details jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, at DESC, id DESC);
CREATE INDEX audit_log_action_idx ON audit_log (action, at DESC, id DESC);

-- Append-only: the product has no code path that changes or removes a row, and the database
-- refuses one too, so a compromised web process cannot cover its tracks. Retention, if
-- wanted, is a DBA's job (disable the trigger deliberately, in a maintenance window).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
