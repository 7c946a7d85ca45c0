"""Prometheus metrics of the budgets (names fixed: alerts are written against them).

* ``modstream_budget_exhausted{scope}``: 1 while this process finds the scope's cap reached;
* ``modstream_budget_spent_usd{scope}`` and ``modstream_budget_cap_usd{scope}``: the window's
  spend (all replicas, as last read, plus this process's unreported part) and cap, USD scopes;
* ``modstream_budget_refusals_total{scope}``: calls refused by the scope.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge

from pipeline.core.budget import BudgetScope, units_usd

# Keyed by the registry itself, weakly: an id() key is reused once a registry is collected, and
# a new registry would be handed the collectors of a dead one.
_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, BudgetMetrics] = WeakKeyDictionary()


class BudgetMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.exhausted = Gauge(
            "modstream_budget_exhausted",
            "1 while the scope's cap is reached (calls take the fallback / are refused), else 0.",
            ["scope"],
            registry=registry,
        )
        self.spent_usd = Gauge(
            "modstream_budget_spent_usd",
            "USD spent in the scope's current window, all replicas together.",
            ["scope"],
            registry=registry,
        )
        self.cap_usd = Gauge(
            "modstream_budget_cap_usd",
            "USD cap of the scope's window.",
            ["scope"],
            registry=registry,
        )
        self.refusals = Counter(
            "modstream_budget_refusals",
            "Calls refused by a budget (cap reached or budget store unavailable).",
            ["scope"],
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> BudgetMetrics:
        """One set per registry (a registry refuses the same name twice)."""
        found = _BY_REGISTRY.get(registry)
        if found is None:
            found = _BY_REGISTRY[registry] = cls(registry)
        return found

    def start(self, scope: BudgetScope, cap_units: int) -> None:
        self.exhausted.labels(scope.value).set(0)
        self.refusals.labels(scope.value)
        if scope.in_usd:
            self.cap_usd.labels(scope.value).set(units_usd(cap_units))
            self.spent_usd.labels(scope.value).set(0)

    def spent(self, scope: BudgetScope, units: int) -> None:
        if scope.in_usd:
            self.spent_usd.labels(scope.value).set(units_usd(units))

    def refused(self, scope: BudgetScope, *, exhausted: bool) -> None:
        self.refusals.labels(scope.value).inc()
        if exhausted:
            self.exhausted.labels(scope.value).set(1)

    def available(self, scope: BudgetScope) -> None:
        self.exhausted.labels(scope.value).set(0)
