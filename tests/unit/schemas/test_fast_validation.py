"""The compiled validator (jsonschema-rs) never accepts what the reference (jsonschema) refuses.

``validate_document`` lets the compiled validator wave valid documents through and asks the
reference about the rest, so the one direction that matters is: compiled-valid ⇒ reference-valid.
Documents start valid for each event type and are mutated field by field with hostile values.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas import EventError, Verdict, encode
from schemas.events import (
    SCHEMA_FILES,
    _compiled_accepts,
    _fast_validator,
    _validator,
    json_schema,
    validate_document,
)
from schemas.shadow import ShadowDecision
from tests.fixtures.hostile import CANARY, nasty_text
from tests.unit.schemas.test_events import examples

_NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def _valid() -> dict[type[BaseModel], dict[str, Any]]:
    """One valid document per event type: test_events' examples and a shadow decision."""
    shadow = ShadowDecision(
        shadow_id="1" * 32,
        post_id="p-1",
        live_model_version="m",
        live_policy_version="p",
        shadow_model_version="m2",
        shadow_policy_version="p2",
        live_verdict=Verdict.ALLOW,
        live_scores={"toxic": 0.1},
        shadow_verdict=Verdict.BORDERLINE,
        shadow_categories=["toxic"],
        shadow_scores={"toxic": 0.6},
        ingested_at=_NOW,
        decided_at=_NOW,
        shadow_seconds=0.002,
    )
    return {type(event): json.loads(encode(event)) for event in [*examples(), shadow]}


VALID = _valid()

_PATTERNED = st.sampled_from(
    ["p-1\n", "\np-1", "p 1", "", "a" * 129, "p-1\x00", "é", "p-1$", "0", "-", "p-1\r\n"]
)
_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        nasty_text.map(lambda s: s + CANARY),
        _PATTERNED,
        st.sampled_from(["2026-12-02T12:00:00+00:00", "not a date", "allow", "remove", "1"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[type[BaseModel], Any]:
    model = draw(st.sampled_from(sorted(VALID, key=lambda m: m.__name__)))
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        return model, draw(_JSON)  # not even an object, or an arbitrary one
    document = dict(VALID[model])
    names = [*sorted(json_schema(model)["properties"]), "extra"]
    for name in draw(st.sets(st.sampled_from(names), min_size=1, max_size=4)):
        if draw(st.booleans()):
            document.pop(name, None)
        else:
            document[name] = draw(_JSON)
    return model, document


def test_every_event_type_is_covered_and_its_valid_document_passes_both() -> None:
    assert set(VALID) == set(SCHEMA_FILES)
    for model, document in VALID.items():
        assert _fast_validator(model).is_valid(document)
        assert not list(_validator(model).iter_errors(document))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(case=_mutated())
def test_what_the_compiled_validator_accepts_the_reference_accepts(
    case: tuple[type[BaseModel], Any],
) -> None:
    model, document = case
    reference_errors = list(_validator(model).iter_errors(document))
    if _compiled_accepts(model, document):
        assert reference_errors == [], f"compiled validator accepted: {reference_errors[0]}"
    if reference_errors:
        with pytest.raises(EventError):
            validate_document(model, document)
    else:
        validate_document(model, document)  # the reference has the last word
