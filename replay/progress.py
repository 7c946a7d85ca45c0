"""The replay's progress bar: posts done, rate, ETA, and what the run is waiting for."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

LABEL = "replay"


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} posts/s" if speed else "- posts/s", style="progress.data.speed")


def progress_bar(console: Console, *, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


def show_status(progress: Progress, task: TaskID, status: str | None) -> None:
    """``replay`` normally; ``replay (waiting for postgres…)`` while an outage pauses the run."""
    progress.update(task, description=f"{LABEL} ({status})" if status else LABEL)
