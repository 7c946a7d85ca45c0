"""The refusal every budget guard raises, with the fallback cause it leads to."""

from __future__ import annotations

from pipeline.core.budget import BudgetScope
from pipeline.core.fallback import FallbackCause
from pipeline.errors import ModerationError


class BudgetRefusedError(ModerationError):
    """A call was not made: ``scope``'s cap is reached (cause ``budget``) or the shared budget
    store cannot be reached and the local slice is spent (cause ``budget_unavailable``).

    ``retry_after_s`` is when trying again may succeed (the window's end for a reached cap).
    """

    def __init__(self, scope: BudgetScope, cause: FallbackCause, retry_after_s: float) -> None:
        what = "cap reached" if cause is FallbackCause.BUDGET else "budget store unavailable"
        super().__init__(f"{scope.value}: {what}")
        self.scope = scope
        self.cause = cause
        self.retry_after_s = retry_after_s

    @property
    def exhausted(self) -> bool:
        return self.cause is FallbackCause.BUDGET
