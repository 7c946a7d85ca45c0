"""A provider call's token usage as the decision's usage record (pure).

Every decision carries what deciding it consumed (:class:`~schemas.DecisionUsage`), so the
verdict history adds up to the provider's bill. A call that decided several posts is split
across them so that the parts add up exactly to the call.
"""

from __future__ import annotations

from dataclasses import fields

from pipeline.core.cost import TokenUsage
from schemas import DecisionUsage


def decision_usage(usage: TokenUsage, *, compute_seconds: float = 0.0) -> DecisionUsage:
    """``usage`` in the verdict history's terms."""
    return DecisionUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens,
        cache_write_tokens=usage.cache_creation_input_tokens,
        compute_seconds=compute_seconds,
    )


def _split(total: int, parts: int) -> list[int]:
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts)]


def split_usage(usage: TokenUsage, parts: int) -> list[TokenUsage]:
    """``usage`` divided into ``parts`` integer shares that add up to it exactly (every kind,
    the 1-hour cache writes included)."""
    if parts < 1:
        raise ValueError(f"split_usage needs at least one part, got {parts}")
    names = [f.name for f in fields(TokenUsage)]
    columns = {name: _split(getattr(usage, name), parts) for name in names}
    return [TokenUsage(**{name: columns[name][i] for name in names}) for i in range(parts)]
