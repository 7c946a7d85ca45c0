"""The ``--since``/``--until`` times of the commands that read history (cost, model compare,
replay, audit)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""No record is older than the Unix epoch; a window may not start before it."""
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
"""A window ends before this, so that widening it to whole hours cannot leave the calendar."""


def parse_when(value: str, *, now: datetime) -> datetime:
    """``24h``/``7d``/``30m`` ago, ``now``, or an ISO 8601 time (naive means UTC).

    Raises :class:`click.BadParameter` for anything else, including a time outside
    [:data:`EARLIEST`, :data:`LATEST`).
    """
    text = value.strip()
    if text == "now":
        return now
    match = _RELATIVE.match(text)
    if match:
        try:
            when = now - timedelta(**{_UNITS[match[2]]: float(match[1])})
        except OverflowError:
            when = EARLIEST - timedelta(days=1)  # before any record: refused below
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is neither a duration ago (30m, 24h, 7d) nor an ISO 8601 time"
            ) from None
        when = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    try:
        inside = EARLIEST <= when < LATEST
    except OverflowError:  # an offset that pushes the instant past datetime's range
        inside = False
    if not inside:
        raise click.BadParameter(
            f"{value!r} is outside {EARLIEST.date()} .. {LATEST.date()}; give a time in that range"
        )
    return when


def parse_window(since: str, until: str, *, now: datetime) -> tuple[datetime, datetime]:
    """``(start, end)`` from ``--since`` and ``--until``; the end must come after the start."""
    start, end = parse_when(since, now=now), parse_when(until, now=now)
    if end <= start:
        raise click.BadParameter(f"--until ({end.isoformat()}) must be after --since")
    return start, end


def parse_option(value: str | None, name: str) -> datetime | None:
    """An optional ``--since``/``--until`` (``None`` when not given) for commands that default it
    themselves; an unusable time is a :class:`click.UsageError` that names the option."""
    if value is None:
        return None
    try:
        return parse_when(value, now=datetime.now(UTC))
    except click.BadParameter as exc:
        raise click.UsageError(f"{name}: {exc.message}") from None
