-- The cost ledger: what each decision consumed, rolled up per hour and stage for `modstream cost`
-- and the lead dashboard, plus provider calls that decide nothing (a reviewer's streamed
-- analysis). Forward-only: never edit an applied file; add a new one.

-- Provider tokens of the call(s) behind a decision (a multi-post call's tokens are split across
-- its posts) and the classifier's inference seconds. Constant defaults: no table rewrite.
ALTER TABLE verdicts
    ADD COLUMN input_tokens       bigint NOT NULL DEFAULT 0,
    ADD COLUMN output_tokens      bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_read_tokens  bigint NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN compute_seconds    double precision NOT NULL DEFAULT 0;

-- One row per (UTC hour, stage, slot). Writers add to the slot of their backend (pid % 16), so
-- replicas writing the same hour do not queue on one row; readers sum the slots. Only rows that
-- really entered the history are counted (the trigger sees the inserted rows; a re-delivered
-- decision inserts nothing), so the rollup is exact.
CREATE TABLE cost_hourly (
    hour               timestamptz NOT NULL,
    stage              text NOT NULL,
    slot               smallint NOT NULL,
    decisions          bigint NOT NULL DEFAULT 0,
    -- Decisions that called the provider (a replay's Message Batch answers, not its re-scores).
    provider_decisions bigint NOT NULL DEFAULT 0,
    input_tokens       bigint NOT NULL DEFAULT 0,
    output_tokens      bigint NOT NULL DEFAULT 0,
    cache_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    compute_seconds    double precision NOT NULL DEFAULT 0,
    cost_usd           numeric(20, 8) NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, stage, slot)
);

-- Statement-level with a transition table: one upsert per (hour, stage) of a bulk insert, in
-- key order (a fixed lock order, so two writers cannot deadlock on the rollup).
CREATE FUNCTION cost_hourly_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cost_hourly AS c (hour, stage, slot, decisions, provider_decisions,
                                  input_tokens, output_tokens, cache_read_tokens,
                                  cache_write_tokens, compute_seconds, cost_usd)
    SELECT date_trunc('hour', decided_at, 'UTC'), stage, pg_backend_pid() % 16, count(*),
           count(*) FILTER (WHERE input_tokens + cache_read_tokens + cache_write_tokens > 0),
           sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
           sum(cache_write_tokens), sum(compute_seconds), sum(cost_usd)
    FROM inserted_verdicts
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (hour, stage, slot) DO UPDATE SET
        decisions = c.decisions + EXCLUDED.decisions,
        provider_decisions = c.provider_decisions + EXCLUDED.provider_decisions,
        input_tokens = c.input_tokens + EXCLUDED.input_tokens,
        output_tokens = c.output_tokens + EXCLUDED.output_tokens,
        cache_read_tokens = c.cache_read_tokens + EXCLUDED.cache_read_tokens,
        cache_write_tokens = c.cache_write_tokens + EXCLUDED.cache_write_tokens,
        compute_seconds = c.compute_seconds + EXCLUDED.compute_seconds,
        cost_usd = c.cost_usd + EXCLUDED.cost_usd;
    RETURN NULL;
END
$$;
CREATE TRIGGER verdicts_cost_hourly
    AFTER INSERT ON verdicts REFERENCING NEW TABLE AS inserted_verdicts
    FOR EACH STATEMENT EXECUTE FUNCTION cost_hourly_add();

-- The history written before this migration (no tokens were recorded then; its USD was).
INSERT INTO cost_hourly (hour, stage, slot, decisions, cost_usd)
SELECT date_trunc('hour', decided_at, 'UTC'), stage, 0, count(*), sum(cost_usd)
FROM verdicts GROUP BY 1, 2;

-- Provider calls that decide nothing: a reviewer's streamed analysis. One row per call.
CREATE TABLE provider_usage (
    usage_id           bigserial PRIMARY KEY,
    at                 timestamptz NOT NULL DEFAULT now(),
    mode               text NOT NULL CHECK (mode IN ('streaming')),
    model              text NOT NULL,
    subject            text,
    input_tokens       bigint NOT NULL DEFAULT 0,
    output_tokens      bigint NOT NULL DEFAULT 0,
    cache_read_tokens  bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    cost_usd           numeric(14, 8) NOT NULL DEFAULT 0
);
CREATE INDEX provider_usage_at_idx ON provider_usage (at);
