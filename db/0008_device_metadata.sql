-- Device metadata (hub.metadata, issue 14): one document per device type or device and source.
-- The seed (the packaged device types) is not stored; 'edge' documents come from the gateways
-- (topic iot.device-metadata, hub.agents.metadata), 'admin' documents from the dashboard and the
-- API (audited). Precedence is applied when reading (hub.metadata.model.merge).
CREATE TABLE device_metadata (
    scope       text NOT NULL CHECK (scope IN ('type', 'device')),
    key         text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    source      text NOT NULL CHECK (source IN ('edge', 'admin')),
    document    jsonb NOT NULL,
    updated_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key, source)
);
