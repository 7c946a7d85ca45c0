"""The audit-sampling section of :class:`~pipeline.config.Settings` (same ``MODSTREAM_*`` names).

A mixin of the one Settings, kept apart only to keep modules short; ``modstream audit`` slices
:class:`~pipeline.core.audit_sampling.SamplingPlan` out of it (see that module for the sample).
Lists are comma-separated numbers in the environment (``MODSTREAM_AUDIT_RATES=0.01,0.05``;
brackets or parentheses around them are accepted, so ``Settings.as_env()`` round-trips).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from pipeline.core.audit_sampling import DEFAULT_EDGES, DEFAULT_RATES, SamplingPlan

Numbers = Annotated[tuple[float, ...], NoDecode]


class AuditSettings(BaseModel):
    """Which real-time allow decisions the nightly audit sends to the frontier model again."""

    audit_edges: Numbers = Field(
        default=DEFAULT_EDGES,
        description="Bin edges on an allowed post's highest score; n edges make n + 1 strata.",
    )
    audit_rates: Numbers = Field(
        default=DEFAULT_RATES,
        description="Audit rate of each stratum, lowest scores first (higher strata "
        "oversampled); about 0.5 % of allowed posts when most score below the first edge.",
    )
    audit_key: SecretStr = Field(
        default=SecretStr("modstream-audit"),
        description="Key of the hash that picks the sample: set a secret one in production, so "
        "no one outside can tell which posts get audited.",
    )
    audit_window_hours: float = Field(
        default=48.0,
        gt=0,
        description="Default window of `modstream audit`: real-time decisions of the last N "
        "hours not audited yet.",
    )

    @field_validator("audit_edges", "audit_rates", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        """``"0.05,0.2"``, ``"[0.05, 0.2]"`` or ``"(0.05, 0.2)"`` from the environment."""
        if isinstance(value, str):
            inner = value.strip().strip("[]()")
            return tuple(float(part) for part in inner.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _plan_is_valid(self) -> AuditSettings:
        self.audit_plan()  # raises AuditPlanError (a ValueError) naming the broken rule
        return self

    def audit_plan(self) -> SamplingPlan:
        """The sample these settings describe."""
        return SamplingPlan(
            edges=self.audit_edges, rates=self.audit_rates, key=self.audit_key.get_secret_value()
        )
