"""Errors of the frontier client. Callers branch on ``kind`` (and ``retriable``), never on text."""

from __future__ import annotations

from pipeline.core.cost import TokenUsage
from pipeline.core.resilience import ProviderErrorKind
from pipeline.errors import ModerationError


class FrontierError(ModerationError):
    """A provider call gave no usable answer. ``kind`` says why; ``retry_after_s`` is the server's
    ``retry-after`` when it sent one. ``usage`` and ``cost_usd`` are what the failed call was
    still billed for (an answer that arrived but was unusable), zero when nothing arrived."""

    def __init__(
        self, kind: ProviderErrorKind, detail: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail
        self.retry_after_s = retry_after_s
        self.usage = TokenUsage()
        self.cost_usd = 0.0

    @property
    def retriable(self) -> bool:  # type: ignore[override]
        """Whether a fresh attempt may succeed; decided by ``kind``."""
        return self.kind.retriable
