"""``modstream produce`` and ``modstream tail``: put posts on the ingest topic, watch decisions."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import click
from aiokafka import AIOKafkaConsumer

from modstream.commands.context import CommandContext, pass_context
from pipeline.config import Settings
from pipeline.kafka.producer import KafkaEventPublisher
from schemas import SCHEMA_VERSION, DecisionEvent, EventError, PostEvent, decode


@dataclass
class ProduceReport:
    """What ``produce`` did: how many posts were published and which lines were invalid."""

    published: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)


def _stamped(document: dict[str, Any]) -> bytes:
    """``document`` as JSON bytes for :func:`decode`. Invalid UTF-8 of the file (read with
    ``surrogateescape``) comes back as the same bytes, so it is refused as on the topic; a lone
    surrogate from a ``\\ud800`` escape stays escaped, so it is judged as on the topic too,
    instead of failing the encoder."""
    try:
        return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return json.dumps(document).encode("ascii")


def read_posts(
    lines: Iterator[str], *, max_bytes: int, stamp: bool
) -> Iterator[tuple[int, PostEvent | EventError]]:
    """Yield ``(line_number, post or error)`` for each non-blank line of a JSONL stream.

    With ``stamp``, a missing ``schema_version`` or ``ingested_at`` is filled in (now), so
    hand-written sample files need only ``post_id``, ``author_id`` and ``text``.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        raw = line.encode("utf-8", "surrogateescape")
        if stamp:
            try:
                document = json.loads(line)
            except (ValueError, RecursionError):  # decode() below says what is wrong
                document = None
            if isinstance(document, dict):
                document.setdefault("schema_version", SCHEMA_VERSION)
                document.setdefault("ingested_at", datetime.now(UTC).isoformat())
                raw = _stamped(document)
        try:
            yield number, decode(PostEvent, raw, max_bytes=max_bytes)
        except EventError as exc:
            yield number, exc


async def produce_file(
    settings: Settings,
    source: TextIO,
    *,
    topic: str | None = None,
    rate: float | None = None,
    stamp: bool = True,
    chunk: int = 500,
) -> ProduceReport:
    """Publish every valid post of a JSONL stream; collect invalid lines with their numbers."""
    report = ProduceReport()
    target = topic or settings.topic_posts
    pending: list[tuple[bytes | None, bytes]] = []
    started = time.monotonic()
    async with KafkaEventPublisher(
        settings, client_id=f"{settings.kafka_client_id}-produce"
    ) as pub:
        for number, item in read_posts(
            iter(source), max_bytes=settings.max_post_bytes, stamp=stamp
        ):
            if isinstance(item, EventError):
                report.invalid.append((number, str(item)))
                continue
            pending.append((item.post_id.encode(), item.model_dump_json().encode()))
            if rate:
                await pub.publish(target, pending)
                report.published += len(pending)
                pending.clear()
                ahead = report.published / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            elif len(pending) >= chunk:
                await pub.publish(target, pending)
                report.published += len(pending)
                pending.clear()
        await pub.publish(target, pending)
        report.published += len(pending)
    return report


@click.command("produce")
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option("--topic", default=None, help="Target topic (default: the ingest topic).")
@click.option("--rate", type=float, default=None, help="Posts per second (default: no limit).")
@click.option(
    "--stamp/--no-stamp",
    default=True,
    show_default=True,
    help="Fill a missing schema_version/ingested_at (now) before validating.",
)
@pass_context
def produce(
    ctx: CommandContext, file: Path, topic: str | None, rate: float | None, stamp: bool
) -> None:
    """Validate FILE.jsonl line by line and publish the valid posts (exit 1 if any line was bad)."""
    settings: Settings = ctx.settings
    if rate is not None and rate <= 0:
        raise click.UsageError("--rate must be positive")
    source = (
        sys.stdin if str(file) == "-" else file.open(encoding="utf-8", errors="surrogateescape")
    )
    with source:
        report = asyncio.run(produce_file(settings, source, topic=topic, rate=rate, stamp=stamp))
    for number, reason in report.invalid:
        click.echo(f"{file}:{number}: invalid post: {reason}", err=True)
    click.echo(
        f"published {report.published} posts to {topic or settings.topic_posts}; "
        f"{len(report.invalid)} invalid lines"
    )
    if report.invalid:
        raise click.exceptions.Exit(1)


async def tail_decisions(
    settings: Settings,
    *,
    from_beginning: bool,
    limit: int | None,
    duration: float | None,
    out: TextIO,
    as_json: bool,
) -> int:
    """Print decisions as they arrive; returns how many were printed."""
    consumer = AIOKafkaConsumer(
        settings.topic_decisions,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    printed = 0
    deadline = time.monotonic() + duration if duration else None
    try:
        while limit is None or printed < limit:
            wait = 500 if deadline is None else int(max(0, deadline - time.monotonic()) * 1000)
            if deadline is not None and wait == 0:
                break
            batch = await consumer.getmany(timeout_ms=min(wait, 500))
            for records in batch.values():
                for record in records:
                    try:
                        decision = decode(DecisionEvent, record.value, max_bytes=1 << 20)
                    except EventError as exc:
                        out.write(f"# undecodable decision at offset {record.offset}: {exc}\n")
                        continue
                    out.write(_format_decision(decision, as_json) + "\n")
                    out.flush()
                    printed += 1
                    if limit is not None and printed >= limit:
                        return printed
    finally:
        await consumer.stop()
    return printed


def _format_decision(decision: DecisionEvent, as_json: bool) -> str:
    if as_json:
        return decision.model_dump_json()
    latency_ms = (decision.decided_at - decision.ingested_at).total_seconds() * 1000
    top = max(decision.scores.items(), key=lambda kv: kv[1], default=("-", 0.0))
    return (
        f"{decision.decided_at:%H:%M:%S} {decision.post_id:<24} {decision.verdict.value:<10} "
        f"{decision.stage.value:<9} top={top[0]}:{top[1]:.3f} latency={latency_ms:.0f}ms "
        f"cost=${decision.cost_usd:.6f}"
    )


@click.command("tail")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest decision.")
@click.option("--limit", type=int, default=None, help="Stop after this many decisions.")
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print each decision as JSON.")
@pass_context
def tail(
    ctx: CommandContext,
    from_beginning: bool,
    limit: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Print decisions from the decisions topic as they arrive."""
    settings: Settings = ctx.settings
    asyncio.run(
        tail_decisions(
            settings,
            from_beginning=from_beginning,
            limit=limit,
            duration=timeout,
            out=sys.stdout,
            as_json=as_json,
        )
    )


COMMANDS: list[click.Command] = [produce, tail]
