-- Shadow mode: what a candidate model + policy would have decided about each post the real-time
-- stage decided, next to the live decision. Never read as a verdict: `modstream model compare`
-- reports from it. shadow_id is deterministic (post id + live and shadow model and policy
-- versions), so a re-delivered post never makes a second row (ON CONFLICT DO NOTHING).
-- Forward-only: never edit an applied file; add a new one.
CREATE TABLE shadow_decisions (
    shadow_id             text PRIMARY KEY,
    post_id               text NOT NULL,
    live_model_version    text NOT NULL,
    live_policy_version   text NOT NULL,
    shadow_model_version  text NOT NULL,
    shadow_policy_version text NOT NULL,
    live_verdict          text NOT NULL CHECK (live_verdict IN ('allow', 'remove', 'borderline', 'escalate')),
    live_categories       text[] NOT NULL DEFAULT '{}',
    live_scores           jsonb NOT NULL,
    shadow_verdict        text NOT NULL CHECK (shadow_verdict IN ('allow', 'remove', 'borderline', 'escalate')),
    shadow_categories     text[] NOT NULL DEFAULT '{}',
    shadow_scores         jsonb NOT NULL,
    ingested_at           timestamptz NOT NULL,
    decided_at            timestamptz NOT NULL,
    shadow_seconds        double precision NOT NULL CHECK (shadow_seconds >= 0),
    recorded_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shadow_decisions_decided_at_idx ON shadow_decisions (decided_at);
CREATE INDEX shadow_decisions_post_id_idx ON shadow_decisions (post_id);
