"""Errors of the review app; each carries the HTTP status the web layer answers with."""

from __future__ import annotations

from typing import ClassVar

from pipeline.errors import ModerationError


class ReviewError(ModerationError):
    """A request the review queue refuses; the message tells the user what to do."""

    status: ClassVar[int] = 400


class InvalidInputError(ReviewError):
    """A parameter or form field is malformed."""


class NotFoundError(ReviewError):
    status = 404


class ConflictError(ReviewError):
    """The item is not in a state that allows the action (claimed by someone else, decided)."""

    status = 409


class UserExistsError(ConflictError):
    """A user with that name already exists."""
