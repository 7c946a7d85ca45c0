"""Admission of streamed analyses: per-session concurrency, per-user rate, a shared token budget.

- ``analysis_per_session`` analyses may stream at once in one session (default 1).
- Each reviewer may start ``analysis_burst`` analyses at once, then
  ``analysis_per_user_per_minute`` (a token bucket per username).
- All reviewers together spend at most ``analysis_tokens_per_minute`` provider tokens. An analysis
  reserves its ``max_tokens`` plus an estimate of its input (characters / 3 + the prompt) when it
  starts. This budget is the review app's own, apart from the real-time frontier stage's limits,
  so reviewers cannot starve the frontier stage of provider capacity.

A refused analysis raises :class:`TooManyRequestsError` (429 with ``Retry-After``). How long one
may stream is ``analysis_max_s`` (enforced by the handler). State is in-process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from time import monotonic

from pipeline.review.errors import TooManyRequestsError
from pipeline.review.limits import ReviewLimits
from pipeline.review.ratelimit import Clock, KeyedTokenBuckets, TokenBucket

PROMPT_TOKENS = 300
"""Rough size of the analysis prompt around the post, in tokens."""
SESSION_BUSY_RETRY_S = 5.0


class AnalysisGate:
    def __init__(self, limits: ReviewLimits, *, clock: Clock = monotonic) -> None:
        self.max_seconds = limits.analysis_max_s
        self._per_session = limits.analysis_per_session
        self._max_tokens = limits.analysis_max_tokens
        self._active: dict[str, int] = {}
        self._users = KeyedTokenBuckets(
            limits.analysis_per_user_per_minute / 60.0, limits.analysis_burst, clock=clock
        )
        self._budget = TokenBucket(
            limits.analysis_tokens_per_minute / 60.0, limits.analysis_tokens_per_minute, clock=clock
        )

    def cost(self, text: str) -> int:
        """Tokens an analysis of ``text`` reserves from the shared budget."""
        return self._max_tokens + PROMPT_TOKENS + len(text) // 3

    def active(self, session_key: str) -> int:
        return self._active.get(session_key, 0)

    @contextlib.contextmanager
    def admit(self, session_key: str, username: str, text: str) -> Iterator[None]:
        """Hold an analysis slot for the block, or raise :class:`TooManyRequestsError`."""
        if self.active(session_key) >= self._per_session:
            raise TooManyRequestsError(
                "an analysis is already running in this session; stop it or wait for it to end",
                retry_after=SESSION_BUSY_RETRY_S,
            )
        wait = self._users.take(username)
        if wait > 0:
            raise TooManyRequestsError(
                f"you started many analyses recently; try again in {wait:.0f} s",
                retry_after=wait,
            )
        wait = self._budget.take(self.cost(text))
        if wait > 0:
            raise TooManyRequestsError(
                f"the reviewers' analysis budget is used up for now; try again in {wait:.0f} s",
                retry_after=wait,
            )
        self._active[session_key] = self.active(session_key) + 1
        try:
            yield
        finally:
            left = self._active.pop(session_key) - 1
            if left > 0:
                self._active[session_key] = left
