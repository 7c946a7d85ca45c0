"""Prometheus metrics of the frontier stage (one registry per process, passed in)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipeline.core.cost import CallMode, TokenUsage

_TIME_LEFT_BUCKETS = (-1.0, -0.25, 0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)
_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 8.0)


class FrontierMetrics:
    """Counters and histograms; SLA attainment = ``sla{outcome="within"}`` / ``sla`` total."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.decisions = Counter(
            "modstream_frontier_decisions",
            "Decisions published, by stage (frontier or fallback) and verdict.",
            ["stage", "verdict"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "modstream_frontier_fallbacks",
            "Fallback decisions by reason (deadline, provider_error:<kind>, circuit_open, ...).",
            ["reason"],
            registry=registry,
        )
        self.sla = Counter(
            "modstream_frontier_sla",
            "Decisions by SLA outcome: within (decided before the deadline) or late.",
            ["outcome"],
            registry=registry,
        )
        self.time_left = Histogram(
            "modstream_frontier_time_left_seconds",
            "Seconds left before the deadline when the decision was made (negative: late).",
            buckets=_TIME_LEFT_BUCKETS,
            registry=registry,
        )
        self.provider_errors = Counter(
            "modstream_frontier_provider_errors",
            "Failed provider attempts by kind.",
            ["kind"],
            registry=registry,
        )
        self.call_seconds = Histogram(
            "modstream_frontier_call_seconds",
            "Duration of successful provider calls.",
            buckets=_CALL_BUCKETS,
            registry=registry,
        )
        self.posts_per_call = Histogram(
            "modstream_frontier_posts_per_call",
            "Posts in each grouped provider call (MODSTREAM_FRONTIER_POSTS_PER_CALL > 1).",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16),
            registry=registry,
        )
        self.circuit_state = Gauge(
            "modstream_frontier_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            registry=registry,
        )
        self.in_flight = Gauge(
            "modstream_frontier_in_flight", "Requests being decided now.", registry=registry
        )
        self.dead_letters = Counter(
            "modstream_frontier_dead_letters",
            "Requests dead-lettered, by reason (invalid_json, schema_violation, oversize, "
            "unstorable, unpublishable, ...).",
            ["reason"],
            registry=registry,
        )
        self.unwritten = Gauge(
            "modstream_frontier_unwritten",
            "Decisions published but not yet written to Postgres (grows while it is down).",
            registry=registry,
        )
        self.tokens = Counter(
            "modstream_frontier_tokens",
            "Tokens billed, by call mode and kind (input, output, cache_write, cache_read).",
            ["mode", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            "modstream_frontier_cost_usd", "USD spent, by call mode.", ["mode"], registry=registry
        )

    def record_usage(self, mode: CallMode, usage: TokenUsage, usd: float) -> None:
        """A :data:`~pipeline.frontier.client.UsageSink`."""
        for kind, count in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_write", usage.cache_creation_input_tokens),
            ("cache_read", usage.cache_read_input_tokens),
        ):
            self.tokens.labels(mode.value, kind).inc(count)
        self.cost.labels(mode.value).inc(usd)
