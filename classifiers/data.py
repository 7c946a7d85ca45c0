"""Load the shared labeled datasets into one multi-label table with per-label confidence masks.

Each example has a target per label in :data:`~classifiers.base.LABELS` and a weight per label:
``1`` = labeled by the dataset, ``0`` = unknown (masked out of the loss), :data:`WEAK` = a weak
negative (abuse corpora are treated as not-spam, with low weight). Splits are deterministic:
official test/validation files are held out as given; other files are split by a hash of the
normalised text, so duplicates never straddle splits.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from classifiers.text import normalize

WEAK = 0.25
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

# (toxic, hate, spam); None = unknown
Labels = tuple[float | None, float | None, float | None]

#: Held-out splits reported by eval; names are ``<dataset>:<split>``.
HELD_OUT = (
    "olid:test",
    "hateval:test",
    "davidson:test",
    "sms:test",
    "hatexplain:test",
    "jigsaw:test",
    "convabuse:test",
    "youtube:test",
)


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    dataset: str
    split: str  # train | dev | test
    targets: tuple[float, float, float]
    weights: tuple[float, float, float]
    #: How much the example counts against others of its source, by provenance (datasets 1.0;
    #: teacher labels more, see :mod:`classifiers.teacher`).
    row_weight: float = 1.0


class DataError(ValueError):
    """A dataset file is missing or has an unexpected layout."""


def _bucket(text: str) -> int:
    digest = hashlib.blake2b(normalize(text).lower().encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 100


def _three_way(text: str) -> str:
    bucket = _bucket(text)
    return "train" if bucket < 80 else "dev" if bucket < 90 else "test"


def _train_dev(text: str) -> str:
    return "train" if _bucket(text) < 90 else "dev"


def _make(text: str, dataset: str, split: str, labels: Labels, weak_spam: bool) -> Example:
    targets = tuple(0.0 if v is None else float(v) for v in labels)
    weights = [0.0 if v is None else 1.0 for v in labels]
    if weak_spam and labels[2] is None:
        weights[2] = WEAK
    return Example(text, dataset, split, targets, tuple(weights))  # type: ignore[arg-type]


def _rows(
    path: Path, delimiter: str = ",", quoting: Literal[0, 1, 2, 3] = csv.QUOTE_MINIMAL
) -> Iterator[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle, delimiter=delimiter, quoting=quoting)


def _davidson(root: Path) -> Iterator[Example]:
    for row in _rows(root / "davidson" / "labeled_data.csv"):
        cls = row["class"]
        labels: Labels = {"0": (1, 1, None), "1": (1, 0, None), "2": (0, 0, None)}[cls]
        yield _make(row["tweet"], "davidson", _three_way(row["tweet"]), labels, True)


def _olid(root: Path) -> Iterator[Example]:
    files = (("olid-training-v1.0.tsv", None), ("olid_test_levela_merged.tsv", "test"))
    for name, fixed in files:
        for row in _rows(root / "olid" / name, "\t", csv.QUOTE_NONE):
            text = row["tweet"]
            labels: Labels = (1, None, None) if row["subtask_a"] == "OFF" else (0, 0, None)
            yield _make(text, "olid", fixed or _train_dev(text), labels, True)


def _hateval(root: Path) -> Iterator[Example]:
    for row in _rows(root / "hateval" / "hateval_train_val.csv"):
        text = row["text"]
        labels: Labels = (1, 1, None) if row["label"] == "1" else (None, 0, None)
        split = "test" if row["split"] == "val" else _train_dev(text)
        yield _make(text, "hateval", split, labels, True)


_HX_TOKENS = ((re.compile(r"<user>"), "@user"), (re.compile(r"<url>"), "http"))


def _hatexplain(root: Path) -> Iterator[Example]:
    mapping: dict[str, Labels] = {
        "hatespeech": (1, 1, None),
        "offensive": (1, 0, None),
        "normal": (0, 0, None),
    }
    for row in _rows(root / "hatexplain_derived" / "final_hateXplain.csv"):
        text = row["comment"]
        for pattern, repl in _HX_TOKENS:
            text = pattern.sub(repl, text)
        yield _make(text, "hatexplain", _three_way(text), mapping[row["label"]], True)


def _sms(root: Path) -> Iterator[Example]:
    for row in _rows(root / "sms_spam" / "SMSSpamCollection", "\t", csv.QUOTE_NONE):
        labels: Labels = (None, None, 1 if row["Label"] == "spam" else 0)
        yield _make(row["SMS"], "sms", _three_way(row["SMS"]), labels, False)


def _jigsaw(root: Path) -> Iterator[Example]:
    for name in ("ibm_max_test_examples.csv", "hurelyyu_train_sample.csv"):
        for row in _rows(root / "jigsaw_samples" / name):
            toxic = max(
                int(row[k]) for k in ("toxic", "severe_toxic", "obscene", "insult", "threat")
            )
            labels: Labels = (toxic, int(row["identity_hate"]), None)
            yield _make(row["comment_text"], "jigsaw", "test", labels, False)


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    raise DataError(f"{path}:{number}: not JSON") from None


_CONVABUSE_SPLIT = {"train": "train", "valid": "dev", "test": "test"}


def _convabuse(root: Path) -> Iterator[Example]:
    """Chatbot inputs: ``abusive`` (rater majority) is the toxic label; hate and spam unknown."""
    for row in _jsonl(root / "convabuse" / "convabuse_splits.jsonl"):
        text = str(row["text"])
        labels: Labels = (1 if row["abusive"] == 1 else 0, None, None)
        yield _make(text, "convabuse", _CONVABUSE_SPLIT[str(row["split"])], labels, False)


#: YouTube spam has no official split: one video is the test set, one the dev set (so both
#: measure a video the model did not train on), the other three train.
YOUTUBE_SPLIT = {"Shakira": "test", "KatyPerry": "dev"}


def _youtube(root: Path) -> Iterator[Example]:
    """YouTube comments: spam only. Its ham is not "non-toxic" (profane ham exists): masked."""
    for row in _jsonl(root / "youtube_spam" / "youtube_spam_collection.jsonl"):
        text = html.unescape(str(row["text"])).replace("\ufeff", "").strip()
        labels: Labels = (None, None, 1 if row["CLASS"] == 1 else 0)
        split = YOUTUBE_SPLIT.get(str(row["video"]), "train")
        yield _make(text, "youtube", split, labels, False)


LOADERS = (_davidson, _olid, _hateval, _hatexplain, _sms, _jigsaw, _convabuse, _youtube)


def load_examples(root: Path = DEFAULT_DATA_DIR) -> list[Example]:
    """Every example of every dataset; held-out texts are removed from train and dev."""
    if not root.is_dir():
        raise DataError(f"data folder not found: {root} (pass --data-dir)")
    examples = [ex for loader in LOADERS for ex in loader(root) if ex.text.strip()]
    held = {normalize(ex.text).lower() for ex in examples if ex.split == "test"}
    return [ex for ex in examples if ex.split == "test" or normalize(ex.text).lower() not in held]


def by_split(examples: list[Example], split: str, dataset: str | None = None) -> list[Example]:
    """Examples of one split (and optionally one dataset)."""
    return [e for e in examples if e.split == split and (dataset is None or e.dataset == dataset)]
