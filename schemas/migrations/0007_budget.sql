-- Budget windows: one row per (scope, window) holds the allowance every replica shares
-- (pipeline/budget). A process never touches the row per call: it leases a slice (reserved +=
-- grant, only while reserved + grant <= cap), spends from it locally and gives back what it did
-- not spend when the window ends or it stops. So the sum of what replicas spend never exceeds
-- the cap. Amounts are integers: micro-USD for the *_usd scopes, tokens, or requests.
-- Forward-only: never edit an applied file; add a new one.
CREATE TABLE IF NOT EXISTS budget_windows (
    scope        text        NOT NULL,
    window_start timestamptz NOT NULL,
    cap          bigint      NOT NULL CHECK (cap >= 0),
    -- leased to processes (spent, held for calls in flight, or not yet used)
    reserved     bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    -- reported as actually spent (for the gauges; lags the processes by at most a slice)
    spent        bigint      NOT NULL DEFAULT 0 CHECK (spent >= 0),
    -- the grant of the last lease (returned by the leasing UPDATE; see pipeline/budget/store.py)
    last_grant   bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, window_start)
);
