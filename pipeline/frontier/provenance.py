"""Whether the provider behind a client is the project's Anthropic API simulator.

The simulator marks every response with :data:`SIMULATOR_HEADER`. A client that has seen it is
talking to the simulator, so its verdicts are simulated: they are stored as such
(``verdicts.simulated``) and never become training labels by default (they come from a keyword
rule, not a model).
"""

from __future__ import annotations

from typing import Any

SIMULATOR_HEADER = "x-modstream-simulator"


class ProviderWitness:
    """Watches a client's responses for the simulator's mark."""

    def __init__(self) -> None:
        self.simulated = False

    async def seen(self, response: Any) -> None:
        """Response hook of the SDK's HTTP client (its own httpx flavour, hence ``Any``)."""
        if response.headers.get(SIMULATOR_HEADER):
            self.simulated = True
