-- Follow-up to 0004 (already applied, so not edited): review_items_priority_idx, a full index on
-- (priority_key, item_id) for the "all" view, ties with review_items_claim_idx in the planner's
-- eyes while few items are decided, and a claim walking it must step over every decided item at
-- the head of the priority order (claims take the head first). The "all" view now reads the open
-- items from review_items_claim_idx, then the decided ones from review_items_decided_page_idx.
DROP INDEX IF EXISTS review_items_priority_idx;
