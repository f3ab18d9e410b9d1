-- Hub schema, version 6: shelved alerts and maintenance windows (docs/alarms.md).
-- Applied by hub.storage.migrations.

-- An operator shelves an alert until a time: it still changes state, but notifies nobody.
-- "Shelved" is computed (shelved_until > now), so no timer is needed for it to end; unshelving
-- by hand empties the four columns.
ALTER TABLE alerts
    ADD COLUMN shelved_by    text,
    ADD COLUMN shelved_at    timestamptz,
    ADD COLUMN shelved_until timestamptz,
    ADD COLUMN shelve_reason text,
    ADD CONSTRAINT alerts_shelf_complete CHECK (
        (shelved_until IS NULL) = (shelved_by IS NULL)
        AND (shelved_until IS NULL) = (shelve_reason IS NULL)
        AND (shelved_until IS NULL) = (shelved_at IS NULL)
    );

-- Few alerts are ever shelved: the shelf lookups (carry-over, suppression) read this small index.
CREATE INDEX alerts_shelved_idx ON alerts (shelved_until) WHERE shelved_until IS NOT NULL;

-- A shelf belongs to the alarm (device or gateway, rule), not to one occurrence: an alert that
-- clears and is raised again while its predecessor's shelf lasts starts shelved too, so a
-- chattering nuisance alarm stays quiet for the time the operator chose.
CREATE FUNCTION alerts_carry_shelf() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev record;
BEGIN
    IF NEW.shelved_until IS NULL THEN
        SELECT shelved_by, shelved_at, shelved_until, shelve_reason INTO prev
        FROM alerts
        WHERE shelved_until > now()
          AND coalesce(device_id, '') = coalesce(NEW.device_id, '')
          AND coalesce(gateway_id, '') = coalesce(NEW.gateway_id, '')
          AND rule = NEW.rule
        ORDER BY shelved_until DESC
        LIMIT 1;
        IF FOUND THEN
            NEW.shelved_by := prev.shelved_by;
            NEW.shelved_at := prev.shelved_at;
            NEW.shelved_until := prev.shelved_until;
            NEW.shelve_reason := prev.shelve_reason;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER alerts_carry_shelf_on_insert
    BEFORE INSERT ON alerts
    FOR EACH ROW EXECUTE FUNCTION alerts_carry_shelf();

-- Planned work: while a window is active, the devices in its scope notify nobody, and, if
-- suppress = 'alerts', raise no new alert either. `schedule` and `scope` are validated by
-- hub/alarms/windows.py (the one model of both), e.g.
--   schedule {"kind": "once", "start": 1767225600000, "end": 1767232800000}
--   schedule {"kind": "weekly", "weekdays": [0, 2], "start": "22:00", "duration_minutes": 240,
--             "timezone": "Europe/Berlin"}
--   scope    {"sites": ["plant-a"], "gateways": [], "device_types": [], "devices": []}
CREATE TABLE maintenance_windows (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    suppress   text NOT NULL CHECK (suppress IN ('notifications', 'alerts')),
    schedule   jsonb NOT NULL,
    scope      jsonb NOT NULL,
    comment    text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
