"""Re-ranking without training: alpha query expansion (alpha-QE) and database-side augmentation (DBA).

Both replace a vector by a weighted sum of itself and its nearest neighbours, each weighted by
``max(cosine, 0) ** alpha`` (Radenovic et al.), then L2-normalise:

- :func:`alpha_qe`: on the query, against the database, at query time (a second search with the
  expanded query).
- :func:`dba`: on every database vector, against the database, once (the stored vectors of a
  space with DBA are the augmented ones; queries are not augmented).

The neighbours never include the vector itself: by id for a database vector (``exclude``), and
for a query, any database vector with cosine >= :data:`DUPLICATE` (the same image stored in the
collection), so a query gets the same expansion whether it comes from the collection or is
uploaded again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validate as v
from .transforms import normalise

DUPLICATE = 0.9999  # cosine at or above which a database vector is the query's own image
ALPHA_DEFAULT = 3.0  # the weighting exponent of Radenovic et al.


def _params(k: Any, alpha: Any) -> tuple[int, float]:
    k = v.integer(k, "k", low=1)
    alpha = v.positive_float(alpha, "alpha") if alpha != 0 else 0.0
    return k, alpha


def weights(sims: np.ndarray, alpha: float) -> np.ndarray:
    return np.maximum(sims, 0.0) ** alpha


def expand(query: np.ndarray, neighbours: np.ndarray, sims: np.ndarray, alpha: float) -> np.ndarray:
    """One query (D,) expanded with its neighbours' vectors (m, D) at cosines ``sims`` (m,):
    ``normalise(query + sum(max(sim, 0) ** alpha * neighbour))``."""
    q = np.asarray(query, np.float32).reshape(-1)
    if len(neighbours) == 0:
        return normalise(q[None])[0]
    w = weights(np.asarray(sims, np.float32), alpha)
    return normalise((q + w @ np.asarray(neighbours, np.float32))[None])[0]


def _top(sims: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of each row, largest first (ties: lower index)."""
    k = min(k, sims.shape[1])
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.lexsort((part, -np.take_along_axis(sims, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def alpha_qe(Q: Any, X: Any, k: int = 5, alpha: float = ALPHA_DEFAULT, *, sims: np.ndarray | None = None) -> np.ndarray:
    """Expanded queries: each row of ``Q`` (unit vectors) with its ``k`` nearest rows of the
    database ``X`` (cosine; exact duplicates of the query left out). ``sims``: ``Q @ X.T`` when
    already computed."""
    k, alpha = _params(k, alpha)
    Q = v.matrix(Q, "Q")
    X = v.matrix(X, "X")
    sims = Q @ X.T if sims is None else sims
    sims = np.where(sims >= DUPLICATE, -np.inf, sims)
    idx = _top(sims, k)
    top = np.take_along_axis(sims, idx, axis=1)
    w = np.where(np.isfinite(top), weights(np.where(np.isfinite(top), top, 0.0), alpha), 0.0).astype(np.float32)
    return normalise(Q + np.einsum("qk,qkd->qd", w, X[idx]))


def dba(X: Any, k: int = 3, alpha: float = ALPHA_DEFAULT, *, sims: np.ndarray | None = None) -> np.ndarray:
    """Database-side augmentation: each row of ``X`` (unit vectors) with its ``k`` nearest other
    rows. ``sims``: ``X @ X.T`` when already computed (not modified)."""
    k, alpha = _params(k, alpha)
    X = v.matrix(X, "X")
    if len(X) < 2:
        return normalise(X)
    sims = X @ X.T if sims is None else sims.copy()
    np.fill_diagonal(sims, -np.inf)
    idx = _top(sims, min(k, len(X) - 1))
    w = weights(np.take_along_axis(sims, idx, axis=1), alpha).astype(np.float32)
    return normalise(X + np.einsum("nk,nkd->nd", w, X[idx]))
