"""Error taxonomy. Callers branch on ``retriable``, not on class lists."""

from __future__ import annotations

from typing import ClassVar


class ModerationError(Exception):
    """Root of every modstream error."""

    retriable: ClassVar[bool] = False


class SettingsError(ModerationError):
    """The settings are invalid; the message names the variable to fix."""


class StackError(ModerationError):
    """The local stack (Kafka, Postgres) could not be started, stopped or reached."""


class MigrationError(ModerationError):
    """A migration failed or an applied migration was changed after the fact."""


class ServiceUnavailableError(ModerationError):
    """A dependency (broker, database, provider) is temporarily unreachable."""

    retriable = True
