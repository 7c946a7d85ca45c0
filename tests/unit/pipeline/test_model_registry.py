"""The model registry's pure decisions: the active version, promotions, rollbacks, switching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.model_registry import (
    ModelIdentity,
    Promotion,
    PromotionAction,
    PromotionRequest,
    RegisteredModel,
    RegistryDecisionError,
    active_version,
    promotion,
    rollback,
    version_stack,
    wants_switch,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)
SHA_A = "a" * 64
SHA_B = "b" * 64


def applied(history: list[Promotion], request: PromotionRequest) -> list[Promotion]:
    """The history with ``request`` appended, as the store does."""
    row = Promotion(
        version=request.version,
        replaced=request.replaced,
        action=request.action,
        promoted_by=request.promoted_by,
        reason=request.reason,
        promoted_at=T0 + timedelta(minutes=len(history)),
    )
    return [*history, row]


def promoted(*versions: str) -> list[Promotion]:
    history: list[Promotion] = []
    for version in versions:
        history = applied(history, promotion(version, registered=versions, history=history, by="t"))
    return history


def registered(version: str, sha: str) -> RegisteredModel:
    return RegisteredModel(version, sha, f"/registry/{version}", None, T0, "t")


def test_the_active_version_is_the_latest_row() -> None:
    assert active_version([]) is None
    assert active_version(promoted("a", "b")) == "b"


def test_a_promotion_records_what_it_replaces_and_who() -> None:
    history = promoted("a")
    request = promotion("b", registered=["a", "b"], history=history, by="ops", reason="eval 0.9")
    assert request == PromotionRequest("b", "a", PromotionAction.PROMOTE, "ops", "eval 0.9")
    assert promotion("a", registered=["a"], history=[], by="ops").replaced is None


def test_an_unknown_version_must_be_registered_first() -> None:
    with pytest.raises(
        RegistryDecisionError, match=r"register it first: `modstream model register"
    ):
        promotion("nope", registered=["a"], history=[], by="ops")


def test_promoting_the_active_version_is_refused() -> None:
    with pytest.raises(RegistryDecisionError, match="already active"):
        promotion("a", registered=["a"], history=promoted("a"), by="ops")


def test_rollback_goes_back_to_what_the_active_one_replaced() -> None:
    history = promoted("a", "b", "c")
    request = rollback(history, by="ops", reason="bad precision")
    assert request == PromotionRequest("b", "c", PromotionAction.ROLLBACK, "ops", "bad precision")


def test_rollbacks_walk_back_through_the_promotions_in_force() -> None:
    history = promoted("a", "b", "c")
    history = applied(history, rollback(history, by="ops"))
    assert active_version(history) == "b"
    history = applied(history, rollback(history, by="ops"))
    assert active_version(history) == "a"
    with pytest.raises(RegistryDecisionError, match="nothing to roll back to"):
        rollback(history, by="ops")


def test_nothing_to_roll_back_to_says_what_to_do() -> None:
    with pytest.raises(RegistryDecisionError, match="no model version was ever promoted"):
        rollback([], by="ops")
    with pytest.raises(RegistryDecisionError, match="`modstream model promote VERSION`"):
        rollback(promoted("a"), by="ops")


def test_a_stage_switches_only_to_another_build() -> None:
    loaded = ModelIdentity("a", SHA_A)
    assert not wants_switch(loaded, None)  # empty registry: keep the settings' model
    assert not wants_switch(loaded, registered("a", SHA_A))
    assert wants_switch(loaded, registered("b", SHA_B))
    assert wants_switch(loaded, registered("a", SHA_B))  # same name, another build


@given(st.lists(st.one_of(st.sampled_from("abcd"), st.none()), max_size=30))
def test_a_rollback_undoes_the_latest_promotion_still_in_force(ops: list[str | None]) -> None:
    """Promotions (a version) and rollbacks (None) in any order: the registry behaves like a
    stack of versions, and a refused request changes nothing."""
    history: list[Promotion] = []
    model: list[str] = []
    for op in ops:
        try:
            if op is None:
                request = rollback(history, by="h")
            else:
                request = promotion(op, registered="abcd", history=history, by="h")
        except RegistryDecisionError:
            assert (op is None and len(model) < 2) or (model and model[-1] == op)
            continue
        history = applied(history, request)
        if op is None:
            model.pop()
        else:
            model.append(op)
        assert request.replaced == (history[-2].version if len(history) > 1 else None)
        assert version_stack(history) == model
        assert active_version(history) == model[-1]
