"""``audit_eval_figures`` (``modstream model eval``'s ``audit_fn_rate``): the shipped sample,
scored by the built model, audited through the API simulator's Message Batches on a scratch
database, gives a false-negative rate inside its own interval, from the posts the model allowed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modstream.commands.model_audit import SAMPLE_POSTS, audit_eval_figures
from pipeline.config import Settings

pytestmark = pytest.mark.integration


async def test_the_shipped_sample_gives_an_fn_rate_with_its_interval(
    stack_settings: Settings, model_dir: Path
) -> None:
    settings = stack_settings.model_copy(update={"model_dir": model_dir})
    figures = await audit_eval_figures(settings)
    posts = len(SAMPLE_POSTS.read_text("utf-8").splitlines())
    assert 0 < figures["audit_allowed"] < posts
    assert 0 < figures["audit_sampled"] <= figures["audit_allowed"]
    assert figures["audit_removed"] > 0  # the model removes some of the sample itself
    low, rate, high = (figures[f"audit_fn_rate{s}"] for s in ("_low", "", "_high"))
    assert 0.0 <= low <= rate <= high <= 1.0 and low < high
    assert figures["audit_simulated"] is True
    json.dumps(figures)  # the eval prints it in its JSON line
