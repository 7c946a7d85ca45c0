-- Human review queue: accounts, sessions, SLA clocks, decision outbox, appeals, labeled examples.
-- Forward-only: never edit an applied file; add a new one.

CREATE TABLE review_users (
    username      text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('reviewer', 'lead')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL
);

-- Server-side sessions. The cookie holds a random token; only its sha256 is stored, so a copy of
-- this table cannot be replayed as a login.
CREATE TABLE review_sessions (
    token_hash  text PRIMARY KEY,
    username    text NOT NULL REFERENCES review_users (username),
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX review_sessions_expires_idx ON review_sessions (expires_at);

-- SLA clocks: enqueued_at and decided_at exist already; claimed_at is the latest claim,
-- first_claimed_at the first. decision_event is the transactional outbox of the human decision:
-- written with the decision, then appended to verdicts and published; published_at marks done.
ALTER TABLE review_items
    ADD COLUMN first_claimed_at timestamptz,
    ADD COLUMN claim_count      integer NOT NULL DEFAULT 0,
    ADD COLUMN decision_event   jsonb,
    ADD COLUMN published_at     timestamptz;
CREATE INDEX review_items_unpublished_idx ON review_items (decided_at)
    WHERE status = 'decided' AND published_at IS NULL;
CREATE INDEX review_items_decided_idx ON review_items (decided_at) WHERE status = 'decided';

-- One row per appeal; outcome is filled in when the appeal's review item is decided.
CREATE TABLE appeals (
    item_id            text PRIMARY KEY REFERENCES review_items (item_id),
    post_id            text NOT NULL,
    source_decision_id text NOT NULL,
    original_verdict   text NOT NULL,
    statement          text,
    appealed_by        text NOT NULL,
    appealed_at        timestamptz NOT NULL DEFAULT now(),
    outcome            text CHECK (outcome IN ('upheld', 'overturned')),
    decided_at         timestamptz
);
CREATE INDEX appeals_post_idx ON appeals (post_id);

-- Human decisions kept as training examples (text copied, so retention of posts does not lose them).
CREATE TABLE labeled_examples (
    decision_id text PRIMARY KEY,
    item_id     text NOT NULL,
    post_id     text NOT NULL,
    text        text NOT NULL,
    categories  text[] NOT NULL DEFAULT '{}',
    verdict     text NOT NULL CHECK (verdict IN ('allow', 'remove')),
    reviewer    text NOT NULL,
    reason      text NOT NULL,
    decided_at  timestamptz NOT NULL
);
CREATE INDEX labeled_examples_decided_idx ON labeled_examples (decided_at);
