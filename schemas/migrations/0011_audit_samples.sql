-- Audit sampling: real-time `allow` decisions sent to the frontier model again (nightly, through
-- the Message Batches API), one row per audited post, and the review reason `audit` for those it
-- removes. See pipeline/core/audit_sampling.py for the sample and the estimators.
-- Forward-only: never edit an applied file; add a new one.

CREATE TABLE audit_samples (
    post_id                text PRIMARY KEY,          -- a post is audited at most once
    source_decision_id     text NOT NULL,             -- the real-time allow decision audited
    decided_at             timestamptz NOT NULL,      -- its time: the estimate's day
    top_score              double precision NOT NULL,
    stratum                smallint NOT NULL CHECK (stratum >= 0),
    inclusion_probability  double precision NOT NULL
        CHECK (inclusion_probability > 0 AND inclusion_probability <= 1),
    model_version          text NOT NULL,             -- of the audited real-time decision
    policy_version         text NOT NULL,
    frontier_model         text NOT NULL,
    frontier_verdict       text NOT NULL
        CHECK (frontier_verdict IN ('allow', 'remove', 'escalate', 'error')),
    categories             text[] NOT NULL DEFAULT '{}',
    rationale              text,
    decision_id            text,                      -- the batch decision, when it removed
    cost_usd               numeric(14, 8) NOT NULL DEFAULT 0,
    input_tokens           bigint NOT NULL DEFAULT 0,
    output_tokens          bigint NOT NULL DEFAULT 0,
    simulated              boolean NOT NULL DEFAULT false,
    audited_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_samples_decided_at_idx ON audit_samples (decided_at);
CREATE INDEX audit_samples_decision_id_idx ON audit_samples (decision_id)
    WHERE decision_id IS NOT NULL;

ALTER TABLE review_items DROP CONSTRAINT review_items_reason_check;
ALTER TABLE review_items ADD CONSTRAINT review_items_reason_check
    CHECK (reason IN ('fallback', 'escalate', 'batch_flip', 'appeal', 'audit'));

-- The nightly audit pages through a window's real-time allow decisions, and the estimates count
-- a day's real-time allow and remove decisions: both read this index, not the whole history.
CREATE INDEX verdicts_realtime_decided_idx ON verdicts (decided_at)
    WHERE stage = 'realtime' AND verdict IN ('allow', 'remove');
