"""Every rendered overlay (k8s/overlays/*, rendered by the Go kustomize) validates offline, strictly.

Besides schema validity: env names are real Settings fields, image tags are the Containerfile's,
each long-running stage has a PodDisruptionBudget, network policies keep metrics and Postgres off
the public path, secrets are references only, and the topic Job applies admin.py's settings.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import jsonschema
import kubernetes_validate
import pytest
from pydantic import SecretStr

from devtools.bench.scale_figures import (
    DRAIN_TARGET_SECONDS,
    GPU_REPLICA_POSTS_PER_S_ESTIMATE,
    MEASURED_CPU_REPLICA_POSTS_PER_S,
    lag_threshold,
)
from pipeline.config import ENV_PREFIX, Settings
from pipeline.kafka.admin import MAX_REPLICATION_FACTOR, topic_configs
from tests.unit.k8s.kustomize import VERSION as KUSTOMIZE_VERSION
from tests.unit.k8s.kustomize import render

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
OVERLAYS = ("cpu", "gpu")
KUBERNETES_VERSION = "1.37.0"
CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): Path(__file__).with_name("keda_scaledobject.schema.json")
}
NON_SETTINGS_ENV = {"HF_HUB_OFFLINE", "JOB_COMPLETION_INDEX", "REPLICATION_FACTOR"}
#: Secrets the manifests reference (created by the operator's secret manager; k8s/README.md).
SECRETS = {
    "modstream-postgres": {"dsn"},
    "modstream-anthropic": {"api-key"},
    "modstream-audit": {"sampling-key"},
}
KAFKA_IMAGE = "docker.io/apache/kafka:3.9.1"
#: KEDA lag thresholds per overlay. The real-time ones are derived from throughput (README
#: "Horizontal scaling"): measured on CPU by `modstream bench scale`, estimated on GPU.
LAG_THRESHOLDS = {
    overlay: {
        "modstream-realtime": str(lag_threshold(per_replica, DRAIN_TARGET_SECONDS)),
        "modstream-frontier": "200",
    }
    for overlay, per_replica in (
        ("cpu", MEASURED_CPU_REPLICA_POSTS_PER_S),
        ("gpu", GPU_REPLICA_POSTS_PER_S_ESTIMATE),
    )
}


SECRET_FIELDS = {
    f"{ENV_PREFIX}{name.upper()}"
    for name, field in Settings.model_fields.items()
    if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
}


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(K8S / "overlays" / overlay))


def objects() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (overlay, f"{overlay}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for overlay in OVERLAYS
        for doc in rendered(overlay)
    ]


def find(overlay: str, kind: str, name: str) -> dict[str, Any]:
    return next(d for d in rendered(overlay) if d["kind"] == kind and d["metadata"]["name"] == name)


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec", {})
    template = spec.get("jobTemplate", {}).get("spec", spec).get("template")
    return template["spec"] if template else None


def pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    spec = doc["spec"]
    template = spec.get("jobTemplate", {}).get("spec", spec)["template"]
    return dict(template["metadata"]["labels"])


def containers(overlay: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in rendered(overlay):
        spec = pod_spec(doc)
        for container in (spec or {}).get("containers", []) + (spec or {}).get(
            "initContainers", []
        ):
            yield doc, container


def test_secret_fields_are_known() -> None:
    assert {"MODSTREAM_POSTGRES_DSN", "MODSTREAM_ANTHROPIC_API_KEY"} <= SECRET_FIELDS


def test_overlays_render_the_whole_application() -> None:
    for overlay in OVERLAYS:
        kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered(overlay)}
        assert {
            ("Deployment", "modstream-realtime"),
            ("Deployment", "modstream-frontier"),
            ("Deployment", "modstream-review"),
            ("CronJob", "modstream-replay-nightly"),
            ("CronJob", "modstream-audit-nightly"),
            ("Job", "modstream-replay-backfill"),
            ("Job", "modstream-model-build"),
            ("Job", "modstream-topics"),
            ("ConfigMap", "modstream-config"),
            ("ScaledObject", "modstream-realtime"),
            ("ScaledObject", "modstream-frontier"),
        } <= kinds


@pytest.mark.parametrize(("overlay", "name", "doc"), objects(), ids=[n for _, n, _ in objects()])
def test_rendered_object_validates(overlay: str, name: str, doc: dict[str, Any]) -> None:
    custom = CUSTOM_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if custom is not None:
        jsonschema.validate(doc, json.loads(custom.read_text()))
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_validation_rejects_a_typo() -> None:
    broken = json.loads(json.dumps(find("cpu", "Deployment", "modstream-realtime")))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_env_names_are_settings_fields(overlay: str) -> None:
    fields = {f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields}
    names = list(find(overlay, "ConfigMap", "modstream-config")["data"])
    names += [e["name"] for _, c in containers(overlay) for e in c.get("env", [])]
    unknown = [n for n in names if n not in fields and n not in NON_SETTINGS_ENV]
    assert not unknown, f"not Settings fields: {unknown}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_the_containerfile_tags(overlay: str) -> None:
    tag = re.compile(rf"modstream:{re.escape(version())}-(cpu|gpu|train)")
    for doc, container in containers(overlay):
        image = container["image"]
        if image == KAFKA_IMAGE:
            assert doc["metadata"]["name"] == "modstream-topics"
            continue
        match = tag.fullmatch(image)
        assert match, f"{doc['metadata']['name']}: {image} is not a Containerfile tag"
        wants_gpu = "nvidia.com/gpu" in container.get("resources", {}).get("limits", {})
        assert (match.group(1) == "gpu") == wants_gpu, f"{doc['metadata']['name']}: {image}"
        wants_train = doc["metadata"]["name"] == "modstream-model-build"
        assert (match.group(1) == "train") == wants_train, f"{doc['metadata']['name']}: {image}"


def test_gpu_overlay_puts_realtime_on_gpu_nodes_and_cpu_overlay_does_not() -> None:
    gpu = pod_spec(find("gpu", "Deployment", "modstream-realtime"))
    cpu = pod_spec(find("cpu", "Deployment", "modstream-realtime"))
    assert gpu and cpu
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu[
        "tolerations"
    ]
    gpu_env = {e["name"]: e.get("value") for e in gpu["containers"][0]["env"]}
    assert gpu_env["MODSTREAM_MODEL_VARIANT"] == "fp16"
    assert gpu_env["MODSTREAM_MODEL_PROVIDERS"].startswith("TensorrtExecutionProvider,")
    assert cpu["nodeSelector"] == {"modstream/pool": "realtime-cpu"}
    cpu_env = {e["name"]: e.get("value") for e in cpu["containers"][0]["env"]}
    assert cpu_env["MODSTREAM_MODEL_PROVIDERS"] == "CPUExecutionProvider"
    assert "nvidia.com/gpu" not in json.dumps(cpu)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaled_objects_keep_their_thresholds_and_partition_bounds(overlay: str) -> None:
    config = find(overlay, "ConfigMap", "modstream-config")["data"]
    partitions = {
        config["MODSTREAM_TOPIC_POSTS"]: int(config["MODSTREAM_PARTITIONS_POSTS"]),
        config["MODSTREAM_TOPIC_BORDERLINE"]: int(config["MODSTREAM_PARTITIONS_BORDERLINE"]),
    }
    deployments = {d["metadata"]["name"] for d in rendered(overlay) if d["kind"] == "Deployment"}
    scaled = [d for d in rendered(overlay) if d["kind"] == "ScaledObject"]
    assert {d["metadata"]["name"] for d in scaled} == set(LAG_THRESHOLDS[overlay])
    for doc in scaled:
        assert doc["spec"]["scaleTargetRef"]["name"] in deployments
        trigger = doc["spec"]["triggers"][0]["metadata"]
        assert trigger["lagThreshold"] == LAG_THRESHOLDS[overlay][doc["metadata"]["name"]]
        assert doc["spec"]["maxReplicaCount"] <= partitions[trigger["topic"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_disruption_budget(overlay: str) -> None:
    pdbs = [d for d in rendered(overlay) if d["kind"] == "PodDisruptionBudget"]
    for deployment in (d for d in rendered(overlay) if d["kind"] == "Deployment"):
        labels = pod_labels(deployment)
        covering = [
            p
            for p in pdbs
            if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
            and p["spec"]["selector"]["matchLabels"]
        ]
        assert len(covering) == 1, deployment["metadata"]["name"]
        spec = covering[0]["spec"]
        # A budget that forbids every eviction would block node drains forever.
        replicas = deployment["spec"]["replicas"]
        assert spec.get("maxUnavailable", 1) >= 1 and spec.get("minAvailable", 0) < replicas


def _policies(overlay: str) -> list[dict[str, Any]]:
    return [d for d in rendered(overlay) if d["kind"] == "NetworkPolicy"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default(overlay: str) -> None:
    deny = [p for p in _policies(overlay) if p["metadata"]["name"] == "modstream-default-deny"]
    assert len(deny) == 1
    spec = deny[0]["spec"]
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "modstream"}
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in spec and "egress" not in spec
    for doc in rendered(overlay):
        if pod_spec(doc) is not None:
            assert pod_labels(doc)["app.kubernetes.io/part-of"] == "modstream"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_are_open_to_prometheus_only(overlay: str) -> None:
    rules = [
        (p["spec"]["podSelector"]["matchLabels"], rule)
        for p in _policies(overlay)
        for rule in p["spec"].get("ingress", [])
    ]
    for selector, rule in rules:
        ports = {port["port"] for port in rule["ports"]}
        peers = rule["from"]
        if "metrics" in ports:
            assert ports == {"metrics"}
            assert peers == [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    },
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                }
            ]
        else:  # the one public path: the review UI behind the ingress controller
            assert selector == {"app.kubernetes.io/name": "modstream-review"}
            assert ports == {"http"}
            assert all("ipBlock" not in peer for peer in peers)
    assert any("metrics" in {p["port"] for p in r["ports"]} for _, r in rules)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_is_reached_in_cluster_only(overlay: str) -> None:
    egress = [r for p in _policies(overlay) for r in p["spec"].get("egress", [])]
    postgres = [r for r in egress if 5432 in {port["port"] for port in r["ports"]}]
    assert postgres == [
        {
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "db"}}}],
            "ports": [{"protocol": "TCP", "port": 5432}],
        }
    ]
    for rule in egress:
        if any("ipBlock" in peer for peer in rule["to"]):  # the internet: HTTPS only
            assert [port["port"] for port in rule["ports"]] == [443]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_references_only(overlay: str) -> None:
    assert not [d for d in rendered(overlay) if d["kind"] == "Secret"]
    for doc, container in containers(overlay):
        name = doc["metadata"]["name"]
        for source in container.get("envFrom", []):
            assert "secretRef" not in source, f"{name}: whole-Secret envFrom"
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ref["key"] in SECRETS.get(ref["name"], set()), f"{name}: {ref}"
            assert env["name"] not in SECRET_FIELDS or ref is not None, (
                f"{name}: {env['name']} must come from a secretKeyRef"
            )
    assert not set(find(overlay, "ConfigMap", "modstream-config")["data"]) & SECRET_FIELDS
    readme = (K8S / "README.md").read_text()
    for secret, keys in SECRETS.items():
        assert f"`{secret}`" in readme and all(f"`{key}`" in readme for key in keys)


def _topic_rows(overlay: str) -> dict[str, tuple[int, dict[str, str]]]:
    rows: dict[str, tuple[int, dict[str, str]]] = {}
    for line in find(overlay, "ConfigMap", "modstream-topics")["data"]["topics"].splitlines():
        name, partitions, configs = line.split()
        rows[name] = (int(partitions), dict(kv.split("=", 1) for kv in configs.split(",")))
    return rows


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topic_job_applies_the_production_topic_settings(
    overlay: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    for key, value in find(overlay, "ConfigMap", "modstream-config")["data"].items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    expected = topic_configs(settings, MAX_REPLICATION_FACTOR)
    rows = _topic_rows(overlay)
    assert {name: partitions for name, (partitions, _) in rows.items()} == (
        settings.topic_partitions()
    )
    assert {name: configs for name, (_, configs) in rows.items()} == expected
    for _, configs in rows.values():
        assert configs["min.insync.replicas"] == "2"
        assert configs["cleanup.policy"] == "delete"
    job = pod_spec(find(overlay, "Job", "modstream-topics"))
    assert job is not None
    env = {e["name"]: e for e in job["containers"][0]["env"]}
    assert env["REPLICATION_FACTOR"]["value"] == "3"
    script = find(overlay, "ConfigMap", "modstream-topics")["data"]["create-topics.sh"]
    assert '--replication-factor "$REPLICATION_FACTOR"' in script
    assert "--if-not-exists" in script and "--add-config" in script


def test_ci_installs_the_pinned_kustomize() -> None:
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert f"KUSTOMIZE_VERSION={KUSTOMIZE_VERSION}" in lines
    assert lines[-1] == "make test"
