"""Parameter checks shared by the analysis functions.

Every failure raises :class:`simsearch.errors.InvalidInput` naming the offending field and why,
so the CLI and the web layer can report it as a 400 without knowing which function failed.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from simsearch.errors import InvalidInput

MAX_SEED = 2**32 - 1


def matrix(X: Any, field: str = "X", *, min_rows: int = 1, dtype=np.float32) -> np.ndarray:
    """``X`` as a C-contiguous 2-D float array of at least ``min_rows`` rows, all values finite."""
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise InvalidInput(f"{field} must be a 2-D numeric array ({exc})", field=field) from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidInput(f"{field} must be a 2-D array of real numbers, got dtype {arr.dtype}", field=field)
    if arr.ndim != 2:
        raise InvalidInput(f"{field} must be 2-D (n_samples, n_features), got shape {arr.shape}", field=field)
    n, d = arr.shape
    if d < 1:
        raise InvalidInput(f"{field} has no features (shape {arr.shape})", field=field)
    if n < min_rows:
        raise InvalidInput(f"{field} needs at least {min_rows} rows, got {n}", field=field)
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise InvalidInput(f"{field} contains non-finite values (NaN or inf), first in row {bad}", field=field)
    return arr


def integer(value: Any, field: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (either bound optional); bools and non-integral floats are rejected."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise InvalidInput(f"{field} must be an integer, got {value!r}", field=field)
    value = int(value)
    if low is not None and value < low:
        raise InvalidInput(f"{field} must be >= {low}, got {value}", field=field)
    if high is not None and value > high:
        raise InvalidInput(f"{field} must be <= {high}, got {value}", field=field)
    return value


def seed(value: Any, field: str = "seed") -> int:
    return integer(value, field, low=0, high=MAX_SEED)


def positive_float(value: Any, field: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"{field} must be a number, got {value!r}", field=field)
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise InvalidInput(f"{field} must be a finite number > 0, got {value}", field=field)
    return value


def choice(value: Any, field: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise InvalidInput(f"{field} must be one of {', '.join(map(repr, options))}, got {value!r}", field=field)
    return value


def labels(values: Any, n: int, field: str = "labels") -> np.ndarray:
    """A 1-D label array of length ``n`` (any hashable dtype: ints, strings)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInput(f"{field} must be 1-D, got shape {arr.shape}", field=field)
    if arr.shape[0] != n:
        raise InvalidInput(f"{field} has {arr.shape[0]} entries but there are {n} samples", field=field)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInput(f"{field} contains non-finite values", field=field)
    return arr


def cluster_labels(values: Any, n: int, n_clusters: int, field: str = "labels") -> np.ndarray:
    """Integer cluster ids in ``[0, n_clusters)``, length ``n``."""
    arr = labels(values, n, field)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InvalidInput(f"{field} must be integer cluster ids, got dtype {arr.dtype}", field=field)
    arr = arr.astype(np.int64, copy=False)
    if n and (arr.min() < 0 or arr.max() >= n_clusters):
        raise InvalidInput(
            f"{field} must lie in [0, {n_clusters}) to index the {n_clusters} centroids, "
            f"got range [{arr.min()}, {arr.max()}]",
            field=field,
        )
    return arr


def unit_rows(X: np.ndarray, field: str = "X") -> np.ndarray:
    """Rows scaled to unit L2 norm (a copy); a zero row has no direction, so it is an error."""
    norms = np.linalg.norm(X, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise InvalidInput(f"{field} row {int(zero[0])} is all zeros: cosine similarity is undefined", field=field)
    return np.ascontiguousarray(X / norms[:, None].astype(X.dtype))
