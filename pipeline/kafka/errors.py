"""Translate aiokafka's exceptions into the pipeline's taxonomy (:mod:`pipeline.errors`).

Kafka marks its own errors ``retriable`` (leader moved, broker unreachable, request timed out):
those mean "try again later". A record too large or corrupt means "this record". Authorisation
failures mean "fix the configuration". Details name the error class only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from aiokafka import errors as kafka_errors

from pipeline.errors import DependencyConfigError, DependencyUnavailableError, RecordRejectedError

DEPENDENCY = "kafka"

_REJECTED = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidMessageError,
    kafka_errors.UnsupportedForMessageFormatError,
)
_CONFIG = (
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.InvalidTopicError,
)


def translate(exc: BaseException) -> Exception | None:
    """The taxonomy error for ``exc``, or ``None`` if it is not a broker error (a bug)."""
    detail = type(exc).__name__
    if isinstance(exc, _REJECTED):
        return RecordRejectedError(DEPENDENCY, detail)
    if isinstance(exc, _CONFIG):
        return DependencyConfigError(
            f"Kafka refused this process: {detail}. Check MODSTREAM_KAFKA_BOOTSTRAP_SERVERS, the "
            "topic names and the client's ACLs."
        )
    if isinstance(exc, kafka_errors.KafkaError | OSError | TimeoutError):
        # Retriable by Kafka's own flag, and every other broker-side failure we cannot pin on
        # one record: retrying the same work is safe (idempotent producer, idempotent writes).
        return DependencyUnavailableError(DEPENDENCY, detail)
    return None


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise broker errors raised inside the block as taxonomy errors."""
    try:
        yield
    except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc
