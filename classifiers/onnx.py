"""ONNX Runtime backend of :class:`~classifiers.base.Classifier` (the sole onnxruntime importer).

Execution providers are tried in preference order (TensorRT, CUDA, CPU by default); a provider that
is missing from this build or fails to initialise is skipped and the reason logged. Texts are sorted
by token length and cut into batches under a token budget, so padding stays small; results come back
in input order.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import structlog

from classifiers.base import ClassifierError, ModelNotFoundError, ProviderError
from classifiers.calibration import apply as calibrate
from classifiers.manifest import read_manifest
from classifiers.tokenize import TextEncoder


def _log() -> Any:
    """A fresh logger per call: the current structlog configuration (and test capture) applies."""
    return structlog.get_logger(__name__)


Variant = Literal["auto", "int8", "fp32", "fp16", "optimized"]
TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEFAULT_PROVIDERS: tuple[str, ...] = (TENSORRT, CUDA, CPU)
GPU_PROVIDERS = frozenset({TENSORRT, CUDA})


def _provider_options(name: str, model_dir: Path, max_tokens: int) -> dict[str, Any]:
    if name == TENSORRT:
        half = max_tokens // 2
        return {
            "trt_fp16_enable": True,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(model_dir / "trt_cache"),
            "trt_profile_min_shapes": "input_ids:1x1,attention_mask:1x1",
            "trt_profile_opt_shapes": f"input_ids:64x{half},attention_mask:64x{half}",
            "trt_profile_max_shapes": f"input_ids:512x{max_tokens},attention_mask:512x{max_tokens}",
        }
    return {}


def _gpu_driver_missing() -> str | None:
    """Why a GPU provider cannot work here (no NVIDIA driver library), or None if it may."""
    if ctypes.util.find_library("cuda") is None and not Path("/dev/nvidia0").exists():
        return "no NVIDIA driver found (libcuda missing, no /dev/nvidia0)"
    return None


def open_session(
    path: Path,
    providers: Sequence[str],
    threads: int,
    model_dir: Path,
    max_tokens: int,
    *,
    spin_wait: bool = False,
) -> tuple[ort.InferenceSession, str]:
    """The first provider (in order) that initialises; logs each one skipped and why.

    ``spin_wait`` lets the intra-op threads busy-wait between parallel sections. That is a few
    per cent faster for a process that only scores; in the real-time stage the spinning threads
    take the cores that decoding, Kafka and Postgres need (measured in ``bench realtime``).
    """
    available = set(ort.get_available_providers())
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
    options.log_severity_level = 3
    for name in providers:
        if name not in available:
            _log().warning(
                "onnx.provider_skipped",
                provider=name,
                reason="not available in this onnxruntime build",
            )
            continue
        missing_driver = _gpu_driver_missing() if name in GPU_PROVIDERS else None
        if missing_driver:
            _log().warning("onnx.provider_skipped", provider=name, reason=missing_driver)
            continue
        chain: list[Any] = [(name, _provider_options(name, model_dir, max_tokens))]
        if name != CPU:
            chain.append(CPU)
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=chain)
        except Exception as exc:  # noqa: BLE001 - ORT raises plain RuntimeError/Fail subclasses
            _log().warning(
                "onnx.provider_skipped", provider=name, reason=f"failed to initialise: {exc}"[:300]
            )
            continue
        active = session.get_providers()[0]
        if active != name:
            _log().warning(
                "onnx.provider_skipped",
                provider=name,
                reason=f"failed to initialise, session fell back to {active}",
            )
            continue
        _log().info("onnx.provider_selected", provider=name, model=path.name)
        return session, name
    raise ProviderError(f"none of the execution providers {list(providers)} could be initialised")


class OnnxClassifier:
    """Scores texts with one ONNX variant of a built model folder."""

    def __init__(
        self,
        model_dir: Path,
        variant: Variant = "auto",
        providers: Sequence[str] | None = None,
        threads: int = 0,
        max_batch_tokens: int | None = None,
        max_batch_size: int | None = None,
        spin_wait: bool = False,
    ) -> None:
        manifest = read_manifest(model_dir)
        self.model_dir = model_dir
        self.model_version: str = manifest["version"]
        self.labels: tuple[str, ...] = tuple(manifest["labels"])
        self.max_tokens: int = int(manifest["max_tokens"])
        self.thresholds: dict[str, dict[str, float]] = manifest.get("default_thresholds", {})
        #: Per-label temperatures fitted on held-out sources (``training.json`` → manifest);
        #: applied to every score, so a threshold means the same on every variant and platform.
        self.temperatures: dict[str, float] = manifest.get("calibration", {}).get(
            "temperatures", {}
        )
        self._encoder = TextEncoder(model_dir / manifest["tokenizer"]["file"], self.max_tokens)
        order = tuple(providers) if providers else DEFAULT_PROVIDERS
        if not order:
            raise ProviderError("empty provider list")
        gpu_possible = bool(GPU_PROVIDERS & set(ort.get_available_providers()))
        wants_gpu = any(p in GPU_PROVIDERS for p in order) and gpu_possible
        wants_gpu = wants_gpu and _gpu_driver_missing() is None
        chosen = variant if variant != "auto" else ("fp16" if wants_gpu else "int8")
        self._session, self.provider = open_session(
            self._variant_path(manifest, chosen),
            order,
            threads,
            model_dir,
            self.max_tokens,
            spin_wait=spin_wait,
        )
        if variant == "auto" and chosen == "fp16" and self.provider not in GPU_PROVIDERS:
            _log().info(
                "onnx.variant_switched", variant="int8", reason="no GPU provider initialised"
            )
            chosen = "int8"
            self._session, self.provider = open_session(
                self._variant_path(manifest, chosen),
                [CPU],
                threads,
                model_dir,
                self.max_tokens,
                spin_wait=spin_wait,
            )
        self.variant: str = chosen
        self._on_gpu = self.provider in GPU_PROVIDERS
        # Small sub-batches keep a 2-core CPU's caches warm (measured: 512 tokens/16 rows is ~2x
        # faster than 8192/256 on the dataset mix); GPUs want large ones.
        default_tokens, default_rows = (16_384, 256) if self._on_gpu else (512, 16)
        self._budget = max(max_batch_tokens or default_tokens, self.max_tokens)
        self._max_batch = max_batch_size or default_rows
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-classifier")
        _log().info(
            "onnx.classifier_ready",
            version=self.model_version,
            variant=chosen,
            provider=self.provider,
        )

    def _variant_path(self, manifest: dict[str, Any], variant: str) -> Path:
        name: str | None = manifest["variants"].get(variant)
        if name is None:
            raise ModelNotFoundError(
                f"variant {variant!r} not in manifest (have {sorted(manifest['variants'])})"
            )
        path = self.model_dir / name
        if not path.is_file():
            raise ModelNotFoundError(f"model file missing: {path} (rebuild with --force)")
        return path

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Token count per text after normalisation and truncation."""
        return [len(row) for row in self._encoder.encode(texts)]

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices sorted by length, cut so ``rows * longest <= token budget``."""
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            if current and (
                (len(current) + 1) * lengths[i] > self._budget or len(current) >= self._max_batch
            ):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _run(
        self, input_ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        if self._on_gpu:
            binding = self._session.io_binding()
            binding.bind_cpu_input("input_ids", input_ids)
            binding.bind_cpu_input("attention_mask", mask)
            binding.bind_output("probs", "cuda")
            self._session.run_with_iobinding(binding)
            out = binding.copy_outputs_to_cpu()[0]
        else:
            out = self._session.run(["probs"], {"input_ids": input_ids, "attention_mask": mask})[0]
        return np.asarray(out, dtype=np.float32)

    def predict_array(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Probabilities as an array ``(len(texts), len(labels))``, rows in input order."""
        if isinstance(texts, str):
            raise TypeError("predict() takes a sequence of texts, not a single string")
        result = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return result
        ids = self._encoder.encode(texts)
        for batch in self._batches([len(row) for row in ids]):
            input_ids, mask = self._encoder.pad([ids[i] for i in batch])
            try:
                out = self._run(input_ids, mask)
            except Exception as exc:
                raise ClassifierError(
                    f"inference failed on a batch of {len(batch)}: {exc}"
                ) from exc
            result[batch] = out
        clean = np.clip(np.nan_to_num(result, nan=0.0), 0.0, 1.0)
        return calibrate(clean, self.labels, self.temperatures)

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        rows = self.predict_array(texts)
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in rows]

    async def apredict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.predict, list(texts))

    def close(self) -> None:
        """Stop the inference thread (pending calls finish first)."""
        self._executor.shutdown(wait=True)


def load_classifier(
    model_dir: Path | str,
    variant: Variant = "auto",
    providers: Sequence[str] | None = None,
    threads: int | None = None,
    *,
    spin_wait: bool = False,
) -> OnnxClassifier:
    """Open a built model folder. ``auto`` = fp16 on a GPU provider, int8 on CPU."""
    env_threads = os.environ.get("MODSTREAM_ONNX_THREADS")
    count = threads if threads is not None else int(env_threads) if env_threads else 0
    return OnnxClassifier(
        Path(model_dir), variant=variant, providers=providers, threads=count, spin_wait=spin_wait
    )
