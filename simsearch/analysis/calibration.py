"""Scores as percentiles of a reference distribution (see :mod:`simsearch.ops.calibration`)."""

from __future__ import annotations

import numpy as np


def neighbour_quantiles(sims) -> np.ndarray:
    """101 quantiles (0th..100th percentile) of the neighbour similarities ``sims``."""
    return np.quantile(np.asarray(sims, dtype=np.float64).ravel(), np.linspace(0.0, 1.0, 101))


def percentile(quantiles, scores) -> np.ndarray:
    """Each score's place (0-100) in the reference distribution of :func:`neighbour_quantiles`
    (linear between quantiles; 0 below the lowest, 100 above the highest)."""
    s = np.asarray(scores, dtype=np.float64)
    q = np.maximum.accumulate(np.asarray(quantiles, dtype=np.float64))
    return np.interp(s, q, np.linspace(0.0, 100.0, len(q)), left=0.0, right=100.0)


def score_at(quantiles, pct: float) -> float:
    """The inverse of :func:`percentile`: the score that reaches percentile ``pct`` (0-100)."""
    q = np.maximum.accumulate(np.asarray(quantiles, dtype=np.float64))
    return float(np.interp(float(pct), np.linspace(0.0, 100.0, len(q)), q))
