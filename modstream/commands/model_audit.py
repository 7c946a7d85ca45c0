"""``audit_fn_rate`` for ``modstream model eval``: a replay of the shipped sample with audit
sampling on.

:func:`audit_eval_figures` needs the local stack's **Postgres** (``modstream up``; a scratch
database is created and dropped) and the built model; it starts the **API simulator**
(:mod:`devtools.sim`) itself unless ``use_simulator=False`` and a real API key is configured.
Kafka is not used (the eval publishes nothing). Steps:

1. score ``devtools/demo/sample_posts.jsonl`` with the built model, the policy in force and its
   language gate, as the real-time stage does, and store the posts and real-time decisions;
2. run the nightly audit (:class:`replay.audit_sample.AuditJob`) over them with
   :data:`EVAL_RATES` per stratum of the configured edges: 240 posts at the production 0.5 %
   would audit one or two, so the eval audits half of the lowest stratum and all of the others;
3. read :func:`pipeline.store.audit_samples.audit_estimates` for the window: the ``any`` row.

With the simulator the figure measures the model against the simulator's keyword rule
(``audit_simulated`` says so), not against a frontier model.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr
from rich.console import Console

from pipeline.config import Settings

SAMPLE_POSTS = Path(__file__).resolve().parents[2] / "devtools" / "demo" / "sample_posts.jsonl"
#: Audit rates of the eval, per stratum (lowest scores first; the last repeats for more strata).
EVAL_RATES: tuple[float, ...] = (0.5, 1.0, 1.0, 1.0)

__all__ = ["EVAL_RATES", "SAMPLE_POSTS", "audit_eval_figures"]


async def _store_realtime(
    settings: Settings, dsn: str, posts: list[dict[str, Any]], decided_at: datetime
) -> None:
    """Score ``posts`` as the real-time stage does and store the posts and decisions."""
    from pipeline.core.decisions import realtime_decision, rounded_scores
    from pipeline.core.language import GATED_OUTCOME
    from pipeline.core.policy import evaluate
    from pipeline.language_gate import held_back, score_passed
    from pipeline.modelstore import load_model_and_policy
    from pipeline.store.pg import PostgresStore
    from schemas import PostEvent

    events = [
        PostEvent(
            post_id=p["post_id"], author_id=p["author_id"], text=p["text"], ingested_at=decided_at
        )
        for p in posts
    ]
    classifier, policy = load_model_and_policy(settings)
    try:
        held, _ = await held_back(policy, [e.text for e in events])
        scores = await score_passed(classifier, [e.text for e in events], held)
    finally:
        classifier.close()
    decisions = []
    for event, post_scores, why in zip(events, scores, held, strict=True):
        outcome = GATED_OUTCOME if post_scores is None else evaluate(policy, post_scores)
        decisions.append(
            realtime_decision(
                event,
                rounded_scores(post_scores or {}),
                outcome,
                model_version=classifier.model_version,
                policy_version=policy.version,
                decided_at=decided_at,
                gate_reason=why,
            )
        )
    store = await PostgresStore.connect(dsn)
    try:
        await store.save_posts([(e, "eval", 0, i) for i, e in enumerate(events)])
        await store.write_decisions(decisions)
    finally:
        await store.close()


async def audit_eval_figures(
    settings: Settings,
    *,
    sample_path: Path = SAMPLE_POSTS,
    rates: tuple[float, ...] = EVAL_RATES,
    use_simulator: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """``audit_fn_rate`` with ``_low`` and ``_high`` (95 %), plus the prevalence among allowed
    posts and the sample's size, from an audited replay of ``sample_path`` (see the module doc).
    """
    from devtools.sim import SimConfig, SimulatorServer
    from devtools.stack.postgres import scratch_database
    from modstream.roots.audit import limits
    from pipeline.core.audit_sampling import SamplingPlan
    from pipeline.frontier.client import FrontierClient
    from pipeline.frontier.config import ClientConfig
    from pipeline.store.audit_samples import audit_estimates
    from replay.audit_sample import AuditJob, AuditRequest
    from replay.outage import ReplayGuard

    text = await asyncio.to_thread(sample_path.read_text, "utf-8")
    posts = [json.loads(line) for line in text.splitlines() if line.strip()]
    strata = len(settings.audit_edges) + 1
    plan = SamplingPlan(
        edges=settings.audit_edges,
        rates=tuple(rates[min(i, len(rates) - 1)] for i in range(strata)),
        key=settings.audit_key.get_secret_value(),
    )
    decided_at = datetime.now(UTC) - timedelta(minutes=1)
    async with AsyncExitStack() as stack:
        dsn = await stack.enter_async_context(
            scratch_database(settings, f"audit_eval_{uuid.uuid4().hex[:10]}")
        )
        config = settings.model_copy(update={"postgres_dsn": SecretStr(dsn)})
        if use_simulator or not settings.anthropic_api_key.get_secret_value():
            sim = await stack.enter_async_context(
                SimulatorServer(SimConfig(latency_p50_s=0.01, latency_p99_s=0.02, seed=13))
            )
            config = config.model_copy(
                update={
                    "anthropic_base_url": sim.url,
                    "anthropic_api_key": SecretStr("sim-key"),
                    "frontier_batch_poll_initial_seconds": 0.2,
                    "frontier_batch_poll_max_seconds": 0.5,
                }
            )
        await _store_realtime(config, dsn, posts, decided_at)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        stack.push_async_callback(pool.close)
        client = await stack.enter_async_context(FrontierClient(ClientConfig.from_settings(config)))
        guard = ReplayGuard(max_outage_seconds=60.0, backoff_cap_seconds=5.0)

        async def publish(*_outputs: object) -> None:
            return None  # the eval publishes nothing

        since, until = decided_at - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1)
        job = AuditJob(
            plan,
            AuditRequest(since=since, until=until, progress=console is not None),
            limits(config),
            pool=pool,
            guard=guard,
            client=client,
            publish=publish,
            console=console,
        )
        report = await job.run()
        doc = await audit_estimates(pool, since, until, edges=plan.edges)
    overall = doc["overall"]["any"]
    return {
        "audit_fn_rate": overall["fn_rate"],
        "audit_fn_rate_low": overall["fn_rate_low"],
        "audit_fn_rate_high": overall["fn_rate_high"],
        "audit_prevalence": overall["prevalence"],
        "audit_allowed": overall["allowed"],
        "audit_sampled": report["sampled"],
        "audit_found": overall["found"],
        "audit_removed": overall["removed"],
        "audit_simulated": bool(report.get("simulated")),
    }


def main() -> (
    None
):  # pragma: no cover - a developer's shortcut: python -m modstream.commands.model_audit
    from pipeline.config import load_settings

    print(json.dumps(asyncio.run(audit_eval_figures(load_settings()))))


if __name__ == "__main__":  # pragma: no cover
    main()
