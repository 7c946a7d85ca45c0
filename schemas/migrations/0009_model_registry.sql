-- The model registry (pipeline/registry, `modstream model register|promote|rollback|list`).
-- model_versions: one row per registered build. Its files were copied, verified against the
-- manifest's sha256s, into the registry folder (`path`), and never change afterwards; the
-- manifest's own sha256 is what a stage checks again before it switches to the version.
-- model_promotions: append-only history. The active version is the latest row; `replaced` is
-- the version that was active before it (NULL for the first promotion).
-- Forward-only: never edit an applied file; add a new one.
CREATE TABLE IF NOT EXISTS model_versions (
    version         text        PRIMARY KEY,
    manifest_sha256 text        NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
    path            text        NOT NULL,
    evaluation      jsonb,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    registered_by   text        NOT NULL
);

CREATE TABLE IF NOT EXISTS model_promotions (
    id          bigserial   PRIMARY KEY,
    version     text        NOT NULL REFERENCES model_versions (version),
    replaced    text        REFERENCES model_versions (version),
    action      text        NOT NULL CHECK (action IN ('promote', 'rollback')),
    promoted_by text        NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    promoted_at timestamptz NOT NULL DEFAULT now()
);

-- The history is an audit record: rows are added, never changed or removed.
CREATE OR REPLACE FUNCTION model_promotions_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'model_promotions is append-only: promote or roll back to change the active model';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS model_promotions_append_only ON model_promotions;
CREATE TRIGGER model_promotions_append_only
    BEFORE UPDATE OR DELETE ON model_promotions
    FOR EACH ROW EXECUTE FUNCTION model_promotions_append_only();
