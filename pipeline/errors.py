"""Error taxonomy. Callers branch on ``retriable``, not on class lists.

Adapters translate what their library raises into three kinds, so stages never import driver
exceptions:

* :class:`DependencyUnavailableError` — the broker, database or provider cannot be reached right
  now. Retriable: the stage pauses, backs off and tries the same work again.
* :class:`RecordRejectedError` — the dependency is up but refuses this data (a Postgres data
  exception, a record over the broker's size limit). Not retriable: the batch is bisected and the
  record that fails alone is dead-lettered.
* :class:`DependencyConfigError` — the dependency refuses *us* (bad password, unknown database,
  missing table, not authorised). Trying again cannot help; the process exits with the message.
"""

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


class DependencyUnavailableError(ServiceUnavailableError):
    """``dependency`` ("postgres", "kafka", "provider") cannot be reached; try again later.

    ``detail`` names the failure (exception class, SQLSTATE) and never quotes user content.
    """

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency} unavailable: {detail}")
        self.dependency = dependency
        self.detail = detail


class RecordRejectedError(ModerationError):
    """``dependency`` is up but refuses the data it was given (not retriable as is).

    ``detail`` names the failure (exception class, SQLSTATE) and never quotes user content.
    """

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency} rejected the record: {detail}")
        self.dependency = dependency
        self.detail = detail


class DependencyConfigError(ModerationError):
    """A dependency refuses this process itself (credentials, database, schema, authorisation).

    The message says what to fix; the process exits instead of retrying.
    """
