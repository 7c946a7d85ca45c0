"""Strict JSON for hostile bytes: what the standard decoder accepts but the pipeline must not.

:func:`loads_strict` refuses, with a :class:`WireError` whose message quotes no content:

* nesting deeper than :data:`MAX_DEPTH` (the standard decoder would raise ``RecursionError``
  somewhere near 1,000 levels, and every consumer below would recurse again);
* duplicate keys in an object (two readers could disagree on which value counts);
* ``NaN`` / ``Infinity`` and numbers that overflow a double (not JSON, and not storable);
* integers outside the signed 64-bit range (not storable; huge ones cost quadratic time).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32
"""Deepest nesting of objects and arrays accepted in any event."""

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class WireError(ValueError):
    """Bytes that are JSON to a lenient reader but not to this pipeline."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise WireError("duplicate key in an object")
        result[key] = value
    return result


def _constant(_name: str) -> float:
    raise WireError("NaN and Infinity are not JSON numbers")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise WireError("number out of the double range")
    return value


def _int(text: str) -> int:
    if len(text) > 20:
        raise WireError("integer out of the 64-bit range")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise WireError("integer out of the 64-bit range")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_constant=_constant, parse_float=_float, parse_int=_int
)


def _check_depth(document: Any) -> None:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > MAX_DEPTH:
            raise WireError(f"nesting deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def loads_strict(text: str) -> Any:
    """Parse ``text`` as strict JSON; raise :class:`WireError` or ``json.JSONDecodeError``."""
    try:
        document = _DECODER.decode(text)
    except RecursionError:
        raise WireError(f"nesting deeper than {MAX_DEPTH} levels") from None
    if isinstance(document, dict | list):
        _check_depth(document)
    return document
