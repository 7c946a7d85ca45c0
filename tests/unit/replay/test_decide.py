"""Chunk decisions: changed, human final, borderline records, flips to review (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.core.policy import Policy, Thresholds
from replay.decide import ReplayPost, decide_chunk, flip_severity, is_flip, prepare_text
from schemas import ReviewReason, Stage, Verdict, decision_id

POLICY = Policy(
    version="p1",
    thresholds={
        "toxic": Thresholds(remove_at=0.8, review_at=0.5),
        "spam": Thresholds(remove_at=0.9, review_at=0.6),
    },
)
NOW = datetime(2024, 5, 1, tzinfo=UTC)


def post(
    pid: str, prev: str | None = None, stage: str | None = "realtime", **kw: object
) -> ReplayPost:
    return ReplayPost(
        post_id=pid,
        text=str(kw.pop("text", "hello")),
        ingested_at=NOW,
        prev_verdict=prev,
        prev_stage=stage if prev else None,
        prev_model=str(kw.pop("model", "m0")) if prev else None,
        prev_policy=str(kw.pop("policy", "p0")) if prev else None,
        prev_scores=kw.pop("scores", None),  # type: ignore[arg-type]
    )


def run(posts: list[ReplayPost], scores: list[dict[str, float]], flip_at: float = 0.8):  # type: ignore[no-untyped-def]
    return decide_chunk(
        posts,
        scores,
        policy=POLICY,
        model_version="m1",
        frontier_model="claude",
        flip_severity_at=flip_at,
        decided_at=NOW,
    )


LOW = {"toxic": 0.1, "spam": 0.0}
HIGH = {"toxic": 0.95, "spam": 0.0}
MID = {"toxic": 0.6, "spam": 0.0}


def test_unchanged_and_new_and_flipped() -> None:
    plan = run(
        [post("a", "allow"), post("b"), post("c", "allow")],
        [LOW, LOW, HIGH],
    )
    assert [d.verdict for d in plan.decisions] == [Verdict.ALLOW, Verdict.ALLOW, Verdict.REMOVE]
    assert all(d.stage is Stage.BATCH for d in plan.decisions)
    assert plan.decisions[0].decision_id == decision_id("a", Stage.BATCH, "m1", "p1")
    assert [d.post_id for d in plan.changed] == ["b", "c"]
    assert plan.tally.transitions == {"allow->allow": 1, "none->allow": 1, "allow->remove": 1}
    assert [r.post_id for r in plan.reviews] == ["c"]
    review = plan.reviews[0]
    assert review.reason is ReviewReason.BATCH_FLIP and review.detail == "allow->remove"
    assert review.severity == 0.95 and review.source_decision_id == plan.decisions[2].decision_id


def test_flip_below_severity_is_not_reviewed() -> None:
    plan = run([post("c", "allow")], [HIGH], flip_at=0.99)
    assert [d.post_id for d in plan.changed] == ["c"] and plan.reviews == []


def test_remove_to_allow_uses_previous_scores_for_severity() -> None:
    plan = run([post("r", "remove", scores={"toxic": 0.97})], [LOW])
    assert plan.reviews and plan.reviews[0].severity == 0.97


def test_human_verdicts_are_final() -> None:
    plan = run([post("h", "allow", stage="human")], [HIGH])
    assert len(plan.decisions) == 1  # kept in the history
    assert plan.changed == [] and plan.reviews == []
    assert plan.tally.human_final == 1 and plan.tally.changed == 0


def test_borderline_goes_to_the_history_only() -> None:
    plan = run([post("x", "allow")], [MID])
    assert plan.decisions == [] and plan.changed == []
    assert [d.verdict for d in plan.borderline] == [Verdict.BORDERLINE]
    assert plan.tally.borderline == 1 and plan.tally.transitions == {"allow->borderline": 1}


def test_borderline_already_answered_by_the_frontier_is_skipped() -> None:
    answered = post("y", "remove", stage="batch", model="claude", policy="p1")
    plan = run(
        [answered, post("z", "remove", stage="frontier", model="claude", policy="p0")], [MID, MID]
    )
    assert [d.post_id for d in plan.borderline] == ["z"]  # older policy: ask again
    assert plan.tally.borderline_already_decided == 1


def test_bad_rows() -> None:
    plan = run([post("e", text="   ")], [LOW])
    assert plan.tally.empty_text == 1 and len(plan.decisions) == 1
    assert prepare_text("x" * 50, 10) == ("x" * 10, True)
    assert prepare_text("short", 10) == ("short", False)


def test_flip_helpers() -> None:
    assert is_flip("allow", "remove") and is_flip("remove", "allow")
    assert not is_flip(None, "remove") and not is_flip("allow", "allow")
    assert not is_flip("escalate", "remove")
    assert flip_severity(0.2, None) == 0.2
    assert flip_severity(0.2, {"a": 0.7}) == 0.7


def test_a_final_verdict_of_this_model_and_policy_is_kept_whatever_the_new_scores() -> None:
    # Scored again in another batch, int8 scores move; the same model and policy already decided.
    same = {"model": "m1", "policy": "p1"}
    plan = run(
        [
            post("rt", "allow", **same),
            post("rp", "remove", stage="batch", **same),
            post("bl", "borderline", **same),  # not final: the replay still routes it
            post("old", "allow", model="m0", policy="p1"),
            post("hu", "allow", stage="human", **same),
        ],
        [HIGH, LOW, HIGH, HIGH, HIGH],
    )
    assert plan.tally.kept_same_versions == 2
    assert {d.post_id for d in plan.decisions} == {"bl", "old", "hu"}
    assert {d.post_id for d in plan.changed} == {"bl", "old"}
    assert plan.tally.transitions["allow->allow"] == 1
    assert plan.tally.transitions["remove->remove"] == 1
