"""Fast tokenisation (HF ``tokenizers``) with the project's truncation rule and padding."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from classifiers.base import ModelNotFoundError
from classifiers.text import normalize

IntArray = npt.NDArray[np.int64]


class TextEncoder:
    """Normalises, tokenises and truncates texts to at most ``max_tokens`` ids each."""

    def __init__(self, tokenizer_file: Path, max_tokens: int) -> None:
        if not tokenizer_file.is_file():
            raise ModelNotFoundError(f"tokenizer file not found: {tokenizer_file}")
        if max_tokens < 8:
            raise ValueError(f"max_tokens must be >= 8, got {max_tokens}")
        self.max_tokens = max_tokens
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        pad = self._tokenizer.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else pad

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (``[CLS] ... [SEP]``); an empty text gives ``[CLS] [SEP]``."""
        cleaned = [normalize(text) for text in texts]
        return [enc.ids for enc in self._tokenizer.encode_batch(cleaned)]

    def pad(self, ids: Sequence[Sequence[int]]) -> tuple[IntArray, IntArray]:
        """Right-pad to the longest sequence: ``(input_ids, attention_mask)``, int64."""
        width = max((len(row) for row in ids), default=0)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return input_ids, mask
