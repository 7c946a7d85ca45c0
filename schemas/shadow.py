"""The shadow decision: what a candidate model and policy would have decided, next to the live
decision (``schemas/json/shadow_decision.v1.json``). It is not a decision: it never reaches the
decisions topic or the verdict history."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.events import SCHEMA_FILES, SCHEMA_VERSION, Scores, Verdict, _Outbound
from schemas.fields import Identifier


class ShadowDecision(_Outbound):
    """One post scored by the shadow candidate, with the live decision it is compared with."""

    schema_version: Literal[1] = SCHEMA_VERSION
    shadow_id: Identifier
    post_id: Identifier
    live_model_version: Identifier
    live_policy_version: Identifier
    shadow_model_version: Identifier
    shadow_policy_version: Identifier
    live_verdict: Verdict
    live_categories: list[Identifier] = Field(default_factory=list)
    live_scores: Scores
    shadow_verdict: Verdict
    shadow_categories: list[Identifier] = Field(default_factory=list)
    shadow_scores: Scores
    ingested_at: AwareDatetime
    decided_at: AwareDatetime
    shadow_seconds: float = Field(ge=0.0)


# decode() and json_schema() find the contract through the one registry of schema files.
SCHEMA_FILES[ShadowDecision] = "shadow_decision.v1.json"


def shadow_id(
    post_id: str,
    *,
    live_model: str,
    live_policy: str,
    shadow_model: str,
    shadow_policy: str,
) -> str:
    """Deterministic id: the same post compared by the same live and shadow versions is one
    shadow decision, however often it is re-delivered."""
    key = "\x1f".join((post_id, live_model, live_policy, shadow_model, shadow_policy))
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()
