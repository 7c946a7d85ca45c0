"""structlog setup, done once per process in ``main()``; modules only call :func:`get_logger`."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(api_key|apikey|password|secret|token|authorization|dsn)$", re.I)
_DSN_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
_CONTENT_KEYS = frozenset({"text", "content", "post_text", "body"})


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask values of secret-looking keys and passwords inside URLs/DSNs."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key) and value not in (None, ""):
            event_dict[key] = "**********"
        elif isinstance(value, str) and "://" in value:
            event_dict[key] = _DSN_PASSWORD.sub(r"\1**********@", value)
    return event_dict


def redact_content(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Never log user content: replace it with its length."""
    for key in _CONTENT_KEYS & event_dict.keys():
        value = event_dict[key]
        event_dict[key] = f"<{len(value)} chars>" if isinstance(value, str) else "<redacted>"
    return event_dict


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Configure structlog (and stdlib logging of libraries) to write to stdout."""
    numeric = logging.getLevelName(level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_content,
        redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING) if numeric < logging.WARNING else numeric)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; bind per-message context with ``structlog.contextvars``."""
    return structlog.get_logger(name)
