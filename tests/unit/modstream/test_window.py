"""The history window of ``modstream cost`` and ``modstream model compare``: any text either
gives a window the store can widen to whole hours, or a clear usage error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from modstream.commands.cost import cost
from modstream.commands.replay import replay_cmd
from modstream.commands.window import EARLIEST, LATEST, parse_when, parse_window
from pipeline.store.cost import hour_window

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("24h", NOW - timedelta(hours=24)),
        (" 7d ", NOW - timedelta(days=7)),
        ("1.5m", NOW - timedelta(minutes=1.5)),
        ("2026-12-01T00:00:00", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T02:00:00+02:00", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_durations_ago_and_iso_times_parse(text: str, expected: datetime) -> None:
    assert parse_when(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("garbage", "neither a duration ago"),
        ("", "neither a duration ago"),
        ("-5h", "neither a duration ago"),
        ("99999999d", "outside 1970-01-01"),  # was an OverflowError traceback
        ("0001-01-01T00:00:00", "outside 1970-01-01"),
        ("9999-12-31T23:59:59", "outside 1970-01-01"),  # widening it to the hour overflowed
    ],
)
def test_unusable_times_are_usage_errors_that_say_why(text: str, says: str) -> None:
    with pytest.raises(click.BadParameter, match=says):
        parse_when(text, now=NOW)


def test_a_window_must_end_after_it_starts() -> None:
    with pytest.raises(click.BadParameter, match="must be after --since"):
        parse_window("1h", "2h", now=NOW)
    assert parse_window("2h", "now", now=NOW) == (NOW - timedelta(hours=2), NOW)


_WHEN = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A[0-9]{1,12}(\.[0-9]{1,4})?[mhd]\Z"),
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),
    st.builds(
        lambda moment, offset: moment.replace(tzinfo=timezone(offset)).isoformat(),
        st.datetimes(),
        st.timedeltas(
            min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
        ),
    ),
    st.sampled_from(["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"]),
)


@given(since=_WHEN, until=_WHEN)
def test_any_text_gives_a_window_the_store_can_widen_or_a_usage_error(
    since: str, until: str
) -> None:
    try:
        start, end = parse_window(since, until, now=NOW)
    except click.BadParameter:
        return
    assert start.tzinfo is not None and end.tzinfo is not None
    assert EARLIEST <= start < end < LATEST
    widened = hour_window(start, end)
    assert widened[0] <= start and end <= widened[1]


def test_a_chart_in_a_missing_directory_is_refused_before_anything_is_read(
    tmp_path: Path,
) -> None:
    chart = tmp_path / "no-such-dir" / "cost.png"
    result = CliRunner().invoke(cost, ["--chart", str(chart)], obj=None)
    assert result.exit_code == 2
    assert "is not a directory" in result.output
    assert not chart.parent.exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--since", "0001-01-01T00:00:00+01:00"],
            "--since: '0001-01-01T00:00:00+01:00' is outside",
        ),
        (
            ["--until", "9999-12-31T23:59:59-01:00"],
            "--until: '9999-12-31T23:59:59-01:00' is outside",
        ),
        (["--since", "yesterday"], "--since: 'yesterday' is neither"),
    ],
)
def test_replay_refuses_an_unusable_time_as_a_usage_error(args: list[str], says: str) -> None:
    # It used to reach Postgres, fail there and advise running the same command again.
    result = CliRunner().invoke(replay_cmd, [*args, "--dry-run"], obj=None)
    assert result.exit_code == 2, result.output
    assert says in result.output
