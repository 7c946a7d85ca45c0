-- Review queue served by indexes (issue #14 §6): claiming, the queue page and the lead counts no
-- longer scan or sort the whole queue. Forward-only: never edit an applied file; add a new one.

-- The aging constant A of "priority = severity + age / A". It is queue-wide: the review app writes
-- its setting here when it starts and re-keys the open items if it changed (pipeline/review/aging.py).
CREATE TABLE review_queue_settings (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    aging_seconds double precision NOT NULL CHECK (aging_seconds > 0)
);
INSERT INTO review_queue_settings (aging_seconds) VALUES (3600);

-- "severity + (now - enqueued_at) / A, highest first" orders items exactly like
-- "epoch(enqueued_at) - severity * A, lowest first": the moment the item would have been enqueued
-- had it had severity 0. The key does not involve now(), so an index can serve it; then
-- priority = (epoch(now) - priority_key) / A.
CREATE FUNCTION review_priority_key(
    enqueued_at timestamptz, severity double precision, aging_seconds double precision
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN extract(epoch FROM enqueued_at)::double precision - severity * aging_seconds;

ALTER TABLE review_items ADD COLUMN priority_key double precision;
UPDATE review_items SET priority_key = review_priority_key(enqueued_at, severity, 3600);
ALTER TABLE review_items ALTER COLUMN priority_key SET NOT NULL;

CREATE FUNCTION review_items_set_priority_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.priority_key := review_priority_key(
        NEW.enqueued_at, NEW.severity, (SELECT aging_seconds FROM review_queue_settings));
    RETURN NEW;
END
$$;
CREATE TRIGGER review_items_priority_key
    BEFORE INSERT OR UPDATE OF severity, enqueued_at ON review_items
    FOR EACH ROW EXECUTE FUNCTION review_items_set_priority_key();

-- Open (not decided) items per reason, kept by triggers inside the writing transaction. A writer
-- adds to one of 16 slots chosen by its backend pid, so concurrent writers seldom wait on the same
-- row; readers sum the slots (at most 64 rows). Claims do not change these counts: "claimed" is
-- counted from the live leases (an index range the size of the reviewer count).
CREATE TABLE review_queue_counts (
    reason     text NOT NULL,
    slot       smallint NOT NULL,
    open_items bigint NOT NULL,
    PRIMARY KEY (reason, slot)
);

CREATE FUNCTION review_queue_count(reason text, delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO review_queue_counts AS c (reason, slot, open_items)
    VALUES (reason, pg_backend_pid() % 16, delta)
    ON CONFLICT (reason, slot) DO UPDATE SET open_items = c.open_items + EXCLUDED.open_items
$$;

-- Statement-level with a transition table, so a bulk insert (COPY, unnest) updates each reason
-- once, in reason order (a fixed lock order: two writers cannot deadlock on the counts).
CREATE FUNCTION review_items_count_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM review_queue_count(reason, n)
    FROM (SELECT reason, count(*) AS n FROM inserted_items WHERE status <> 'decided'
          GROUP BY reason ORDER BY reason) AS per_reason;
    RETURN NULL;
END
$$;
CREATE TRIGGER review_items_count_insert
    AFTER INSERT ON review_items REFERENCING NEW TABLE AS inserted_items
    FOR EACH STATEMENT EXECUTE FUNCTION review_items_count_inserted();

CREATE FUNCTION review_items_count_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM review_queue_count(reason, -n)
    FROM (SELECT reason, count(*) AS n FROM deleted_items WHERE status <> 'decided'
          GROUP BY reason ORDER BY reason) AS per_reason;
    RETURN NULL;
END
$$;
CREATE TRIGGER review_items_count_delete
    AFTER DELETE ON review_items REFERENCING OLD TABLE AS deleted_items
    FOR EACH STATEMENT EXECUTE FUNCTION review_items_count_deleted();

-- Row-level, and only when an item enters or leaves "decided" (or changes reason): claims,
-- renewals and releases do not fire it.
CREATE FUNCTION review_items_count_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'decided' THEN
        PERFORM review_queue_count(OLD.reason, -1);
    END IF;
    IF NEW.status <> 'decided' THEN
        PERFORM review_queue_count(NEW.reason, 1);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER review_items_count_update
    AFTER UPDATE OF status, reason ON review_items FOR EACH ROW
    WHEN ((OLD.status = 'decided') <> (NEW.status = 'decided') OR OLD.reason <> NEW.reason)
    EXECUTE FUNCTION review_items_count_updated();

-- The triggers above exist, and ALTER TABLE holds review_items exclusively until commit, so this
-- count and the triggers' deltas add up exactly.
INSERT INTO review_queue_counts (reason, slot, open_items)
SELECT reason, 0, count(*) FROM review_items WHERE status <> 'decided' GROUP BY reason;

-- Claim-next and the open/pending views: walk open items in priority order. Live claims are
-- skipped as the walk meets them (at most one per reviewer); expired leases are claimable again
-- without any sweep.
CREATE INDEX review_items_claim_idx ON review_items (priority_key, item_id)
    WHERE status <> 'decided';
-- The same, for a view narrowed to one reason (e.g. an appeals-only reviewer).
CREATE INDEX review_items_claim_reason_idx ON review_items (reason, priority_key, item_id)
    WHERE status <> 'decided';
-- The "all" view (decided items included) in priority order.
CREATE INDEX review_items_priority_idx ON review_items (priority_key, item_id);
-- Live claims (the claimed count and view) and expired leases (the sweep).
CREATE INDEX review_items_lease_idx ON review_items (lease_expires_at) WHERE status = 'claimed';
-- The oldest open item's age (lead view, metrics).
CREATE INDEX review_items_open_age_idx ON review_items (enqueued_at) WHERE status <> 'decided';
-- The decided view, newest first, as keyset pages; also the lead view's decision window.
CREATE INDEX review_items_decided_page_idx ON review_items (decided_at, item_id)
    WHERE status = 'decided';
DROP INDEX review_items_decided_idx;
-- (status, severity DESC, enqueued_at) served the old now()-based order, which nothing uses now.
DROP INDEX review_items_open_idx;
