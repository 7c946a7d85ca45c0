"""``modstream model lodo``: leave-one-dataset-out comparison of training recipes (and the winner).

The options are :mod:`classifiers.lodo_run`'s own (``modstream model lodo --help`` lists them),
passed through unchanged, so the one ``modstream`` CLI runs it with the training extra installed.
"""

from __future__ import annotations

import click

from modstream.commands.model import model


@model.command(
    "lodo",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def lodo_cmd(args: tuple[str, ...]) -> None:
    """Compare recipes by leave-one-dataset-out evaluation; --out DIR trains the winner."""
    try:
        from classifiers.lodo_run import main
    except ModuleNotFoundError as exc:
        raise click.ClickException(
            f"training needs the train extra ({exc.name} is missing):"
            " pip install 'modstream[train]'"
        ) from exc
    main(list(args), prog="modstream model lodo")
