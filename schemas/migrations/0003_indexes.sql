-- Indexes for replay and retention work (forward-only).
-- current_verdicts references verdicts; without this index, deleting history rows scans
-- current_verdicts once per row.
CREATE INDEX IF NOT EXISTS current_verdicts_decision_id_idx ON current_verdicts (decision_id);
-- The replay's "borderline results still waiting for a Message Batch answer" query.
CREATE INDEX IF NOT EXISTS verdicts_batch_borderline_idx ON verdicts (post_id)
    WHERE stage = 'batch' AND verdict = 'borderline';
