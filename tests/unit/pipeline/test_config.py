"""Settings: defaults load, and every error names the environment variable to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.errors import SettingsError
from pipeline.modelstore import load_model, load_model_and_policy


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODSTREAM_KAFKA_BOOTSTRAP_SERVERS", "bad"),
        ("MODSTREAM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092,host-without-port"),
        ("MODSTREAM_KAFKA_CONTROLLER_PORT", "0"),
        ("MODSTREAM_KAFKA_CONTROLLER_PORT", "not-a-port"),
        ("MODSTREAM_POSTGRES_DSN", "mysql://user:pw@127.0.0.1/db"),
        ("MODSTREAM_PARTITIONS_POSTS", "0"),
        ("MODSTREAM_LOG_LEVEL", "loud"),
        ("MODSTREAM_ANTHROPIC_MODEL", "claude-haiku-4-5\n"),  # it is every decision's version
        ("MODSTREAM_ANTHROPIC_MODEL", ""),
    ],
)
def test_error_names_the_bad_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert name in str(caught.value)


def test_listener_and_topics_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODSTREAM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:29092,127.0.0.2:29094")
    monkeypatch.setenv("MODSTREAM_PARTITIONS_POSTS", "4")

    settings = load_settings()

    assert settings.kafka_listener == ("127.0.0.1", 29092)
    assert settings.topic_partitions()[settings.topic_posts] == 4


def test_dumps_mask_the_dsn_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODSTREAM_POSTGRES_DSN", "postgresql://u:hunter2@127.0.0.1:5432/db")

    assert "hunter2" not in str(load_settings().as_dict())


def test_onnx_threads_reach_the_classifier_session(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    monkeypatch.setenv("MODSTREAM_ONNX_THREADS", "1")
    monkeypatch.setenv("MODSTREAM_MODEL_VARIANT", "int8")
    monkeypatch.setenv("MODSTREAM_MODEL_PROVIDERS", "CPUExecutionProvider")

    settings = load_settings()
    classifier, _ = load_model_and_policy(settings)
    try:
        options = classifier._session.get_session_options()  # type: ignore[attr-defined]
        assert settings.onnx_threads == 1
        assert options.intra_op_num_threads == 1
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    finally:
        classifier.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("env", "entry"), [(None, "0"), ("true", "1"), ("false", "0")])
def test_onnx_spin_wait_reaches_the_classifier_session(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, env: str | None, entry: str
) -> None:
    if env is not None:
        monkeypatch.setenv("MODSTREAM_ONNX_SPIN_WAIT", env)
    monkeypatch.setenv("MODSTREAM_MODEL_VARIANT", "int8")
    monkeypatch.setenv("MODSTREAM_MODEL_PROVIDERS", "CPUExecutionProvider")
    classifier = load_model(load_settings())
    try:
        options = classifier._session.get_session_options()  # type: ignore[attr-defined]
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == entry
    finally:
        classifier.close()  # type: ignore[attr-defined]
