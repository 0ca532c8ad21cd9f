"""Choosing a derived space by cross-validation on a collection's labelled images.

A *candidate* is a family (a transform: ``none``, ``whiten`` or ``discriminant``; and a
re-ranking: ``none``, ``qe`` or ``dba+qe``) over one set of base vectors. Its hyper-parameters
come from one fixed grid, the same for every collection (:data:`DIMS`, :data:`SHRINKAGES`,
:data:`RERANK_KS`, alpha :data:`ALPHA`), and are chosen by an inner cross-validation on the
training folds only (nested CV), so the outer score of a family is an honest estimate.

Scoring protocol (:func:`score`): the transform (and DBA) is fitted on the training rows; the
held-out rows are the queries and the training rows the database. So no query was ever seen by
the fit, and the query situation is the one a tuned collection serves: new images searched
against the images the transform was fitted on. (Scoring held-out queries against the whole
collection would put the other held-out rows in the database too, and DBA over them would have
seen the query's neighbours; the training-rows database avoids both.) P@10 is the fraction of a
query's 10 nearest database rows with its label; ARI is k-means (k = the number of labels) on
the held-out rows' transformed vectors against their labels.

A candidate is judged on what it will serve, not on label precision alone: per fold, the mean
of P@10 (search), ARI (clusters) and the *neighbour preservation* against the raw space
(:func:`preservation`: the share of a held-out image's raw top-10 still in its top-50), which
stands for everything the labels do not cover (the map, unlabelled images, "similar" as a person
sees it). A projection onto a few label axes can raise P@10 and yet scatter every image's raw
neighbourhood (and make every score 0.97): preservation is what penalises it.

Folds are stratified by label and seeded (:func:`stratified_folds`). :func:`select` applies the
one-standard-error rule on that mean: the simplest candidate within one standard error
(std / sqrt(folds)) of the best. Hyper-parameters inside a family are still chosen by P@10.

Without labels (:func:`stability`) there is nothing to score against: a whitening is fitted on
two disjoint random halves and the top-10 neighbour lists of every image under the two fits are
compared (mean Jaccard); a transform that depends on which images it saw is unstable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _validate as v
from .rerank import ALPHA_DEFAULT, alpha_qe, dba
from .transforms import Linear, fit_discriminant, fit_discriminants, fit_whitening, normalise, principal_basis
from .neighbours import jaccard_rows, knn_graph

TRANSFORMS = ("none", "whiten", "discriminant")
RERANKS = ("none", "qe", "dba+qe")
DIMS = (8, 16, 32, 64, 128, 256)
SHRINKAGES = (0.1, 0.5, 0.9)
RERANK_KS = (2, 5, 10)
ALPHA = ALPHA_DEFAULT
PRECISION_K = 10
PRESERVE_WITHIN = 50  # a raw top-10 neighbour counts as kept while it stays on the first five pages of ten
OUTER_FOLDS = 5
INNER_FOLDS = 3
SEED = 0


@dataclass(frozen=True)
class Family:
    transform: str = "none"
    rerank: str = "none"

    @property
    def name(self) -> str:
        t = {"none": "raw", "whiten": "whiten", "discriminant": "discriminant"}[self.transform]
        return t if self.rerank == "none" else f"{t}+{self.rerank}"

    @property
    def complexity(self) -> tuple[int, int]:
        """Ordered simplest first: the transform's and the re-ranking's rank added, ties to less
        re-ranking (cheaper queries)."""
        t, r = TRANSFORMS.index(self.transform), RERANKS.index(self.rerank)
        return (t + r, r)

    @property
    def supervised(self) -> bool:
        return self.transform == "discriminant"


def families(*, supervised: bool = True) -> list[Family]:
    out = [Family(t, r) for t in TRANSFORMS for r in RERANKS if supervised or t != "discriminant"]
    return sorted(out, key=lambda f: f.complexity)


@dataclass(frozen=True)
class Setting:
    """A family with its hyper-parameters (None where the family has none)."""

    family: Family
    dims: int | None = None
    shrinkage: float | None = None
    k: int | None = None  # neighbours of QE and DBA
    alpha: float | None = None

    def to_dict(self) -> dict:
        return {"transform": self.family.transform, "rerank": self.family.rerank, "dims": self.dims,
                "shrinkage": self.shrinkage, "k": self.k, "alpha": self.alpha}


def _transform_grid(transform: str, n_classes: int, rank: int) -> list[tuple[int | None, float | None]]:
    if transform == "none":
        return [(None, None)]
    dims = set(DIMS) | ({max(n_classes - 1, 2)} if transform == "discriminant" else set())
    dims = sorted({min(d, rank) for d in dims})
    return [(d, s) for s in SHRINKAGES for d in dims]


def _rerank_grid(rerank: str) -> list[int | None]:
    return [None] if rerank == "none" else list(RERANK_KS)


def stratified_folds(labels: Any, n_folds: int = OUTER_FOLDS, seed: int = SEED) -> np.ndarray:
    """A fold id 0..n_folds-1 per row: each label's rows shuffled (seeded) and dealt round the
    folds, continuing where the previous label stopped, so folds differ in size by at most one."""
    n_folds = v.integer(n_folds, "folds", low=2)
    y = np.unique(v.labels(labels, len(labels)), return_inverse=True)[1].reshape(-1)
    rng = np.random.default_rng(v.seed(seed))
    folds = np.zeros(len(y), np.int64)
    offset = 0
    for c in range(int(y.max()) + 1 if len(y) else 0):
        rows = np.flatnonzero(y == c)
        rng.shuffle(rows)
        folds[rows] = (offset + np.arange(len(rows))) % n_folds
        offset += len(rows)
    return folds


def precision_at(Q: np.ndarray, q_labels: np.ndarray, D: np.ndarray, d_labels: np.ndarray,
                 k: int = PRECISION_K, *, sims: np.ndarray | None = None) -> float:
    """Mean fraction of each query's ``k`` nearest database rows (cosine) that share its label.
    ``sims``: ``Q @ D.T`` when already computed."""
    k = min(k, len(D))
    sims = Q @ D.T if sims is None else sims
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return float((d_labels[idx] == q_labels[:, None]).mean())


def _variants(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, transform: str, basis):
    """Every grid point of ``transform`` fitted on (Xtr, ytr), as ((dims, shrinkage), database,
    queries). A fit at the largest dims serves the smaller ones (its first axes), and the
    projections are computed once per shrinkage, then cut and normalised."""
    if transform == "none":
        yield (None, None), Xtr, Xte
        return
    grid = _transform_grid(transform, len(np.unique(ytr)), basis.rank)
    shrinks = sorted({s for _, s in grid})
    tops = [max(d for d, s2 in grid if s2 == s) for s in shrinks]
    if transform == "whiten":
        lins = [fit_whitening(Xtr, top, s, basis=basis) for s, top in zip(shrinks, tops)]
    elif len(set(tops)) == 1:  # one within-class decomposition for every shrinkage
        lins = fit_discriminants(Xtr, ytr, tops[0], shrinks, basis=basis)
    else:
        lins = [fit_discriminant(Xtr, ytr, top, s, basis=basis) for s, top in zip(shrinks, tops)]
    for s, lin in zip(shrinks, lins):
        Ptr, Pte = (Xtr - lin.mean) @ lin.matrix, (Xte - lin.mean) @ lin.matrix
        for d, s2 in grid:
            if s2 == s:
                yield (d, s), normalise(Ptr[:, :d]), normalise(Pte[:, :d])


def _database_and_queries(lin: Linear | None, Xtr: np.ndarray, Xte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if lin is None:
        return Xtr, Xte
    return lin.apply(Xtr), lin.apply(Xte)


def _rerank(rerank: str, k: int | None, D: np.ndarray, Q: np.ndarray, alpha: float = ALPHA):
    if rerank == "none":
        return D, Q
    if rerank == "dba+qe":
        D = dba(D, k, alpha)
    return D, alpha_qe(Q, D, k, alpha)


def _grid_scores(Xtr, ytr, Xte, yte, fams: list[Family]) -> dict[Family, dict[Setting, float]]:
    """P@10 of every grid point of every family, fitted on the training rows, held-out queries."""
    out: dict[Family, dict[Setting, float]] = {f: {} for f in fams}
    transforms = list(dict.fromkeys(f.transform for f in fams))
    basis = principal_basis(Xtr) if set(transforms) - {"none"} else None
    for transform in transforms:
        mine = [f for f in fams if f.transform == transform]
        for (dims, shrink), D0, Q0 in _variants(Xtr, ytr, Xte, transform, basis):
            qd = Q0 @ D0.T
            dd = D0 @ D0.T if any(f.rerank == "dba+qe" for f in mine) else None  # only DBA needs it
            for fam in mine:
                for k in _rerank_grid(fam.rerank):
                    if fam.rerank == "none":
                        D, Q = D0, Q0
                    elif fam.rerank == "qe":
                        D, Q = D0, alpha_qe(Q0, D0, k, ALPHA, sims=qd)
                    else:
                        D = dba(D0, k, ALPHA, sims=dd)
                        Q = alpha_qe(Q0, D, k, ALPHA)
                    setting = Setting(fam, dims, shrink, k, None if k is None else ALPHA)
                    out[fam][setting] = precision_at(Q, yte, D, ytr, sims=qd if Q is Q0 and D is D0 else None)
    return out


def choose(X: Any, labels: Any, fams: list[Family], *, n_folds: int = INNER_FOLDS,
           seed: int = SEED) -> dict[Family, Setting]:
    """Each family's hyper-parameters: the grid point with the best mean P@10 over a stratified
    ``n_folds`` cross-validation of (X, labels) (ties: the earlier grid point)."""
    X = v.matrix(X, "X", min_rows=3)
    y = np.unique(v.labels(labels, X.shape[0]), return_inverse=True)[1].reshape(-1)
    folds = stratified_folds(y, n_folds, seed)
    totals: dict[Family, dict[Setting, float]] = {f: {} for f in fams}
    for fo in range(n_folds):
        tr, te = folds != fo, folds == fo
        if not te.any() or tr.sum() < 3:
            continue
        for fam, scores in _grid_scores(X[tr], y[tr], X[te], y[te], fams).items():
            for setting, p in scores.items():
                totals[fam][setting] = totals[fam].get(setting, 0.0) + p
    return {fam: max(scores, key=lambda st: scores[st]) for fam, scores in totals.items() if scores}


def fit(X: Any, labels: Any | None, setting: Setting, *, basis=None) -> Linear | None:
    """The transform of ``setting`` fitted on (X, labels): None for ``none``. ``basis``:
    :func:`~simsearch.analysis.transforms.principal_basis` of X when already computed."""
    t = setting.family.transform
    if t == "none":
        return None
    if t == "whiten":
        return fit_whitening(X, setting.dims, setting.shrinkage, basis=basis)
    return fit_discriminant(X, labels, setting.dims, setting.shrinkage, basis=basis)


def _ari(Q: np.ndarray, y: np.ndarray, seed: int) -> float | None:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from threadpoolctl import threadpool_limits

    n_classes = len(np.unique(y))
    if n_classes < 2 or len(Q) <= n_classes:
        return None
    # one thread: a fold is one or two of k-means' chunks of 256 rows, and on a busy machine OpenMP's
    # threads wait for each other (docs/tuning.md, what tune's time is spent on); the same labels
    with threadpool_limits(limits=1):
        pred = KMeans(n_clusters=n_classes, n_init=10, random_state=seed).fit_predict(Q)
    return float(adjusted_rand_score(y, pred))


def _top(Q: np.ndarray, D: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(D))
    return np.argpartition(-(Q @ D.T), k - 1, axis=1)[:, :k]


def preservation(raw_top: np.ndarray, Q: np.ndarray, D: np.ndarray, within: int = PRESERVE_WITHIN) -> float:
    """Mean fraction of each query's nearest database rows in the raw space (``raw_top``: their
    indices, one row per query) that are still among its ``within`` nearest in (Q, D). A
    re-ordering of the first pages keeps them (0.98 for the whitening on flowers102, labels on half:
    docs/spaces.md); a projection onto a few label axes loses them (0.71 at 8 dimensions there)."""
    got = _top(Q, D, within)
    return float((raw_top[:, :, None] == got[:, None, :]).any(axis=2).mean(axis=1).mean())


@dataclass
class CandidateScore:
    family: Family
    p_at_10: list[float] = field(default_factory=list)  # per outer fold
    ari: list[float] = field(default_factory=list)  # per outer fold, at k = the number of labels
    kept: list[float] = field(default_factory=list)  # per outer fold: neighbour preservation vs the raw space
    settings: list[Setting] = field(default_factory=list)  # chosen per outer fold by the inner CV
    seconds: float = 0.0

    @property
    def served(self) -> list[float]:
        """Per fold, what the space serves: the mean of P@10 (search), ARI at the label count
        (clusters, 0 when negative) and neighbour preservation (what the labels do not cover: the
        map, unlabelled images); P@10 alone where the others were not measured."""
        out = []
        for i, p in enumerate(self.p_at_10):
            parts = [p]
            if i < len(self.ari):
                parts.append(max(self.ari[i], 0.0))
            if i < len(self.kept):
                parts.append(self.kept[i])
            out.append(float(np.mean(parts)))
        return out

    @property
    def mean(self) -> float:
        return float(np.mean(self.served))

    @property
    def std(self) -> float:
        return float(np.std(self.served))

    @property
    def stderr(self) -> float:
        return self.std / np.sqrt(max(len(self.p_at_10), 1))

    def to_dict(self) -> dict:
        def ms(values):
            return (round(float(np.mean(values)), 4), round(float(np.std(values)), 4)) if values else (None, None)

        return {"candidate": self.family.name, "transform": self.family.transform, "rerank": self.family.rerank,
                "p_at_10_mean": ms(self.p_at_10)[0], "p_at_10_std": ms(self.p_at_10)[1],
                "p_at_10_folds": [round(p, 4) for p in self.p_at_10],
                "ari_mean": ms(self.ari)[0], "ari_std": ms(self.ari)[1],
                "kept_mean": ms(self.kept)[0], "kept_std": ms(self.kept)[1],
                "served_mean": round(self.mean, 4), "served_std": round(self.std, 4),
                "settings": [s.to_dict() for s in self.settings], "seconds": round(self.seconds, 3)}


def check_labelled(labels: np.ndarray, n_folds: int) -> None:
    """Raises InvalidInput unless the labels allow a ``n_folds`` cross-validation."""
    _, counts = np.unique(labels, return_counts=True)
    if len(counts) < 2:
        raise v.InvalidInput("tuning by cross-validation needs images of at least two labels", field="labels")
    if counts.max() < n_folds or len(labels) < 2 * n_folds:
        raise v.InvalidInput(f"{n_folds}-fold cross-validation needs at least {n_folds} images of a label "
                             f"and {2 * n_folds} labelled images in all (got {len(labels)})", field="labels")


def cross_validate(X: Any, labels: Any, fams: list[Family] | None = None, *, n_folds: int = OUTER_FOLDS,
                   inner_folds: int = INNER_FOLDS, seed: int = SEED, with_ari: bool = True) -> list[CandidateScore]:
    """Nested stratified cross-validation of each family on labelled rows: per outer fold, the
    hyper-parameters are chosen on the training folds (:func:`choose`), the transform is fitted on
    them and the held-out fold is scored (:func:`precision_at`, and ARI)."""
    X = v.matrix(X, "X", min_rows=3)
    y_raw = v.labels(labels, X.shape[0])
    y = np.unique(y_raw, return_inverse=True)[1].reshape(-1)
    check_labelled(y, n_folds)
    fams = fams or families()
    folds = stratified_folds(y, n_folds, seed)
    scores = {f: CandidateScore(f) for f in fams}
    for fo in range(n_folds):
        tr, te = folds != fo, folds == fo
        t0 = time.perf_counter()
        chosen = choose(X[tr], y[tr], fams, n_folds=inner_folds, seed=seed)
        basis = principal_basis(X[tr]) if any(f.transform != "none" for f in fams) else None
        raw_top = _top(X[te], X[tr], PRECISION_K)
        share = (time.perf_counter() - t0) / len(fams)
        fitted: dict[tuple, tuple] = {}  # (transform, dims, shrinkage) -> (database, queries, ARI): the
        for fam in fams:                 # families of one transform share its fit and its clusters
            t1 = time.perf_counter()
            setting = chosen[fam]
            key = (fam.transform, setting.dims, setting.shrinkage)
            if key not in fitted:
                lin = fit(X[tr], y[tr], setting, basis=basis)
                D, Q = _database_and_queries(lin, X[tr], X[te])
                fitted[key] = (D, Q, _ari(Q, y[te], seed) if with_ari else None)
            D, Q, ari = fitted[key]
            Dr, Qr = _rerank(fam.rerank, setting.k, D, Q)
            sc = scores[fam]
            sc.p_at_10.append(precision_at(Qr, y[te], Dr, y[tr]))
            sc.kept.append(preservation(raw_top, Qr, Dr))
            if ari is not None:
                sc.ari.append(ari)
            sc.settings.append(setting)
            sc.seconds += share + time.perf_counter() - t1
    return [scores[f] for f in fams]


def select(scores: list, complexity=None):
    """The one-standard-error rule: the simplest candidate whose mean served score
    (:attr:`CandidateScore.served`: P@10, ARI and neighbour preservation) is at least the best
    mean minus the best candidate's standard error. ``complexity``: a sort key (simplest first),
    by default the family's."""
    if not scores:
        raise v.InvalidInput("no candidates to choose from", field="candidates")
    complexity = complexity or (lambda s: s.family.complexity)
    best = max(scores, key=lambda s: s.mean)
    bar = best.mean - best.stderr
    ok = [s for s in scores if s.mean >= bar - 1e-12]
    return min(ok, key=lambda s: (complexity(s), -s.mean))


def stability(X: Any, setting: Setting, *, repeats: int = 3, k: int = PRECISION_K, seed: int = SEED) -> float:
    """Neighbour stability of an unsupervised transform: fitted on two disjoint random halves of
    the rows, applied to all; the mean Jaccard of every row's top-``k`` neighbours under the two
    fits, averaged over ``repeats`` seeded splits. 1.0 for ``none``."""
    X = v.matrix(X, "X", min_rows=8)
    if setting.family.supervised:
        raise v.InvalidInput("stability measures unsupervised transforms; a supervised one needs labels",
                             field="transform")
    if setting.family.transform == "none":
        return 1.0
    rng = np.random.default_rng(v.seed(seed))
    k = min(k, len(X) - 1)
    out = []
    for _ in range(repeats):
        order = rng.permutation(len(X))
        half = len(X) // 2
        a, b = fit(X[order[:half]], None, setting), fit(X[order[half:]], None, setting)
        na, _ = knn_graph(a.apply(X), k, metric="cosine")
        nb, _ = knn_graph(b.apply(X), k, metric="cosine")
        out.append(float(jaccard_rows(na, nb).mean()))
    return float(np.mean(out))


def unsupervised_grid(X: Any) -> list[Setting]:
    """The whitening grid points that fit a collection of this size (each half of a stability
    split must have more rows than the dims, so the fit is not rank-limited)."""
    X = v.matrix(X, "X", min_rows=8)
    rank = len(X) // 2 - 1
    return [Setting(Family("whiten"), d, s) for d, s in _transform_grid("whiten", 1, rank)]
