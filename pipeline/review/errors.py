"""Errors of the review app; each carries the HTTP status the web layer answers with."""

from __future__ import annotations

from typing import ClassVar

from pipeline.errors import ModerationError


class ReviewError(ModerationError):
    """A request the review queue refuses; the message tells the user what to do."""

    status: ClassVar[int] = 400

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds the client should wait before trying again (sent as ``Retry-After``)."""


class InvalidInputError(ReviewError):
    """A parameter or form field is malformed."""


class ForbiddenError(ReviewError):
    """The signed-in user may not do this (role, separation of duties)."""

    status = 403


class NotFoundError(ReviewError):
    status = 404


class ConflictError(ReviewError):
    """The item is not in a state that allows the action (claimed by someone else, decided)."""

    status = 409


class UserExistsError(ConflictError):
    """A user with that name already exists."""


class TooManyRequestsError(ReviewError):
    """A rate or concurrency limit is reached; ``retry_after`` says when to try again."""

    status = 429
    retriable = True


class BusyError(ReviewError):
    """The app or one of its dependencies cannot take this request now; try again later."""

    status = 503
    retriable = True
