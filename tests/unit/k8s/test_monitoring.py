"""k8s/monitoring: the alert rules and the Grafana dashboard, checked offline with real validators.

- ``promtool check rules`` (lint included) and ``promtool test rules`` on the rules and their unit
  tests; every alert has a test where it fires and one where it stays quiet.
- The dashboard decodes strictly into the Grafana Foundation SDK's dashboard model
  (validate-dashboard), and every panel query parses with promtool.
- Every metric a rule or a panel reads is one the code exports (names resolved the way
  prometheus_client exposes them), or the Kafka exporter's lag metric.
- Both files reach the cluster through the overlays, and k8s/README.md has a runbook entry per alert.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

import pipeline.realtime.metrics  # noqa: F401  (registers the real-time stage's collectors)
from pipeline.availability import _metrics as guard_metrics
from pipeline.frontier.metrics import FrontierMetrics
from pipeline.review.metrics import ReviewMetrics
from tests.unit.k8s import monitoring_tools
from tests.unit.k8s.kustomize import render
from tests.unit.k8s.monitoring_tools import dashboard_validator, promtool, run

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
MONITORING = K8S / "monitoring"
RULES = MONITORING / "modstream.rules.yaml"
RULE_TESTS = MONITORING / "modstream.rules.test.yaml"
DASHBOARD = MONITORING / "modstream-dashboard.json"
OVERLAYS = ("cpu", "gpu")
#: Where the exported metrics are defined (devtools' simulator is not deployed).
METRIC_SOURCES = ("pipeline", "modstream", "replay")

#: Metrics of the Kafka exporter (danielqsj/kafka_exporter), the consumer-lag source; k8s/README.md.
EXTERNAL = {"kafka_consumergroup_lag"}
#: The budget metrics the alerts are written against (pipeline/budget/metrics.py).
BUDGET = {
    "modstream_budget_exhausted",
    "modstream_budget_spent_usd",
    "modstream_budget_cap_usd",
    "modstream_budget_refusals_total",
}
SEVERITIES = {"critical", "warning"}

PROMQL_WORDS = {
    # operators and modifiers
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan",
}  # fmt: skip


# --- metric names ------------------------------------------------------------------------------


def _exposed(kind: str, name: str) -> set[str]:
    """The sample names prometheus_client exposes for a collector ``kind(name, ...)``."""
    if kind == "Counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind == "Histogram":
        return {f"{name}{s}" for s in ("_bucket", "_sum", "_count", "_created")}
    if kind == "Summary":
        return {f"{name}{s}" for s in ("_sum", "_count", "_created")}
    if kind == "Info":
        return {f"{name.removesuffix('_info')}_info"}
    return {name}


def _collector_calls(tree: ast.AST) -> Iterator[tuple[str, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if kind not in {"Counter", "Gauge", "Histogram", "Summary", "Info"}:
            continue
        arg = node.args[0] if node.args else None
        arg = next((k.value for k in node.keywords if k.arg == "name"), arg)
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            yield kind, arg.value


@functools.cache
def exported_metrics() -> frozenset[str]:
    """Every sample name the code can expose: each prometheus_client collector whose name is a
    literal, in the production packages."""
    names: set[str] = set()
    for package in METRIC_SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text()
            if "prometheus_client" not in source:  # collections.Counter is not a metric
                continue
            for kind, name in _collector_calls(ast.parse(source, str(path))):
                names |= _exposed(kind, name)
    return frozenset(names)


def _without(expr: str, pattern: str) -> str:
    return re.sub(pattern, " ", expr)


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, label
    names (in ``{...}`` or ``by (...)``-style lists) or parts of durations and numbers."""
    text = _without(expr, r'"(?:[^"\\]|\\.)*"')  # strings
    text = _without(text, r"\{[^}]*\}")  # label matchers
    text = _without(text, r"\[[^\]]*\]")  # ranges and subqueries
    text = _without(text, r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
    names = set()
    for match in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (reason) (rate(a_total{reason=~"x|y", stage="b"}[5m] offset 1h)) '
        "/ on(scope) group_left(mode) max_over_time(b_gauge[1h:1m]) > 2 * 1e3 and c:rec"
        " > bool 0.5 unless absent(d) or vector(1) + time() % 86400"
    )
    assert metric_names(expr) == {"a_total", "b_gauge", "c:rec", "d"}


def test_exported_names_resolve_like_prometheus_client() -> None:
    """The literal-name scan and prometheus_client agree on what the collectors expose."""
    frontier, guard = CollectorRegistry(), CollectorRegistry()
    FrontierMetrics(frontier)
    guard_metrics(guard)
    live = set()
    for registry in (frontier, guard, ReviewMetrics().registry, REGISTRY):
        for family in registry.collect():
            if family.name.startswith(("modstream_", "review_", "realtime_")):
                live |= _exposed(family.type.capitalize(), family.name)
    assert {n for n in live if n.startswith("realtime_")}, "pipeline.realtime.metrics not seen"
    assert live <= exported_metrics()
    assert "modstream_frontier_sla_total" in exported_metrics()
    assert "review_oldest_unclaimed_severe_age_seconds" in exported_metrics()


# --- the rules ---------------------------------------------------------------------------------


@functools.cache
def rule_groups() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load(RULES.read_text())["groups"])


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    result = run(promtool(), "check", "rules", "--lint=all", "--lint-fatal", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run(promtool(), "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_catches_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rules.yaml"
    broken.write_text(RULES.read_text().replace("[10m]))", "[10m]]))", 1))
    result = run(promtool(), "check", "rules", str(broken))
    assert result.returncode != 0


def test_every_alert_fires_and_stays_quiet_in_the_unit_tests() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for rule in alert_rules():
        name, labels = rule["alert"], rule["labels"]
        fired = [
            expected["exp_labels"]
            for case in cases
            if case["alertname"] == name
            for expected in case["exp_alerts"]
        ]
        assert any(labels.items() <= got.items() for got in fired), f"{name} {labels}: never fires"
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in cases), (
            f"{name}: never shown quiet"
        )


def test_alerts_carry_severity_summary_and_a_runbook_entry() -> None:
    readme = (K8S / "README.md").read_text()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["annotations"]["runbook"] == f"k8s/README.md#{name.lower()}", name
        assert re.search(rf"^#### {name}$", readme, re.MULTILINE), f"{name}: no runbook entry"
        assert rule.get("for"), f"{name}: fires on a single evaluation"


def _allowed_metrics() -> set[str]:
    return set(exported_metrics()) | EXTERNAL


def test_rules_read_only_exported_metrics() -> None:
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = names - _allowed_metrics()
        assert not unknown, f"{rule['alert']}: {sorted(unknown)} are not exported by the code"


def test_the_budget_metrics_are_exported_and_used() -> None:
    assert exported_metrics() >= BUDGET
    read = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    read |= {name for _, expr in queries() for name in metric_names(expr)}
    assert read >= BUDGET


def test_lag_alerts_name_the_deployed_consumer_groups() -> None:
    overlay = render(K8S / "overlays" / "cpu")
    config = next(d for d in overlay if d["metadata"]["name"] == "modstream-config")["data"]
    frontier = next(
        d
        for d in overlay
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("frontier")
    )
    env = {
        e["name"]: e.get("value")
        for e in frontier["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    groups = {config["MODSTREAM_REALTIME_GROUP_ID"], env["MODSTREAM_FRONTIER_GROUP_ID"]}
    exprs = [r["expr"] for r in alert_rules() if "kafka_consumergroup_lag" in r["expr"]]
    named = {g for e in exprs for g in re.findall(r'consumergroup="([^"]+)"', e)}
    assert named == groups


# --- the dashboard -----------------------------------------------------------------------------


@functools.cache
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries() -> list[tuple[str, str]]:
    return [
        (f"{p['title']}/{t['refId']}", t["expr"]) for p in panels() for t in p.get("targets", [])
    ]


def test_dashboard_validates_against_the_sdk_model() -> None:
    result = run(dashboard_validator(), str(DASHBOARD))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_validator_rejects_a_typo_and_an_unknown_panel(tmp_path: Path) -> None:
    board = copy.deepcopy(dashboard())
    timeseries = next(p for p in board["panels"] if p["type"] == "timeseries")
    timeseries["options"]["legendd"] = {}
    timeseries["targets"][0]["exprr"] = "up"
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps(board))
    result = run(dashboard_validator(), str(typo))
    assert result.returncode == 1
    assert "unexpected field 'legendd'" in result.stdout
    assert "unexpected field 'exprr'" in result.stdout

    board = copy.deepcopy(dashboard())
    next(p for p in board["panels"] if p["type"] == "stat")["type"] = "graphh"
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(board))
    result = run(dashboard_validator(), str(unknown))
    assert result.returncode == 1 and 'type "graphh" has no schema' in result.stdout


def test_panel_queries_parse_with_promtool(tmp_path: Path) -> None:
    """Each query becomes a recording rule of a throwaway rule file that promtool checks."""
    rules = [
        {"record": f"modstream:panel_query:{n}", "expr": expr}
        for n, (_, expr) in enumerate(queries())
    ]
    path = tmp_path / "panels.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = run(promtool(), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


def test_panel_queries_read_only_exported_metrics() -> None:
    assert queries()
    for where, expr in queries():
        assert "$" not in expr, f"{where}: template variables would not parse"
        names = metric_names(expr)
        assert names, where
        unknown = names - _allowed_metrics()
        assert not unknown, f"{where}: {sorted(unknown)} are not exported by the code"


def test_dashboard_covers_every_alert_and_the_cost_signals() -> None:
    descriptions = " ".join(p.get("description", "") for p in panels())
    for rule in alert_rules():
        assert rule["alert"] in descriptions, f"{rule['alert']}: no panel shows its signal"
    exprs = " ".join(expr for _, expr in queries())
    for metric in ("modstream_frontier_cost_usd_total", "modstream_frontier_tokens_total"):
        assert metric in exprs


def test_dashboard_layout_and_datasource() -> None:
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    cells: set[tuple[int, int]] = set()
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & area, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])


# --- delivery ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_ship_the_rules_and_the_dashboard(overlay: str) -> None:
    maps = {
        d["metadata"]["name"]: d
        for d in render(K8S / "overlays" / overlay)
        if d["kind"] == "ConfigMap"
    }
    rules = maps["modstream-prometheus-rules"]
    assert rules["data"] == {RULES.name: RULES.read_text()}
    board = maps["modstream-grafana-dashboard"]
    assert board["data"] == {DASHBOARD.name: DASHBOARD.read_text()}
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_ci_installs_the_pinned_promtool_and_builds_the_validator() -> None:
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert f"PROMTOOL_VERSION={monitoring_tools.PROMTOOL_VERSION}" in lines
    assert any("k8s/monitoring/validate" in line for line in lines)
    assert lines[-1] == "make test"


def test_readme_names_the_validators() -> None:
    readme = (K8S / "README.md").read_text()
    assert f"promtool` (Prometheus module {monitoring_tools.PROMTOOL_VERSION}" in readme
    assert "grafana-foundation-sdk/go v0.0.22" in readme
    go_mod = (monitoring_tools.VALIDATOR_SOURCE / "go.mod").read_text()
    assert "github.com/grafana/grafana-foundation-sdk/go v0.0.22" in go_mod
