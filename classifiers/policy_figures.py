"""What a policy's thresholds do to held-out posts (the columns of issue #13's held-out table).

Per source (one held-out split each), with the decision the real-time policy takes from scores
alone (a label at or above ``remove_at`` removes; otherwise one at or above ``review_at`` makes the
post borderline; otherwise it is allowed):

- ``borderline_share`` and ``removed_share`` of *traffic*: rows reweighted so that harmful ones
  (any known positive label) carry ``harmful_share`` (10 %, the policy's prior) of the weight;
- ``remove_precision``: removed rows that are harmful, over the removals the source can judge: a
  removal is judged when the row is harmful or when a category that removed it is one the source
  labels (full weight). A tweet corpus that labels only offensiveness cannot say that a tweet
  removed as spam was clean, so that removal counts in ``removed_unjudged``, not against the
  precision. Judged only with at least :data:`MIN_JUDGED` judged removals, ``None`` otherwise;
- ``remove_precision_all``: the same over every removal, counting what the source does not label
  as not harmful (the pessimistic bound; issue #13's held-out table counts that way);
- ``harmful_not_allowed``: harmful rows removed or sent to borderline (not allowed outright);
- ``clean_removed``: rows with no known positive label that were removed.

The summary takes the mean and the worst over sources, so a large split cannot hide a small one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from classifiers.data import Example
from classifiers.thresholds import (
    MIN_JUDGED,
    TRAFFIC_HARMFUL_SHARE,
    Limits,
    decide,
    harmful_rows,
    removing,
    traffic_weights,
)

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

__all__ = ["Limits", "decide", "judged_removals", "policy_figures", "removing", "source_figures"]


def judged_removals(examples: Sequence[Example], by_label: Mask, harmful: Mask) -> Mask:
    """Removed rows whose source can judge the removal (see the module docstring)."""
    labelled = np.array(
        [[e.weights[j] >= 1.0 for j in range(by_label.shape[1])] for e in examples], dtype=bool
    ).reshape(by_label.shape)
    judged: Mask = np.asarray(
        by_label.any(axis=1) & (harmful | (by_label & labelled).any(axis=1)), dtype=bool
    )
    return judged


def source_figures(
    examples: Sequence[Example],
    probs: Array,
    labels: Sequence[str],
    limits: Limits,
    harmful_share: float = TRAFFIC_HARMFUL_SHARE,
) -> dict[str, Any]:
    """The figures above for one source's rows (``probs`` rows align with ``examples``)."""
    removed, borderline = decide(probs, labels, limits)
    harmful = harmful_rows(examples, len(labels))
    judged = judged_removals(examples, removing(probs, labels, limits), harmful)
    weights = traffic_weights(examples, len(labels), harmful_share)
    n_removed, n_judged = int(removed.sum()), int(judged.sum())
    return {
        "n": len(examples),
        "harmful": int(harmful.sum()),
        "borderline_share": round(float(weights[borderline].sum()), 4),
        "removed_share": round(float(weights[removed].sum()), 4),
        "removed": n_removed,
        "removed_unjudged": n_removed - n_judged,
        "remove_precision": (
            round(float(harmful[judged].mean()), 4) if n_judged >= MIN_JUDGED else None
        ),
        "remove_precision_all": (
            round(float(harmful[removed].mean()), 4) if n_removed >= MIN_JUDGED else None
        ),
        "harmful_not_allowed": (
            round(float((removed | borderline)[harmful].mean()), 4) if harmful.any() else None
        ),
        "clean_removed": round(float(removed[~harmful].mean()), 4) if (~harmful).any() else None,
    }


def policy_figures(per_source: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and worst over sources of the figures from :func:`source_figures`."""

    def values(key: str) -> list[float]:
        return [float(s[key]) for s in per_source.values() if s.get(key) is not None]

    def worst(key: str, pick: Any) -> tuple[float | None, str | None]:
        judged = {name: float(s[key]) for name, s in per_source.items() if s.get(key) is not None}
        if not judged:
            return None, None
        name = pick(judged, key=judged.__getitem__)
        return judged[name], name

    border = values("borderline_share")
    precision, precision_source = worst("remove_precision", min)
    precision_all, precision_all_source = worst("remove_precision_all", min)
    not_allowed, not_allowed_source = worst("harmful_not_allowed", min)
    clean, clean_source = worst("clean_removed", max)
    return {
        "borderline_share": round(float(np.mean(border)), 4) if border else None,
        "borderline_share_max": round(max(border), 4) if border else None,
        "remove_precision_min": precision,
        "remove_precision_min_source": precision_source,
        "remove_precision_all_min": precision_all,
        "remove_precision_all_min_source": precision_all_source,
        "harmful_not_allowed_min": not_allowed,
        "harmful_not_allowed_min_source": not_allowed_source,
        "clean_removed_max": clean,
        "clean_removed_max_source": clean_source,
        "sources": dict(per_source),
    }
