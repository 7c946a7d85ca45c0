"""``modstream``: the one command-line entry point (the application layer's composition root for
commands). Each command group lives in ``commands/``; the registry is ``commands/__init__.py``."""

from __future__ import annotations

import sys

import click

from classifiers.base import ClassifierError
from modstream.commands import developer_commands, runtime_commands
from modstream.commands.context import CommandContext
from pipeline.errors import ModerationError
from schemas import EventError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modstream")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """modstream: hybrid content moderation (classifier, frontier model, replay, review)."""
    ctx.ensure_object(CommandContext)


def _register() -> None:
    for command in [*runtime_commands(), *developer_commands()]:
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
