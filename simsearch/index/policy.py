"""The index policy and its recall contract, per (collection, space).

- Below ``exact_threshold`` vectors (``SIMSEARCH_EXACT_THRESHOLD``, default 50,000) the index is
  exact (``IndexFlatIP``). Above it, a compressed approximate index: the first kind of
  :attr:`IndexPolicy.preference` (chosen by measurement, see the README's "Index policy and
  recall") whose recall check passes; exact search if none does. ``SIMSEARCH_INDEX_TYPE`` forces
  one kind. An approximate index stays approximate until the collection shrinks below half the
  threshold (no flapping around it).
- **The kinds** are registered in :mod:`simsearch.index.kinds` (one class a kind); the policy
  asks the registry for them (the preference: the kinds' ranks; the exact kind), never a name.
- **Preconditions**: a kind that FAISS cannot build for the collection's size and dimension
  (:meth:`simsearch.index.kinds.IndexKind.unfit`: training vectors against dimensions, lists against
  vectors) is never tried: the next kind of the preference that fits is, down to flat; the reason
  is logged, told to the build's progress and kept in :attr:`Built.rejected`.
- **Tuning** when an approximate index is built: ``sample_queries`` stored vectors (seeded) are
  the queries; their exact top-10 (other than themselves) come from a brute-force scan of every
  vector (``faiss.knn``, batched); the search knob (nprobe, efSearch; nprobe and k_factor for the
  refined kind) is raised until recall@10 reaches ``target_recall``
  (``SIMSEARCH_TARGET_RECALL``, default 0.95) plus a margin of 0.01; of the settings that reach
  it, the cheapest is kept. The knobs, the measured recall, the memory and the build time are
  recorded with the index state.
- **The recall check** measures an existing index the same way (:meth:`IndexManager.check_recall`,
  and after the index grew by ``recheck_growth``): a bad parameter set is found and re-tuned; the
  index is rebuilt only when tuning cannot reach the target.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from simsearch.index import kinds

log = logging.getLogger("simsearch.index")


@dataclass(frozen=True)
class IndexPolicy:
    exact_threshold: int = 50_000
    target_recall: float = 0.95
    kind: str = "auto"  # or one kind for every index above the threshold
    # the kinds the automatic policy tries, best first (None: the registered kinds by their rank,
    # simsearch.index.kinds.preference(): ivf_pq_refine, ivf_sq8, hnsw_sq8)
    preference: tuple[str, ...] | None = None
    sample_queries: int = 1000
    k: int = 10
    compact_fraction: float = 0.10  # masked (deleted) vectors beyond this share: the index is compacted
    recheck_growth: float = 0.10  # the recall is measured again when the index grew by this share
    exact_subset: int = 4096  # filtered searches over at most this many vectors are exact
    # tuning aims this far above the target: 1,000 sampled queries measure recall@10 within about
    # +-0.005, and queries from outside the collection (uploads) find their neighbours a little less
    # often than stored vectors do; the recall check flags an index below the target itself
    margin: float = 0.01
    seed: int = 0

    @classmethod
    def from_settings(cls, settings) -> "IndexPolicy":
        return cls(exact_threshold=settings.exact_threshold, target_recall=settings.target_recall,
                   kind=settings.index_type)

    def order(self, first: str | None = None) -> list[str]:
        """The kinds to try, best first: ``first`` (default: the forced kind, or the first of the
        preference), then the rest of the preference (the fallbacks when one does not fit)."""
        preference = self.preference if self.preference is not None else kinds.preference()
        first = first or (preference[0] if self.kind == "auto" else self.kind)
        return [first] + [k for k in preference if k != first]

    def kind_for(self, n: int, current: str | None = None, dim: int | None = None) -> str:
        """The kind an index of ``n`` vectors should be; ``current``: the kind it is now; ``dim``:
        their dimension, to want only a kind that FAISS can build for them (the first of
        :meth:`order` that fits, else the exact kind; None: not checked)."""
        exact = kinds.exact().name
        if self.kind != "auto" and kinds.get(self.kind).exact:
            return exact
        wanted = self.order()[0]
        if dim is not None and n >= self.exact_threshold // 2:
            wanted = kinds.fitting(self.order(), n, dim)[0]
        if kinds.is_approximate(current) and (self.kind == "auto" or current in (self.kind, wanted)):
            return current if n >= self.exact_threshold // 2 else exact
        return exact if n < self.exact_threshold else wanted


@dataclass
class Truth:
    """Sampled stored vectors as queries, with their exact nearest neighbours' ids."""

    queries: np.ndarray
    query_ids: np.ndarray
    neighbours: np.ndarray  # (m, k) ids by decreasing inner product, -1 padded (held out: the queries left out)
    rows: np.ndarray  # the queries' rows in the vectors
    seconds: float


@dataclass
class Built:
    index: object
    kind: str
    params: dict
    recall: float
    seconds: float
    curve: list[dict] = field(default_factory=list)  # every setting measured while tuning
    rejected: dict = field(default_factory=dict)  # kind -> why it was not kept


def ground_truth(ids: np.ndarray, vectors: np.ndarray, policy: IndexPolicy, *, held_out: bool = False) -> Truth:
    """``policy.sample_queries`` stored vectors (seeded) and their exact top-k by brute force.
    ``held_out``: the sampled vectors are left out of the index while it is tuned (at most a tenth
    of them), so their neighbours are taken among the others: they are queries from outside the
    index, as uploads are (a stored vector is found by a graph search with an unfair head start)."""
    import faiss

    t0 = time.perf_counter()
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    m = min(policy.sample_queries, max(1, n // 10) if held_out else n)
    rng = np.random.default_rng(policy.seed)
    rows = np.sort(rng.choice(n, m, replace=False))
    queries = np.ascontiguousarray(vectors[rows], dtype=np.float32)
    wanted = policy.k + 1 + (3 * policy.k if held_out else 0)  # room for neighbours that are queries themselves
    _, found = faiss.knn(queries, vectors, min(wanted, n), metric=faiss.METRIC_INNER_PRODUCT)
    neighbours = ids[found]
    if held_out:
        kept = np.full((m, policy.k), -1, np.int64)
        for i, row in enumerate(neighbours):
            row = row[~np.isin(row, ids[rows])][:policy.k]
            kept[i, :len(row)] = row
        neighbours = kept
    return Truth(queries, ids[rows], neighbours, rows, time.perf_counter() - t0)


def recall_of(truth: Truth, found: np.ndarray, k: int) -> float:
    """Mean recall@k of ``found`` (ids, -1 for none) against the truth, the query's own id left out."""
    total = 0.0
    for qid, want, got in zip(truth.query_ids, truth.neighbours, found):
        want = [i for i in want if i != qid and i >= 0][:k]
        if not want:
            total += 1.0
            continue
        got = {int(i) for i in got if i >= 0 and i != qid}
        total += len(got.intersection(int(i) for i in want)) / len(want)
    return total / max(1, len(truth.query_ids))


def measure(search, truth: Truth, k: int) -> float:
    """Recall@k of ``search(queries, k) -> (scores, ids)``."""
    _, found = search(truth.queries, k + 1)
    return recall_of(truth, found, k)


def tune(index, kind: str, truth: Truth, policy: IndexPolicy, n: int, *, search=None) -> tuple[dict, float, list[dict]]:
    """The cheapest setting of the index's knobs that reaches the target recall (applied to the
    index); if none does, the setting with the highest recall. Returns (params, recall, curve).
    ``search``: how to query it (default ``index.search``; an open index with masked ids passes its own)."""
    of = kinds.behaviour(kind)
    search = search or (lambda q, kk: index.search(q, kk))
    curve, reached = [], []
    best = ({}, -1.0)
    for group in of.knob_grid(index):
        for params in group:
            of.set_params(index, params)
            r = measure(search, truth, policy.k)
            curve.append(dict(params, recall=round(r, 4)))
            if r > best[1]:
                best = (params, r)
            if r >= min(1.0, policy.target_recall + policy.margin):
                reached.append((of.cost(params, n, policy.k), params, r))
                break
    params, r = min(reached, key=lambda t: t[0])[1:] if reached else best
    of.set_params(index, params)
    return of.get_params(index), r, curve


def build(ids: np.ndarray, vectors: np.ndarray, policy: IndexPolicy, *, kind: str | None = None,
          progress=None) -> Built:
    """Build the index the policy wants for these vectors, tuned; ``kind`` overrides the choice.
    ``progress(message)`` is told each step."""
    t0 = time.perf_counter()
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    say = progress or (lambda message: None)
    wanted = kind or policy.kind_for(n)
    rejected: dict = {}
    candidates = []
    if not kinds.get(wanted).exact and n:
        for cand in policy.order(wanted):
            if kinds.get(cand).exact:
                break
            problem = kinds.get(cand).unfit(n, dim)
            if problem is not None:  # FAISS would throw or crash: never tried
                rejected[cand] = problem
                # expected for a small collection under the automatic policy; a forced kind is a warning
                log.log(logging.INFO if policy.kind == "auto" else logging.WARNING,
                        "index does not fit: %s; trying the next kind", problem)
                say(f"does not fit: {problem}; trying the next kind")
                continue
            candidates.append(cand)
            if policy.kind != "auto":
                break  # a forced kind (or, when it does not fit, the first fallback that does): one try
    truth = None
    for cand in candidates:
        if truth is None:
            say(f"exact neighbours of {min(policy.sample_queries, max(1, n // 10)):,} sampled vectors (held out while tuning)")
            truth = ground_truth(ids, vectors, policy, held_out=True)
        try:
            index, params, recall, curve = _build_one(cand, ids, vectors, truth, policy, say)
        except RuntimeError as exc:  # a C++ exception of FAISS (the preconditions above keep them out)
            rejected[cand] = f"FAISS failed: {str(exc).strip().splitlines()[-1][:300]}"
            log.error("index %s: FAISS failed on %d vectors of %d dimensions; trying the next kind", cand, n, dim,
                      exc_info=exc)
            continue
        if recall >= policy.target_recall:
            return Built(index, cand, params, recall, time.perf_counter() - t0, curve, rejected)
        rejected[cand] = f"recall@{policy.k} {recall:.3f} at best ({params}) < {policy.target_recall}"
        log.warning("index %s reaches recall@%d %.3f at best, below the target %.2f: trying the next kind",
                    cand, policy.k, recall, policy.target_recall)
        del index
    exact = kinds.exact()
    index = exact.make(dim, n)
    if n:
        kinds.add(index, ids, vectors)
    return Built(index, exact.name, {}, 1.0, time.perf_counter() - t0, [], rejected)


def _build_one(kind: str, ids: np.ndarray, vectors: np.ndarray, truth: Truth, policy: IndexPolicy, say):
    """An index of ``kind`` (which fits: :meth:`IndexKind.unfit`) trained, filled (the tuning
    queries held out, then added last) and tuned: (index, params, recall, curve)."""
    of = kinds.get(kind)
    n, dim = vectors.shape
    say(f"{kind}: training on {of.train_size(n):,} of {n:,} vectors")
    index = of.make(dim, n)
    rng = np.random.default_rng(policy.seed)
    sample = vectors[np.sort(rng.choice(n, of.train_size(n), replace=False))]
    of.train(index, sample)

    del sample
    kinds.add(index, ids, vectors, skip=truth.rows, progress=lambda done, total: say(f"{kind}: added {done:,} of {total:,}"))
    say(f"{kind}: tuning for recall@{policy.k} >= {policy.target_recall}")
    params, recall, curve = tune(index, kind, truth, policy, n)
    kinds.add(index, ids[truth.rows], vectors[truth.rows])  # the held-out queries, last
    return index, params, recall, curve
