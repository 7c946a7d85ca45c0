"""``modstream``: the one command-line entry point. Each command group lives in ``commands/``."""

from __future__ import annotations

import importlib
import sys

import click

from classifiers.base import ClassifierError
from pipeline.commands.context import CommandContext
from pipeline.errors import ModerationError
from schemas import EventError

# Command modules, each exporting ``COMMANDS: list[click.Command]``. Imported when the CLI runs,
# never at package import time.
COMMAND_MODULES: tuple[str, ...] = (
    "pipeline.commands.stack",
    "pipeline.commands.events",
    "pipeline.commands.run",
    "pipeline.commands.demo",
    "pipeline.commands.model",
    "pipeline.commands.bench",
    "pipeline.commands.frontier",
    "pipeline.commands.bench_frontier",
    "pipeline.commands.bench_realtime",
    "pipeline.commands.bench_review",
    "pipeline.commands.review",
    "replay.cli",
    "devtools.soak.command",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modstream")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """modstream: hybrid content moderation (classifier, frontier model, replay, review)."""
    ctx.ensure_object(CommandContext)


def _register() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        for command in module.COMMANDS:
            cli.add_command(command)


def main() -> None:
    """Console-script entry point. Exit codes: 0 ok, 1 failure, 2 usage error."""
    _register()
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except (ModerationError, ClassifierError, EventError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
