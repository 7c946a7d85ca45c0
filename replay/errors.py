"""The replay's own error: a run could not start, or it failed (the message says what to do)."""

from __future__ import annotations

from pipeline.errors import ModerationError


class ReplayError(ModerationError):
    """A replay could not run or failed; the message says what to do."""
