"""The state every ``modstream`` command receives: settings, loaded once and lazily."""

from __future__ import annotations

import click

from pipeline.config import Settings, load_settings
from pipeline.log import configure_logging


class CommandContext:
    """Per-invocation state. Settings load on first use, so ``--help`` never needs them."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The validated settings; logging is configured from them on first access."""
        if self._settings is None:
            self._settings = load_settings()
            configure_logging(self._settings.log_level, self._settings.log_format)
        return self._settings


pass_context = click.make_pass_decorator(CommandContext, ensure=True)
"""Decorator giving a command its :class:`CommandContext` as first argument."""
