"""A seeded sample stratified by label whose size does not grow with the collection.

Pure numpy (no scikit-learn), so the operations import it at the top without making the CLI heavy.

`simsearch tune` cross-validates and `simsearch compare` scores on such a sample
(:func:`stratified_sample`): at most :data:`CAP` images, every label kept with at least
:data:`MIN_PER_LABEL` of its images (all of them when it has fewer; fewer, down to two, when there
are so many labels that the cap would not hold them), the rest shared in proportion to the labels'
sizes (largest remainders). A collection of 10,000 or of 10,000,000 images is
sampled to the same size, so the cost of what runs on the sample stops growing with the collection.
The size exceeds the cap only when there are more than ``CAP / 2`` labels (two images of each).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simsearch.errors import InvalidInput

CAP = 2000  # images: the 5-fold P@10 of the tuning candidates moves by less than their spread above ~1,500 (docs/tuning.md)
MIN_PER_LABEL = 10  # two per fold at 5 folds: every label can be a query in every fold
SEED = 0


def stratified_sample(labels: Any, cap: int = CAP, *, seed: int = SEED, min_per_label: int = MIN_PER_LABEL) -> np.ndarray:
    """Sorted row indices of a sample of ``labels`` (any hashables; None is a stratum of its own).

    All rows when there are no more than ``cap``. Else each label first gets ``min(count, m)`` rows,
    ``m = min(min_per_label, max(2, cap // labels))``, and the rest of the cap is split in
    proportion to what each label has left: ``cap`` rows in all, more only when there are over
    ``cap / 2`` labels (two of each). Drawn with ``numpy.random.default_rng(seed)``:
    the same labels and seed give the same sample."""
    if isinstance(cap, bool) or int(cap) != cap or cap < 1:
        raise ValueError(f"cap must be a positive whole number, not {cap!r}")
    keys = np.asarray(["\x00none" if lab is None else str(lab) for lab in labels], dtype=object)
    n = len(keys)
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    names, inverse, counts = np.unique(keys.astype(str), return_inverse=True, return_counts=True)
    take = np.minimum(counts, min(min_per_label, max(2, int(cap) // len(names))))
    room = max(int(cap) - int(take.sum()), 0)
    left = counts - take
    if room and left.sum():
        share = left * (room / left.sum())
        extra = np.floor(share).astype(np.int64)
        short = room - int(extra.sum())
        if short > 0:  # largest remainders, ties by label order: deterministic
            order = np.lexsort((np.arange(len(names)), -(share - extra)))
            extra[order[:short]] += 1
        take = take + np.minimum(extra, left)
    rng = np.random.default_rng(seed)
    by_label = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    picked = [rng.choice(rows, size=int(t), replace=False) for rows, t in zip(by_label, take)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def describe(size: int, of: int, seed: int, stratified_by: str = "label", cap: int | None = CAP) -> dict:
    """The ``sample`` field of a result: ``{size, of, seed, stratified_by, cap}`` (cap None: all images)."""
    return {"size": int(size), "of": int(of), "seed": int(seed), "stratified_by": stratified_by,
            "cap": None if cap is None else int(cap)}


def check_sample(sample) -> int | None:
    """A request's sample: a whole number of images (at least 20) as the cap, or None for ``"all"``
    (every image). InvalidInput naming the field ``sample`` otherwise."""
    if sample is None or sample == "all":
        return None
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 20:
        raise InvalidInput(f"sample must be a whole number of images (at least 20) or 'all', not {sample!r}",
                           field="sample")
    return sample
