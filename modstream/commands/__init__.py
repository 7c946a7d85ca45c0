"""The CLI's command registry, declared here (no import by name).

Runtime commands are always offered. Developer tools (the local stack, the simulator, the demo,
the benchmarks) are offered when the ``devtools`` package is installed; a runtime image leaves it
out, and then so does the CLI.
"""

from __future__ import annotations

import click


def runtime_commands() -> list[click.Command]:
    from modstream.commands import (
        audit,
        cost,
        events,
        frontier,
        migrate,
        model,
        model_compare,
        model_labels,
        model_lodo,
        model_registry,
        replay,
        review,
        run,
    )

    # Imported for their side effect: they attach `model export-labels`, `model compare`,
    # `model lodo` and `model register`, `promote`, `rollback`, `list` to the `model` group.
    del model_compare, model_labels, model_lodo, model_registry

    return [
        *events.COMMANDS,
        *run.COMMANDS,
        *migrate.COMMANDS,
        *model.COMMANDS,
        *frontier.COMMANDS,
        *review.COMMANDS,
        *replay.COMMANDS,
        *audit.COMMANDS,
        *cost.COMMANDS,
    ]


def developer_commands() -> list[click.Command]:
    """The developer tools' commands, or none when ``devtools`` is not installed."""
    try:
        import devtools  # noqa: F401  (only whether it is installed)
    except ModuleNotFoundError:
        return []
    from modstream.commands import (
        bench,
        bench_cost,
        bench_frontier,
        bench_realtime,
        bench_replay,
        bench_review,
        bench_scale,
        bench_shadow,
        bench_soak,
        demo,
        simulator,
        stack,
    )

    # The bench_* modules attach their commands to the `bench` group when imported.
    del bench_cost, bench_frontier, bench_realtime, bench_replay, bench_review, bench_scale
    del bench_shadow, bench_soak
    return [*stack.COMMANDS, *simulator.COMMANDS, *demo.COMMANDS, *bench.COMMANDS]
