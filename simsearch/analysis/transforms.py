"""Learned linear transforms of embedding vectors, fitted on a collection without training the network.

Every transform is an affine map followed by L2 normalisation, ``normalise((x - mean) @ matrix)``
(:class:`Linear`), so it is stored as two arrays and applied to a query image's vector exactly as
to the collection's:

- :func:`fit_whitening`: PCA-whitening (unsupervised). The covariance's eigenvalues are shrunk
  towards their mean before inverting (``shrinkage`` 0: full whitening, 1: a plain PCA rotation),
  so that the small, noisy eigenvalues of a few hundred images are not blown up.
- :func:`fit_discriminant`: a supervised projection (LDA-style, "learned whitening"): whiten the
  within-class covariance (shrunk the same way), then rotate onto the principal axes of the
  whitened data and keep ``dims`` of them. The first ``classes - 1`` axes are the discriminant
  ones; keeping more keeps the (whitened) rest, which is what generalises to images the fit has
  not seen.
- :func:`concatenate`: several spaces of the same images side by side (each L2-normalised, so
  each counts equally), normalised again.

Inputs are validated (:class:`simsearch.errors.InvalidInput` naming the field). Fitting works in
the span of the fitting rows (an SVD of the centred data), so it costs O(N^2 D) for N < D.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _validate as v

EPS = 1e-12


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)


@dataclass
class Linear:
    """``x -> normalise((x - mean) @ matrix)``: mean (D,), matrix (D, d), float32."""

    mean: np.ndarray
    matrix: np.ndarray

    @property
    def in_dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.matrix.shape[1])

    def apply(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None]
        if X.ndim != 2 or X.shape[1] != self.in_dim:
            raise v.InvalidInput(f"the transform takes vectors of {self.in_dim} dimensions, got shape {X.shape}",
                                 field="X")
        return normalise((X - self.mean) @ self.matrix)

    def truncated(self, dims: int) -> "Linear":
        """The first ``dims`` output axes (both fits order their axes by importance, so this is the
        fit at ``dims``)."""
        return Linear(self.mean, self.matrix[:, :dims])

    def to_bytes(self) -> bytes:
        """The arrays as .npz bytes (what the database stores)."""
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean.astype("<f4"), matrix=self.matrix.astype("<f4"))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Linear":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(mean=z["mean"].astype(np.float32), matrix=z["matrix"].astype(np.float32))


def _shrink(eigvals: np.ndarray, shrinkage: float) -> np.ndarray:
    """Eigenvalues pulled towards their mean: ``(1 - s) * l + s * mean(l)``."""
    return (1.0 - shrinkage) * eigvals + shrinkage * float(eigvals.mean())


def _check_shrinkage(shrinkage: Any) -> float:
    import numbers

    if isinstance(shrinkage, (bool, np.bool_)) or not isinstance(shrinkage, numbers.Real):
        raise v.InvalidInput(f"shrinkage must be a number, got {shrinkage!r}", field="shrinkage")
    s = float(shrinkage)
    if not 0.0 <= s <= 1.0:
        raise v.InvalidInput(f"shrinkage must be between 0 and 1, got {shrinkage!r}", field="shrinkage")
    return s


@dataclass
class Basis:
    """The principal axes of a set of rows: mean (D,), eigenvalues (r,) in decreasing order and
    axes (D, r), for the covariance's r non-zero eigenvalues. Computed once per fitting set and
    shared by every transform fitted on it (the SVD is the costly part)."""

    mean: np.ndarray
    eigvals: np.ndarray
    axes: np.ndarray

    @property
    def rank(self) -> int:
        return int(len(self.eigvals))


def principal_basis(X: Any) -> Basis:
    """:class:`Basis` of the rows of ``X``. With fewer rows than dimensions (the usual case: a few
    hundred images of 1,280-d vectors) it comes from the eigenvectors of the N x N Gram matrix,
    which is much cheaper than an SVD of the N x D data and gives the same axes."""
    X = v.matrix(X, "X", min_rows=3)
    X64 = X.astype(np.float64)
    mean = X64.mean(axis=0)
    Xc = X64 - mean
    n = max(len(X) - 1, 1)
    if len(X) < X.shape[1]:
        g_eig, g_vec = np.linalg.eigh(Xc @ Xc.T)
        g_eig, g_vec = g_eig[::-1], g_vec[:, ::-1]
        keep = g_eig > max(g_eig[0], EPS) * 1e-9
        if g_eig[0] <= EPS:
            raise v.InvalidInput("the vectors to fit on are all the same: nothing to fit", field="X")
        axes = Xc.T @ (g_vec[:, keep] / np.sqrt(g_eig[keep]))
        return Basis(mean, g_eig[keep] / n, axes)
    c_eig, c_vec = np.linalg.eigh(Xc.T @ Xc)
    c_eig, c_vec = c_eig[::-1], c_vec[:, ::-1]
    if c_eig[0] <= EPS:
        raise v.InvalidInput("the vectors to fit on are all the same: nothing to fit", field="X")
    keep = c_eig > c_eig[0] * 1e-9
    return Basis(mean, c_eig[keep] / n, c_vec[:, keep])


def fit_whitening(X: Any, dims: int = 128, shrinkage: float = 0.5, *, basis: Basis | None = None) -> Linear:
    """PCA-whitening fitted on the rows of ``X`` (N, D): project onto the top ``dims`` principal
    axes (at most the data's rank, N - 1 for N < D) and scale each by 1 / sqrt of its shrunk
    eigenvalue. ``basis``: :func:`principal_basis` of ``X``, when already computed."""
    dims = v.integer(dims, "dims", low=1)
    s = _check_shrinkage(shrinkage)
    b = basis if basis is not None else principal_basis(X)
    r = min(dims, b.rank)
    scale = 1.0 / np.sqrt(_shrink(b.eigvals, s))[:r]
    return Linear(b.mean.astype(np.float32), (b.axes[:, :r] * scale).astype(np.float32))


def fit_discriminant(X: Any, labels: Any, dims: int = 64, shrinkage: float = 0.5, *,
                     basis: Basis | None = None) -> Linear:
    """A supervised projection fitted on labelled rows: within-class whitening (the within-class
    covariance's eigenvalues shrunk towards their mean by ``shrinkage``), then the principal axes
    of the whitened data, keeping ``dims`` (at most the data's rank). Needs at least two classes
    and a class with two or more rows. ``basis``: :func:`principal_basis` of ``X``."""
    return fit_discriminants(X, labels, dims, [shrinkage], basis=basis)[0]


def fit_discriminants(X: Any, labels: Any, dims: int, shrinkages: list[float], *,
                      basis: Basis | None = None) -> list[Linear]:
    """:func:`fit_discriminant` at each of ``shrinkages`` (in their order), on the same rows: the
    projection onto the basis, the class means and the within-class covariance's eigenvectors do
    not depend on the shrinkage, so they are computed once (the same arrays as one fit each)."""
    X = v.matrix(X, "X", min_rows=3)
    y = np.unique(v.labels(labels, X.shape[0], "labels"), return_inverse=True)[1].reshape(-1)
    dims = v.integer(dims, "dims", low=1)
    shrinkages = [_check_shrinkage(s) for s in shrinkages]
    n_classes = int(y.max()) + 1
    if n_classes < 2:
        raise v.InvalidInput("a supervised projection needs at least two distinct labels", field="labels")
    if np.bincount(y).max() < 2:
        raise v.InvalidInput("a supervised projection needs a label with at least two images", field="labels")
    b = basis if basis is not None else principal_basis(X)
    Z = (X.astype(np.float64) - b.mean) @ b.axes  # (N, r): the span of the data (lossless for it)
    means = np.zeros((n_classes, Z.shape[1]))
    np.add.at(means, y, Z)
    means /= np.bincount(y, minlength=n_classes)[:, None]
    within = Z - means[y]
    Sw = within.T @ within / max(len(Z) - n_classes, 1)
    w_eig, w_vec = np.linalg.eigh(Sw)
    w_eig = np.maximum(w_eig, 0.0)
    if w_eig.max() <= EPS:
        raise v.InvalidInput("every class's vectors are identical: nothing to fit", field="X")
    out = []
    for s in shrinkages:
        W = w_vec / np.sqrt(_shrink(w_eig, s))  # Sw^{-1/2} (up to rotation)
        Zw = Z @ W  # centred already (Z is)
        t_eig, t_vec = np.linalg.eigh(Zw.T @ Zw)  # principal axes of the whitened data, r x r
        t_eig, t_vec = t_eig[::-1], t_vec[:, ::-1]
        r = min(dims, int((t_eig > max(t_eig[0], EPS) * 1e-9).sum()))
        matrix = b.axes @ W @ t_vec[:, :r]
        out.append(Linear(b.mean.astype(np.float32), matrix.astype(np.float32)))
    return out


def concatenate(parts: list[Any]) -> np.ndarray:
    """Rows of several spaces of the same items side by side: each part L2-normalised (so each
    weighs the same), the whole normalised again."""
    if not parts:
        raise v.InvalidInput("give at least one space to concatenate", field="spaces")
    mats = [v.matrix(p, f"parts[{i}]", min_rows=0) for i, p in enumerate(parts)]
    n = mats[0].shape[0]
    for i, m in enumerate(mats):
        if m.shape[0] != n:
            raise v.InvalidInput(f"parts[{i}] has {m.shape[0]} rows, parts[0] has {n}: they must embed the same items",
                                 field="spaces")
    return normalise(np.hstack([normalise(m) for m in mats]))
