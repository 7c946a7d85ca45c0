"""The torch model: MiniLM encoder, masked mean pooling, MLP head, sigmoid per category.

Artifacts hold only what training changed: the head, and (when fine-tuned) the top encoder
layers as fp16 safetensors. :func:`load_model` rebuilds the full model from the MiniLM wheel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import BertModel

from classifiers.base import ModelBuildError
from classifiers.encoder import base_model_dir
from classifiers.layout import ARTIFACTS_DIR, ENCODER_FILE, HEAD_FILE, META_FILE, read_meta


def make_head(hidden: int, n_labels: int, width: int) -> nn.Sequential:
    """Small MLP head on the pooled sentence embedding (outputs logits)."""
    return nn.Sequential(
        nn.Dropout(0.1), nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, n_labels)
    )


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors over the attention mask (padding ignored)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def padded_ids(
    token_ids: Sequence[Sequence[int]], idx: Iterable[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of the texts ``idx``, right-padded with 0 to the longest, and their mask."""
    rows = [token_ids[i] for i in idx]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for row, tokens in enumerate(rows):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    return ids, mask


def extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention mask ``(B, 1, 1, L)``: 0 for tokens, a large negative for padding."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layers(
    encoder: BertModel, hidden: torch.Tensor, mask: torch.Tensor, start: int
) -> torch.Tensor:
    """Run encoder layers ``start..end`` on cached hidden states."""
    ext = extended_mask(mask, hidden.dtype)
    for layer in encoder.encoder.layer[start:]:
        hidden = layer(hidden, attention_mask=ext)[0]
    return hidden


def load_encoder(attn: str = "eager") -> BertModel:
    """The pretrained MiniLM encoder from the installed wheel (offline)."""
    encoder = BertModel.from_pretrained(
        str(base_model_dir()), add_pooling_layer=False, attn_implementation=attn
    )
    assert isinstance(encoder, BertModel)
    return encoder


class ModerationModel(nn.Module):
    """``(input_ids, attention_mask) -> probabilities`` of shape ``(batch, n_labels)``."""

    def __init__(self, encoder: BertModel, head: nn.Sequential) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        out: torch.Tensor = self.head(mean_pool(hidden, attention_mask))
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(input_ids, attention_mask))


def save_artifacts(
    model: ModerationModel, top_layers: int, meta: dict[str, Any], out: Path
) -> None:
    """Write the head (fp32), the changed encoder layers (fp16) and the metadata."""
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().float().contiguous() for k, v in model.head.state_dict().items()},
        out / HEAD_FILE,
    )
    n_layers = len(model.encoder.encoder.layer)
    prefixes = tuple(f"encoder.layer.{i}." for i in range(n_layers - top_layers, n_layers))
    changed = {
        k: v.detach().half().contiguous()
        for k, v in model.encoder.state_dict().items()
        if k.startswith(prefixes)
    }
    encoder_path = out / ENCODER_FILE
    if changed:
        save_file(changed, encoder_path)
    elif encoder_path.exists():
        encoder_path.unlink()
    (out / META_FILE).write_text(
        json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def load_model(
    artifacts: Path = ARTIFACTS_DIR, attn: str = "eager"
) -> tuple[ModerationModel, dict[str, Any]]:
    """Rebuild the trained model (fp32, eval mode) from the wheel plus the artifacts."""
    meta = read_meta(artifacts)
    encoder = load_encoder(attn)
    if meta.get("top_layers", 0) > 0:
        path = artifacts / ENCODER_FILE
        if not path.is_file():
            raise ModelBuildError(f"fine-tuned layers missing: {path}")
        tensors = {k: v.float() for k, v in load_file(str(path)).items()}
        missing = set(tensors) - set(encoder.state_dict())
        if missing:
            raise ModelBuildError(f"unknown encoder tensors in {path}: {sorted(missing)[:3]}")
        encoder.load_state_dict(tensors, strict=False)
    head = make_head(encoder.config.hidden_size, len(meta["labels"]), int(meta["head_width"]))
    head.load_state_dict(load_file(str(artifacts / HEAD_FILE)))
    model = ModerationModel(encoder, head).eval()
    return model, meta
