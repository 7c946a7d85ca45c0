-- modstream core schema. Forward-only: never edit an applied file; add a new one.

CREATE TABLE posts (
    post_id          text PRIMARY KEY,
    author_id        text NOT NULL,
    text             text NOT NULL,
    lang             text,
    created_at       timestamptz,
    ingested_at      timestamptz NOT NULL,
    source           text,
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    stored_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posts_ingested_at_idx ON posts (ingested_at);

-- Append-only history: one row per decision; decision_id is deterministic, so a re-delivered
-- post never makes a second row (INSERT ... ON CONFLICT (decision_id) DO NOTHING).
CREATE TABLE verdicts (
    decision_id    text PRIMARY KEY,
    post_id        text NOT NULL,
    verdict        text NOT NULL CHECK (verdict IN ('allow', 'remove', 'borderline', 'escalate')),
    scores         jsonb NOT NULL,
    categories     text[] NOT NULL DEFAULT '{}',
    stage          text NOT NULL CHECK (stage IN ('realtime', 'frontier', 'fallback', 'batch', 'human')),
    model_version  text NOT NULL,
    policy_version text NOT NULL,
    ingested_at    timestamptz NOT NULL,
    decided_at     timestamptz NOT NULL,
    cost_usd       numeric(14, 8) NOT NULL DEFAULT 0,
    reason         text,
    rationale      text,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verdicts_post_id_idx ON verdicts (post_id, decided_at);

-- The verdict in force per post. Human decisions are final: automated stages never replace them.
CREATE TABLE current_verdicts (
    post_id        text PRIMARY KEY,
    decision_id    text NOT NULL REFERENCES verdicts (decision_id),
    verdict        text NOT NULL,
    stage          text NOT NULL,
    model_version  text NOT NULL,
    policy_version text NOT NULL,
    decided_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX current_verdicts_versions_idx ON current_verdicts (model_version, policy_version);

CREATE TABLE review_items (
    item_id            text PRIMARY KEY,
    post_id            text NOT NULL,
    reason             text NOT NULL CHECK (reason IN ('fallback', 'escalate', 'batch_flip', 'appeal')),
    detail             text,
    severity           double precision NOT NULL CHECK (severity BETWEEN 0 AND 1),
    source_decision_id text,
    scores             jsonb NOT NULL DEFAULT '{}',
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'claimed', 'decided')),
    enqueued_at        timestamptz NOT NULL,
    claimed_by         text,
    claimed_at         timestamptz,
    lease_expires_at   timestamptz,
    decided_at         timestamptz,
    decided_by         text,
    decision           text,
    decision_id        text,
    notes              text
);
CREATE INDEX review_items_open_idx ON review_items (status, severity DESC, enqueued_at)
    WHERE status <> 'decided';
CREATE INDEX review_items_post_idx ON review_items (post_id);

CREATE TABLE audit_log (
    audit_id  bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    action    text NOT NULL,
    subject   text,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_subject_idx ON audit_log (subject, at);

CREATE TABLE replay_runs (
    run_id      text PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    params      jsonb NOT NULL DEFAULT '{}',
    report      jsonb
);

CREATE TABLE replay_checkpoints (
    run_id        text NOT NULL REFERENCES replay_runs (run_id),
    chunk_no      integer NOT NULL,
    last_post_id  text NOT NULL,
    posts         integer NOT NULL,
    changed       integer NOT NULL,
    completed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, chunk_no)
);
