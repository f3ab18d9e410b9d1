-- Alert rules edited in the dashboard (hub.rules.edits): one row per version, each holding the
-- whole edits document layered over the packaged defaults and HUB_RULES_FILE. The newest row
-- is the rules in force; workers poll max(version). A rollback is a new row with an older
-- row's document, so history is never rewritten, and the database refuses to rewrite it.
CREATE TABLE rule_versions (
    version     integer PRIMARY KEY CHECK (version > 0),
    document    jsonb NOT NULL,
    author      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    comment     text,
    rollback_of integer REFERENCES rule_versions (version)
);

CREATE FUNCTION rule_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rule_versions is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER rule_versions_no_update_delete
    BEFORE UPDATE OR DELETE ON rule_versions
    FOR EACH ROW EXECUTE FUNCTION rule_versions_append_only();
