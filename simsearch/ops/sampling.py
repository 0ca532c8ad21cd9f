"""A seeded sample by label whose size does not grow with the collection.

Pure numpy (no scikit-learn), so the operations import it at the top without making the CLI heavy.

`simsearch tune` cross-validates and `simsearch compare` scores on such a sample
(:func:`stratified_sample`), at most ``cap`` images (default :data:`CAP`), drawn by one of two rules:

- **stratified**, when every label can keep ``min(its images, MIN_PER_LABEL)`` within the cap (up to
  about ``cap / MIN_PER_LABEL`` labels, 181 at the default cap): every label keeps that many (all
  of a smaller label), and the rest of the cap is shared in proportion to what each label has left
  (largest remainders);
- **whole labels**, when there are more labels than that: a seeded subset of labels, each kept
  whole up to ``per_label_limit(cap)`` images (200 at the default cap, so at least ten labels fit),
  labels taken in a seeded order while they fit in the cap.

Why: P@10 scores a held-out query by its ten nearest neighbours, so a label needs at least
``k + 1 = 11`` images for a query to be able to find ten of its own; thinning 102 species to 4-5
images each (a cap of 500) capped every candidate's P@10 near 0.35 and made the supervised
projection, fitted on 3-4 images per class, look useless (docs/tuning.md). Fewer labels, each with
its images, keep what the evaluation measures. A collection of 10,000 or of 10,000,000 images is
sampled to the same size, so the cost of what runs on the sample stops growing with the collection.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simsearch.errors import InvalidInput

CAP = 2000  # images: see docs/tuning.md (sampled tuning) for the measurement behind it
MIN_PER_LABEL = 11  # k + 1 for P@10: a query can find ten images of its own label
SEED = 0
ALL, STRATIFIED, WHOLE_LABELS = "all", "stratified", "whole labels"  # the rules (``sample.rule``)


def per_label_limit(cap: int) -> int:
    """The most images a label keeps in a whole-labels sample: a tenth of the cap (at least ten
    labels fit), never under ``min(MIN_PER_LABEL, cap // 2)`` (two labels at the smallest caps)."""
    return max(int(cap) // 10, min(MIN_PER_LABEL, int(cap) // 2), 1)


def stratified_sample(labels: Any, cap: int = CAP, *, seed: int = SEED, min_per_label: int = MIN_PER_LABEL) -> np.ndarray:
    """Sorted row indices of a sample of ``labels`` (any hashables; None is a label of its own).

    All rows when there are no more than ``cap``. Else, when ``sum(min(count, min_per_label))``
    over the labels fits in ``cap``, stratified: each label gets ``min(count, min_per_label)`` rows
    and the rest of the cap is split in proportion to what each label has left (``cap`` rows in
    all). Otherwise whole labels: the labels in a seeded order, each taking ``min(count,
    per_label_limit(cap))`` rows while that fits in what is left of the cap (no more than ``cap``
    rows). Drawn with ``numpy.random.default_rng(seed)``: the same labels and seed give the same sample."""
    if isinstance(cap, bool) or int(cap) != cap or cap < 1:
        raise ValueError(f"cap must be a positive whole number, not {cap!r}")
    cap = int(cap)
    inverse, counts = _strata(labels)
    if len(inverse) <= cap:
        return np.arange(len(inverse), dtype=np.int64)
    rng = np.random.default_rng(seed)
    take = np.minimum(counts, min_per_label)
    if _rule(counts, cap, min_per_label) == STRATIFIED:
        take = take + _shares(counts - take, cap - int(take.sum()))
    else:
        take = _whole_labels(counts, cap, rng)
    by_label = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    picked = [rng.choice(rows, size=int(t), replace=False) for rows, t in zip(by_label, take)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def rule(labels: Any, cap: int | None, min_per_label: int = MIN_PER_LABEL) -> str:
    """Which rule :func:`stratified_sample` draws ``labels`` by at ``cap`` (None: every image):
    :data:`ALL`, :data:`STRATIFIED` or :data:`WHOLE_LABELS`."""
    inverse, counts = _strata(labels)
    return ALL if cap is None or len(inverse) <= cap else _rule(counts, int(cap), min_per_label)


def _rule(counts: np.ndarray, cap: int, min_per_label: int) -> str:
    return STRATIFIED if int(np.minimum(counts, min_per_label).sum()) <= cap else WHOLE_LABELS


def _strata(labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each row's label number and each label's count (None is a label of its own)."""
    keys = np.asarray(["\x00none" if lab is None else str(lab) for lab in labels], dtype=str)
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def _shares(left: np.ndarray, room: int) -> np.ndarray:
    """``room`` rows shared in proportion to ``left`` (largest remainders, ties by label order)."""
    if not room or not left.sum():
        return np.zeros_like(left)
    share = left * (room / left.sum())
    extra = np.floor(share).astype(np.int64)
    short = room - int(extra.sum())
    if short > 0:
        order = np.lexsort((np.arange(len(left)), -(share - extra)))
        extra[order[:short]] += 1
    return np.minimum(extra, left)


def _whole_labels(counts: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Rows per label of a whole-labels sample: labels in a seeded order, each up to the limit,
    while they fit."""
    want = np.minimum(counts, per_label_limit(cap))
    take = np.zeros_like(counts)
    room = cap
    for i in rng.permutation(len(counts)):
        if want[i] <= room:
            take[i], room = want[i], room - int(want[i])
        if room < want.min():
            break
    return take


def describe(size: int, of: int, seed: int, stratified_by: str = "label", cap: int | None = CAP, *,
             rule: str = STRATIFIED, labels: int | None = None) -> dict:
    """The ``sample`` field of a result: ``{size, of, seed, stratified_by, cap, rule, labels}`` (cap
    None: all images; ``rule``: :func:`rule`; ``labels``: how many labels the sample holds)."""
    return {"size": int(size), "of": int(of), "seed": int(seed), "stratified_by": stratified_by,
            "cap": None if cap is None else int(cap), "rule": rule, "labels": None if labels is None else int(labels)}


def words(sample: dict, of_labels: int | None = None) -> str:
    """How a sample was drawn, for the CLI: "seeded sample, seed 0: whole labels, 60 of 102 labels"."""
    how = {WHOLE_LABELS: "whole labels", STRATIFIED: "stratified by label"}.get(sample.get("rule"), "every image")
    if sample.get("stratified_by") != "label":
        how = f"stratified by {sample.get('stratified_by')}"
    n = sample.get("labels")
    count = "" if n is None else f", {n} of {of_labels} labels" if of_labels else f", {n} labels"
    return f"seeded sample, seed {sample['seed']}: {how}{count}"


def check_sample(sample) -> int | None:
    """A request's sample: a whole number of images (at least 20) as the cap, or None for ``"all"``
    (every image). InvalidInput naming the field ``sample`` otherwise."""
    if sample is None or sample == "all":
        return None
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 20:
        raise InvalidInput(f"sample must be a whole number of images (at least 20) or 'all', not {sample!r}",
                           field="sample")
    return sample
