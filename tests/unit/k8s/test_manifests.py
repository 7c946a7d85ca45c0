"""Every manifest in k8s/ validates offline, and its env names are real Settings fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pipeline.config import ENV_PREFIX, Settings

K8S = Path(__file__).resolve().parents[3] / "k8s"
KUBERNETES_VERSION = "1.37.0"
CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): Path(__file__).with_name("keda_scaledobject.schema.json")
}
NON_SETTINGS_ENV = {"HF_HUB_OFFLINE", "JOB_COMPLETION_INDEX"}


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


def test_there_are_manifests() -> None:
    kinds = {doc["kind"] for _, doc in documents()}
    assert {"Deployment", "ConfigMap", "Service", "ScaledObject"} <= kinds


@pytest.mark.parametrize(("name", "doc"), documents(), ids=[n for n, _ in documents()])
def test_manifest_validates(name: str, doc: dict[str, Any]) -> None:
    custom = CUSTOM_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if custom is not None:
        jsonschema.validate(doc, json.loads(custom.read_text()))
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def _env_names(doc: dict[str, Any]) -> list[str]:
    names: list[str] = []
    if doc["kind"] in {"ConfigMap", "Secret"}:
        names += list((doc.get("data") or {}).keys()) + list((doc.get("stringData") or {}).keys())
    spec = doc.get("spec", {})
    template = spec.get("jobTemplate", {}).get("spec", spec).get("template", {})
    for container in template.get("spec", {}).get("containers", []):
        names += [e["name"] for e in container.get("env", [])]
    return names


@pytest.mark.parametrize(("name", "doc"), documents(), ids=[n for n, _ in documents()])
def test_env_names_are_settings_fields(name: str, doc: dict[str, Any]) -> None:
    fields = {f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields}
    unknown = [n for n in _env_names(doc) if n not in fields and n not in NON_SETTINGS_ENV]
    assert not unknown, f"{name}: not Settings fields: {unknown}"


def test_scaled_object_targets_a_deployment_in_the_manifests() -> None:
    deployments = {doc["metadata"]["name"] for _, doc in documents() if doc["kind"] == "Deployment"}
    for _, doc in documents():
        if doc["kind"] == "ScaledObject":
            assert doc["spec"]["scaleTargetRef"]["name"] in deployments


def test_validation_rejects_a_typo() -> None:
    _, deployment = next((n, d) for n, d in documents() if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
