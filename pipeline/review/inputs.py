"""Refuse malformed input before it reaches a handler or Postgres: 400, never 500.

Postgres text cannot hold NUL, and neither UTF-8 nor Postgres can hold lone surrogates (which is
how aiohttp and ``json`` hand over invalid UTF-8 and ``\\udXXX`` escapes). The middleware checks the
path, query and headers of every request; :func:`json_object` and :func:`form` check bodies.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from pipeline.review.errors import InvalidInputError

MALFORMED = "the request holds a NUL byte or invalid UTF-8; remove it and try again"


def is_clean(text: str) -> bool:
    """False if ``text`` holds a NUL or a lone surrogate (invalid UTF-8 after decoding)."""
    return "\x00" not in text and not any(unicodedata.category(ch) == "Cs" for ch in text)


def _all_clean(values: Iterable[str]) -> bool:
    return all(is_clean(value) for value in values)


def _clean_value(value: Any) -> bool:
    if isinstance(value, str):
        return is_clean(value)
    if isinstance(value, list):
        return all(_clean_value(v) for v in value)
    if isinstance(value, dict):
        return all(is_clean(k) and _clean_value(v) for k, v in value.items())
    return True


@web.middleware
async def reject_malformed(request: web.Request, handler: Handler) -> web.StreamResponse:
    """400 for a NUL or invalid UTF-8 in the path, query or headers."""
    try:
        parts = [request.path, *request.query.keys(), *request.query.values()]
    except UnicodeError:
        raise InvalidInputError(MALFORMED) from None
    if not _all_clean(parts) or not _all_clean(request.headers.values()):
        raise InvalidInputError(MALFORMED)
    return await handler(request)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The JSON object body (``{}`` when there is none), with clean strings only."""
    if not request.can_read_body:
        return {}
    try:
        body = json.loads(await request.text())
    except (ValueError, RecursionError):
        raise InvalidInputError("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidInputError("the request body must be a JSON object")
    if not _clean_value(body):
        raise InvalidInputError(MALFORMED)
    return body


async def form(request: web.Request) -> dict[str, str]:
    """The text fields of a form body (files are ignored), with clean strings only."""
    try:
        posted = await request.post()
    except (ValueError, UnicodeError):
        raise InvalidInputError("the form could not be read; reload the page and retry") from None
    fields = {name: value for name, value in posted.items() if isinstance(value, str)}
    if not _all_clean([*fields.keys(), *fields.values()]):
        raise InvalidInputError(MALFORMED)
    return fields
