from __future__ import annotations

import pytest

from devtools.bench.cost import _outage_reason


@pytest.mark.parametrize(
    ("reason", "outage"),
    [
        ("fallback-v1:circuit_open", True),
        ("fallback-v1:provider_error:connection", True),
        ("fallback-v1:deadline", False),
        ("fallback-v1:provider_error:overloaded", False),
        ("fallback-v1:budget", False),
    ],
)
def test_only_the_outage_signature_excuses_a_fallback(reason: str, outage: bool) -> None:
    assert _outage_reason(reason) is outage
