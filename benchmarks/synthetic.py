"""Synthetic embeddings that behave like real ones. Prints one JSON object.

The vectors are derived from real efficientnet_lite0 embeddings of ``../shared/datasets`` (700
photos, computed once with simsearch's Embedder and cached in a ``.npy`` under /tmp):

- each synthetic vector picks one real vector ``x_a`` (its anchor) and moves along the principal
  directions of the anchor's neighbourhood: ``x_a + s/sqrt(k) * sum_j g_j (x_j - x_a)`` over its
  ``k`` nearest real neighbours ``x_j`` with ``g_j ~ N(0, 1)`` (a mixture of 700 Gaussians, each
  with the covariance of its neighbourhood's differences: rank ``k``, not isotropic);
- clipped at 0 (the real vectors are average-pooled ReLU6 activations: non-negative, 45% zeros)
  and L2-normalised, as simsearch stores them.

``k`` = 80 and ``s`` = 1.5 were chosen by a grid search for the closest match of the quantiles
below at the shared sets' size. The output compares, at that size (700 vectors), the distribution
of the cosine to each vector's 1st and 10th nearest neighbour (and of all pairs) of: the real
vectors, these synthetic vectors (two seeds), and isotropic Gaussian noise around 200 random
centres (what earlier benchmarks used, on which an HNSW index had recall@10 0.55), which does not
match.

Usage: python benchmarks/synthetic.py [--cache /tmp/simsearch-real-lite0.npy]
Library: ``real_embeddings()``, ``Synthetic.fit(real).generate(n, seed, out=None)``, ``isotropic(n)``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py
DATASETS = ROOT.parent / "shared" / "datasets"
DEFAULT_CACHE = Path("/tmp/simsearch-real-lite0.npy")
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
NEIGHBOURS = 80  # k: the size of each anchor's neighbourhood
SPREAD = 1.5  # s: how far along its principal directions a synthetic vector moves


def real_embeddings(cache: Path = DEFAULT_CACHE, data: Path = DATASETS, backbone: str = "efficientnet_lite0") -> np.ndarray:
    """(N, D) float32 L2-normalised embeddings of every image under ``data`` (sorted paths),
    computed with simsearch's Embedder (fp32, CPU) the first time and cached in ``cache``."""
    cache = Path(cache)
    if cache.exists():
        return np.load(cache)
    from simsearch.embedding.embedder import Embedder
    from simsearch.spaces import parse, space_key
    from simsearch.images import load_image, resize_for_model, scan_images

    paths = sorted(scan_images(Path(data).resolve()))
    weights = Path(os.environ.get("SIMSEARCH_WEIGHTS_DIR", cache.parent / "simsearch-weights"))
    emb = Embedder(parse(space_key(backbone, "avg", "fp32")), weights, runtime="auto", device="cpu")
    log(f"embedding {len(paths)} images of {data} with {backbone}")
    parts = []
    for start in range(0, len(paths), 32):
        pixels = np.stack([resize_for_model(load_image(p).image, emb.input_size) for p in paths[start:start + 32]])
        parts.append(emb.embed(pixels))
    x = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    tmp = cache.with_name(cache.name + ".tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, cache)
    return x


class Synthetic:
    """A mixture of local Gaussians fitted to real embeddings (see the module's docstring)."""

    def __init__(self, real: np.ndarray, neighbours: np.ndarray, spread: float):
        self.real = np.ascontiguousarray(real, dtype=np.float32)
        self.neighbours = neighbours  # (N, k) indices of each real vector's nearest real vectors
        self.spread = float(spread)

    @classmethod
    def fit(cls, real: np.ndarray, k: int = NEIGHBOURS, spread: float = SPREAD) -> "Synthetic":
        sims = real @ real.T
        np.fill_diagonal(sims, -np.inf)
        k = min(k, len(real) - 1)
        return cls(real, np.argsort(-sims, axis=1)[:, :k], spread)

    @property
    def dim(self) -> int:
        return self.real.shape[1]

    def _chunk(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n vectors as weights over the real ones (n x N, mostly zero) times the real vectors."""
        real_n, k = self.neighbours.shape
        anchors = rng.integers(0, real_n, n)
        g = rng.standard_normal((n, k)).astype(np.float32) * (self.spread / np.sqrt(k))
        weights = np.zeros((n, real_n), np.float32)
        rows = np.arange(n)
        weights[rows, anchors] = 1.0 - g.sum(axis=1)
        np.add.at(weights, (np.repeat(rows, k), self.neighbours[anchors].ravel()), g.ravel())
        y = weights @ self.real
        np.maximum(y, 0.0, out=y)
        y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        return y

    def generate(self, n: int, seed: int = 0, out: np.ndarray | None = None, chunk: int = 20_000) -> np.ndarray:
        """``n`` synthetic vectors (float32, L2-normalised), written into ``out`` (e.g. a memmap)
        when given; the same ``seed`` and ``chunk`` give the same vectors."""
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.dim), np.float32) if out is None else out
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            out[start:stop] = self._chunk(stop - start, rng)
        return out


def isotropic(n: int, dim: int, seed: int = 0, centres: int = 200, noise: float = 0.6) -> np.ndarray:
    """Isotropic Gaussian noise around ``centres`` random centres, L2-normalised (benchmarks/web.py)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def neighbour_cosines(x: np.ndarray, ks=(1, 10)) -> dict[int, np.ndarray]:
    """Each vector's cosine to its k-th nearest neighbour (itself excluded), for each k in ``ks``."""
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    top = -np.sort(-sims, axis=1)[:, :max(ks)]
    return {k: top[:, k - 1] for k in ks}


def quantiles(values: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in np.quantile(values, QUANTILES)]


def describe(x: np.ndarray) -> dict:
    nn = neighbour_cosines(x)
    pairs = (x @ x.T)[np.triu_indices(len(x), 1)]
    return {"cos_1st_neighbour": quantiles(nn[1]), "cos_10th_neighbour": quantiles(nn[10]),
            "cos_all_pairs": quantiles(pairs), "zero_fraction": round(float((x == 0).mean()), 3)}


def gap(a: dict, b: dict) -> dict:
    """The largest absolute difference of the quantiles, per distribution."""
    return {key: round(max(abs(u - v) for u, v in zip(a[key], b[key])), 3)
            for key in ("cos_1st_neighbour", "cos_10th_neighbour", "cos_all_pairs")}


def compact_json(obj) -> str:
    """Indented JSON with lists of numbers on one line."""
    return re.sub(r"\[\s+([-0-9.,\se]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", json.dumps(obj, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help="the real embeddings' .npy (made if missing)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    real = real_embeddings(Path(args.cache))
    model = Synthetic.fit(real)
    n, dim = real.shape
    shown = {"real": describe(real)}
    for seed in (1, 2):
        shown[f"synthetic_seed{seed}"] = describe(model.generate(n, seed=seed))
    shown["isotropic_200_centres"] = describe(isotropic(n, dim))
    out = {
        "what": f"cosine to the 1st and 10th nearest neighbour at the shared sets' size ({n} vectors x {dim}), "
                "quantiles " + ", ".join(str(q) for q in QUANTILES),
        "real": f"efficientnet_lite0 (avg pool, fp32) embeddings of {DATASETS.name}/ ({n} photos)",
        "synthetic": f"mixture of local Gaussians along each real vector's {NEIGHBOURS} neighbours' directions, "
                     f"spread {SPREAD}, clipped at 0, L2-normalised",
        "distributions": shown,
        "largest_quantile_gap_to_real": {name: gap(d, shown["real"]) for name, d in shown.items() if name != "real"},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    emit(out, dumps=compact_json)


if __name__ == "__main__":
    main()
