-- Whether a verdict's answer came from the project's Anthropic API simulator (a keyword rule, not
-- a model). Simulated verdicts never become training labels unless asked for explicitly.
-- Forward-only: never edit an applied file; add a new one.
ALTER TABLE verdicts ADD COLUMN simulated boolean NOT NULL DEFAULT false;
