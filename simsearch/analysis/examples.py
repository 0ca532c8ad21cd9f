"""Queries with several examples: "more like these, less like those" (docs/search-examples.md).

A candidate ``x`` (an L2-normalised vector) is scored against the positive examples ``P`` and the
negative examples ``N`` (each L2-normalised here) as

    like(x)    = cosine of x to the positives' mean (its direction)  = x . m / |m|, m = mean(P)
    unlike(x)  = the largest cosine of x to a negative                 (None without negatives)
    penalty(x) = w * max(0, unlike(x) - x . m)
    score(x)   = like(x) - penalty(x)

``x . m`` is x's mean cosine to the positives: a candidate is pushed down only when it is more
similar to one of the negatives than to the positives on average, by ``w`` (default 1) times the
difference. What that buys:

- **Readable**: without negatives, or for a candidate nearer the positives than any negative,
  the score is a cosine, to the examples' average; with one positive it is exactly the cosine a
  plain search by that image gives (and the same percentile).
- **Exact with one index query**: the index searched with ``m / |m|`` ranks candidates by
  ``like``, and ``score <= like``: once the k-th best score among the candidates fetched is at
  least the ``like`` of the first candidate not fetched, nothing further down can enter the top k
  (:func:`settled`). The search widens its candidate list until then.
- **Effective**: measured on flowers102 (``benchmarks/examples.py``: EfficientNet-Lite0; 3
  positives of a species, as negatives the 2 images of its most confusable species ranked highest
  by the plain search; 64 species), that species' share of the top 20 falls from 12.7 % to 1.3 %,
  and the wanted species' share rises from 46.3 % to 49.8 %. Subtracting ``w`` times the negatives' cosine from
  every candidate, or moving the query away from the negatives' mean (Rocchio), push as hard at
  ``w = 0.5`` (0.8 %, 0.6 %) but shift every score, so that a threshold means something else with
  each query; at ``w = 1`` they also push the wanted species out (17 % of the top 20 left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simsearch.errors import InvalidInput

from . import _validate as v
from .transforms import normalise

UNLIKE_WEIGHT = 1.0


def _examples(X: Any, field: str, *, min_rows: int) -> np.ndarray:
    """Example vectors as L2-normalised rows; a zero vector has no direction: 400 naming ``field``."""
    arr = v.matrix(X, field, min_rows=min_rows)
    norms = np.linalg.norm(arr, axis=1)
    if (norms == 0).any():
        raise InvalidInput(f"{field}: example {int(np.flatnonzero(norms == 0)[0])} is a zero vector", field=field)
    return normalise(arr)


def direction(positives: Any) -> np.ndarray:
    """The unit vector to search the index with: the positives' (normalised) mean; the inner
    product with it is :func:`scores`' ``like``. Positives that cancel out
    (opposite vectors) have no direction: 400 naming ``like``."""
    P = _examples(positives, "like", min_rows=1)
    mean = P.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-6:
        raise InvalidInput("the positive examples cancel each other out (their mean is zero): drop one", field="like")
    return (mean / norm).astype(np.float32)


@dataclass
class Scored:
    """Per candidate: ``score`` (what ranks), ``like`` (cosine to the positives' mean), and with
    negatives ``unlike`` (largest cosine to a negative), ``penalty`` (``like - score``) and
    ``nearest_unlike`` (which negative: a row of the negatives given); None without negatives."""
    score: np.ndarray
    like: np.ndarray
    unlike: np.ndarray | None = None
    penalty: np.ndarray | None = None
    nearest_unlike: np.ndarray | None = None


def scores(candidates: Any, positives: Any, negatives: Any = None, *, weight: float = UNLIKE_WEIGHT) -> Scored:
    """Score ``candidates`` (rows, L2-normalised) against the examples (see the module): every
    score is at most the candidate's ``like``."""
    X = v.matrix(candidates, "candidates", min_rows=0)
    P = _examples(positives, "like", min_rows=1)
    no_negatives = negatives is None or len(negatives) == 0
    N = np.zeros((0, P.shape[1]), np.float32) if no_negatives else _examples(negatives, "unlike", min_rows=1)
    weight = check_weight(weight)
    if X.shape[1] != P.shape[1]:
        raise InvalidInput(f"candidates have {X.shape[1]} dimensions, the positive examples {P.shape[1]}",
                             field="candidates")
    mean = X @ P.mean(axis=0)  # the mean cosine to the positives
    like = (X @ direction(P)).astype(np.float32)
    if len(N) == 0:
        return Scored(like, like)
    if N.shape[1] != P.shape[1]:
        raise InvalidInput(f"the negative examples have {N.shape[1]} dimensions, the positive ones {P.shape[1]}",
                             field="unlike")
    sims = X @ N.T
    nearest = sims.argmax(axis=1)
    unlike = sims.max(axis=1)
    penalty = (weight * np.maximum(0.0, unlike - mean)).astype(np.float32)
    return Scored(like - penalty, like, unlike.astype(np.float32), penalty, nearest)


def check_weight(weight: Any) -> float:
    """The negatives' weight ``w``: a finite number >= 0 (0: negatives change nothing)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating, np.integer)) or not np.isfinite(weight):
        raise InvalidInput(f"unlike_weight must be a finite number, got {weight!r}", field="unlike_weight")
    if weight < 0:
        raise InvalidInput(f"unlike_weight must be >= 0, got {weight}", field="unlike_weight")
    return float(weight)


def top(score: np.ndarray, k: int, threshold: float | None = None) -> np.ndarray:
    """Positions of the best ``k`` scores, best first (ties: the earlier position first), leaving
    out those below ``threshold``."""
    score = np.asarray(score, dtype=np.float64)
    keep = np.arange(len(score)) if threshold is None else np.flatnonzero(score >= threshold)
    order = keep[np.argsort(-score[keep], kind="stable")]
    return order[:k]


def settled(best: np.ndarray, k: int, bound: float | None, threshold: float | None = None) -> bool:
    """Whether the top ``k`` of the candidates scored so far (``best``: their scores, best first)
    is the top ``k`` of the whole collection, given ``bound``: the largest ``like`` of a candidate
    not yet scored (None: every candidate was scored). A candidate's score never exceeds its
    ``like``, so nothing unscored can beat a k-th score at or above the bound; and none can pass a
    ``threshold`` above the bound."""
    if bound is None:
        return True
    if threshold is not None and bound < threshold:
        return True
    return len(best) >= k and float(best[k - 1]) >= bound
