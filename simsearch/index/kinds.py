"""The kinds of FAISS index the policy chooses from (:mod:`simsearch.index.policy`), each behind
the same few operations: make and train, add, the search knobs, a search restricted to a set of
ids (label filters; deleted ids masked until compaction), and compaction.

=============== ============================================================ ===============
kind            FAISS structure (each in an IndexIDMap2: image ids)           tuned knobs
=============== ============================================================ ===============
flat            IndexFlatIP: exact                                            none
ivf_pq_refine   IndexRefine(OPQ rotation + IVF + PQ 4-bit fast-scan codes,    nprobe, k_factor
                an 8-bit scalar-quantised copy of the vectors that
                re-ranks the candidates)
ivf_sq8         IndexIVFScalarQuantizer (8-bit)                               nprobe
hnsw_sq8        IndexHNSWSQ (8-bit, M=32)                                     efSearch
=============== ============================================================ ===============

Deletes: removed from a flat index at once; masked in the approximate ones (left out of every
search) until there are enough to compact: the IVF kinds then remove them from their lists and
codes in place (:func:`compact`, seconds at 1M), HNSW is rebuilt (it cannot remove).

Inner products of L2-normalised vectors (cosine). The tuned knobs are saved in the index file
(FAISS writes nprobe, efSearch and k_factor with the index).

Preconditions: each kind says whether FAISS can build it for ``n`` vectors of ``dim`` dimensions
(:func:`unfit`, a pure function of the sizes this module trains with) and :func:`train` refuses a
sample that breaks them, before FAISS sees it: below them FAISS throws (k-means with fewer points
than centroids) or, for the OPQ rotation trained on fewer vectors than dimensions, writes past a
buffer and kills the process. The policy falls back to a kind that fits (down to flat).
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from simsearch.index.kind_names import FLAT, HNSW_SQ8, IVF_PQ_REFINE, IVF_SQ8

KINDS = (FLAT, IVF_PQ_REFINE, IVF_SQ8, HNSW_SQ8)
MASKED = (IVF_PQ_REFINE, IVF_SQ8, HNSW_SQ8)  # deleted ids are masked until compaction
COMPACTED_IN_PLACE = (IVF_PQ_REFINE, IVF_SQ8)  # the others are rebuilt to compact
HNSW_M = 32
EF_CONSTRUCTION = 40
EF_MAX = 2048
K_FACTORS = (8, 16, 32, 64)
# what one re-ranked candidate costs against one fast-scan code, for choosing (nprobe, k_factor):
# measured at 100,000 x 1,280 on the 2-core benchmark machine (see the README)
REFINE_COST = 200.0
TRAIN_PER_LIST = 40  # training vectors per inverted list (FAISS's k-means warns below 39)
OPQ_ITERATIONS = 4
OPQ_TRAIN = 10_000  # vectors the OPQ rotation is trained on (its cost does not grow with the collection)
PQ_BITS = 4  # the fast-scan codes of ivf_pq_refine (and the PQ its OPQ rotation is trained with)
IVF_KINDS = (IVF_PQ_REFINE, IVF_SQ8)


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest below 4 sqrt(n), with at least
    39 training vectors per list (2,048 at 1M, 1,024 at 100k, 32 at 2,000)."""
    target = max(1.0, min(4 * math.sqrt(max(n, 1)), n / 39))
    return int(min(65536, 1 << int(math.log2(target))))


def pq_m(dim: int) -> int:
    """PQ sub-quantizers: one per 8 dimensions (160 at 1,280: 80 bytes a vector at 4 bits)."""
    m = max(1, dim // 8)
    while dim % m:
        m -= 1
    return m


def train_size(kind: str, n: int) -> int:
    """Vectors of the collection an index of ``kind`` is trained on: 40 per inverted list (IVF
    kinds: 81,920 at 1M, 40,960 at 100k), else at most 50,000; flat is not trained."""
    if kind == FLAT:
        return 0
    if kind in IVF_KINDS:
        return min(n, TRAIN_PER_LIST * nlist_for(n))
    return min(n, 50_000)


def opq_train_size(n_train: int) -> int:
    """Vectors the OPQ rotation is trained on, of a training sample of ``n_train``."""
    return min(n_train, OPQ_TRAIN)


def training_problem(kind: str, dim: int, n_train: int, nlist: int | None = None) -> str | None:
    """Why FAISS cannot train an index of ``kind`` for ``dim``-d vectors on ``n_train`` vectors
    (``nlist`` inverted lists for the IVF kinds), or None when it can. The preconditions:

    - every kind but flat: at least one training vector, and ``dim`` >= 1;
    - IVF kinds: at least one training vector per list (FAISS's k-means throws below that);
    - ivf_pq_refine: at least 16 (2^4) training vectors, the centroids of each 4-bit PQ
      sub-quantizer (FAISS throws below that); and the OPQ rotation trained on at least ``dim``
      vectors: ``OPQMatrix::train`` sizes a buffer n x d that it fills with a d x d product, so
      below that it writes past it (heap corruption, then a segfault: FAISS 1.15).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}")
    if kind == FLAT:
        return None
    if dim < 1:
        return f"vectors of {dim} dimensions"
    if n_train < 1:
        return "no vectors to train on"
    if kind in IVF_KINDS and nlist is not None and n_train < nlist:
        return f"{n_train:,} training vectors for {nlist:,} inverted lists (k-means needs one a list)"
    if kind == IVF_PQ_REFINE:
        if n_train < 1 << PQ_BITS:
            return f"{n_train:,} training vectors for the {1 << PQ_BITS} centroids of each {PQ_BITS}-bit PQ sub-quantizer"
        opq = opq_train_size(n_train)
        if opq < dim:
            return (f"its OPQ rotation would be trained on {opq:,} vectors, fewer than their {dim:,} dimensions "
                    "(FAISS writes past a buffer there)")
    return None


def unfit(kind: str, n: int, dim: int) -> str | None:
    """Why an index of ``kind`` cannot be built for ``n`` vectors of ``dim`` dimensions (with the
    lists and training samples this module gives it: :func:`nlist_for`, :func:`train_size`), or
    None when it can. Pure: no FAISS call."""
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}")
    if kind == FLAT:
        return None
    if n < 1:
        return "no vectors"
    problem = training_problem(kind, dim, train_size(kind, n), nlist_for(n) if kind in IVF_KINDS else None)
    return f"{kind} for {n:,} vector{'s' * (n != 1)} of {dim:,} dimensions: {problem}" if problem else None


def fitting(order, n: int, dim: int) -> tuple[str, dict]:
    """The first kind of ``order`` that fits ``n`` vectors of ``dim`` dimensions (flat when none
    does), and why each one before it does not: (kind, {kind: reason})."""
    rejected = {}
    for kind in order:
        problem = unfit(kind, n, dim)
        if problem is None:
            return kind, rejected
        rejected[kind] = problem
    return FLAT, rejected


def make(kind: str, dim: int, n: int) -> faiss.Index:
    """An empty, untrained index of ``kind`` sized for about ``n`` vectors."""
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == FLAT:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if kind == HNSW_SQ8:
        inner = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, ip)
        inner.hnsw.efConstruction = EF_CONSTRUCTION
        return faiss.IndexIDMap2(inner)
    nlist = nlist_for(n)
    if kind == IVF_SQ8:
        return faiss.IndexIDMap2(faiss.index_factory(dim, f"IVF{nlist},SQ8", ip))
    if kind == IVF_PQ_REFINE:
        m = pq_m(dim)
        return faiss.IndexIDMap2(faiss.index_factory(dim, f"OPQ{m},IVF{nlist},PQ{m}x{PQ_BITS}fs,Refine(SQ8)", ip))
    raise ValueError(f"unknown index kind {kind!r}")


def train(index: faiss.Index, kind: str, sample: np.ndarray) -> None:
    """Train on ``sample`` (:func:`train_size` vectors of the collection). OPQ is trained with the
    4-bit PQ the index uses (FAISS's default, 8 bits, has 16 times the centroids to fit) on at most
    :data:`OPQ_TRAIN` vectors, then the IVF and the PQ in the rotated space."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if kind == FLAT:
        return
    problem = training_problem(kind, int(index.d), len(sample), ivf_of(index).nlist if kind in IVF_KINDS else None)
    if problem is not None or sample.ndim != 2 or sample.shape[1] != index.d:
        # a guard, not a fallback: the policy only builds kinds that fit (:func:`unfit`)
        raise ValueError(f"cannot train {kind}: {problem or f'a sample of shape {sample.shape} for {index.d} dimensions'}")
    if kind == IVF_PQ_REFINE:
        base = faiss.downcast_index(_refine(index).base_index)
        opq = faiss.downcast_VectorTransform(base.chain.at(0))
        pq = faiss.ProductQuantizer(opq.d_in, opq.M, PQ_BITS)
        opq.pq, opq.niter, opq.verbose = pq, OPQ_ITERATIONS, False
        opq.train(sample[:opq_train_size(len(sample))])
        opq.pq = None  # ``pq`` (a Python object) only served the training
    index.train(sample)


def kind_of(index: faiss.Index) -> str:
    """The kind of a loaded index (files written before the policy hold flat or HNSW-flat
    indexes: the latter counts as ``hnsw_flat``, which the policy replaces)."""
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexFlat):
        return FLAT
    if isinstance(inner, faiss.IndexRefine):
        return IVF_PQ_REFINE
    if isinstance(inner, faiss.IndexIVFScalarQuantizer):
        return IVF_SQ8
    if isinstance(inner, faiss.IndexHNSWSQ):
        return HNSW_SQ8
    return "hnsw_flat" if isinstance(inner, faiss.IndexHNSW) else type(inner).__name__


def ivf_of(index: faiss.Index):
    return faiss.extract_index_ivf(index)


def held_ids(index: faiss.Index) -> np.ndarray:
    """Every id the index holds (masked ones included), in the order of its positions."""
    return faiss.vector_to_array(index.id_map).astype(np.int64)


# ---- search knobs ---------------------------------------------------------------------------
def knob_grid(kind: str, index: faiss.Index) -> list[list[dict]]:
    """Candidate search parameters: groups, each ascending in recall and cost (the tuner takes the
    first setting of each group that reaches the target, then the cheapest of those)."""
    if kind in (IVF_SQ8, IVF_PQ_REFINE):
        nlist = ivf_of(index).nlist
        ladder = sorted({min(nlist, p) for p in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512,
                                                 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, nlist)})
        if kind == IVF_SQ8:
            return [[{"nprobe": p} for p in ladder]]
        return [[{"nprobe": p, "k_factor": kf} for p in ladder] for kf in K_FACTORS]
    if kind == HNSW_SQ8:
        return [[{"efSearch": e} for e in (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, EF_MAX)]]
    return [[{}]]


def cost(kind: str, params: dict, n: int, k: int) -> float:
    """A relative cost of one query at ``params`` (to choose among settings that reach the target)."""
    if kind == IVF_PQ_REFINE:
        nlist = max(1, nlist_for(n))
        return params["nprobe"] * n / nlist + params["k_factor"] * k * REFINE_COST
    return float(sum(params.values()))


def get_params(index: faiss.Index, kind: str) -> dict:
    if kind in (IVF_SQ8, IVF_PQ_REFINE):
        out = {"nprobe": int(ivf_of(index).nprobe), "nlist": int(ivf_of(index).nlist)}
        if kind == IVF_PQ_REFINE:
            out["k_factor"] = int(round(_refine(index).k_factor))
        return out
    if kind == HNSW_SQ8:
        return {"efSearch": int(_hnsw(index).hnsw.efSearch), "M": HNSW_M}
    return {}


def set_params(index: faiss.Index, kind: str, params: dict) -> None:
    if "nprobe" in params:
        ivf_of(index).nprobe = int(params["nprobe"])
    if "k_factor" in params:
        _refine(index).k_factor = float(params["k_factor"])
    if "efSearch" in params:
        _hnsw(index).hnsw.efSearch = int(params["efSearch"])


def _refine(index: faiss.Index):
    return faiss.downcast_index(index.index)


def _hnsw(index: faiss.Index):
    return faiss.downcast_index(index.index)


# ---- updates ----------------------------------------------------------------------------------
def add(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray, batch: int = 100_000, progress=None,
        skip: np.ndarray | None = None) -> None:
    """Add in batches (``progress(done, total)`` after each); ``skip``: rows left out (sorted)."""
    for start in range(0, len(ids), batch):
        stop = min(len(ids), start + batch)
        keep = slice(None)
        if skip is not None and len(skip):
            keep = ~np.isin(np.arange(start, stop), skip)
        index.add_with_ids(np.ascontiguousarray(vectors[start:stop][keep], dtype=np.float32),
                           np.ascontiguousarray(ids[start:stop][keep], dtype=np.int64))
        if progress is not None:
            progress(stop, len(ids))


def remove(index: faiss.Index, kind: str, ids: np.ndarray) -> int:
    """Remove ``ids`` from a flat index (the others mask them until :func:`compact`)."""
    if kind != FLAT:
        raise ValueError(f"{kind} indexes mask deleted ids until they are compacted")
    return int(index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))))


def compact(index: faiss.Index, kind: str, ids: np.ndarray) -> bool:
    """Remove ``ids`` (masked deletions) for good from an IVF kind, in place, without retraining
    or re-adding anything; False for kinds that must be rebuilt instead.

    IndexIDMap2.remove_ids cannot do it for an IVF: the lists keep each vector's position in the
    id map, which removal shifts. So: remove the positions from the lists (and from the refine
    codes, which shift like the id map), renumber the positions the lists keep, then shorten the
    id map."""
    if kind not in COMPACTED_IN_PLACE:
        return False
    id_map = held_ids(index)
    pos = np.flatnonzero(np.isin(id_map, ids)).astype(np.int64)
    if not len(pos):
        return True
    ivf = ivf_of(index)
    ivf.remove_ids(faiss.IDSelectorBatch(pos))
    lists = ivf.invlists
    for i in range(ivf.nlist):
        size = lists.list_size(i)
        if size:
            stored = faiss.rev_swig_ptr(lists.get_ids(i), size)  # a view: renumbered in place
            stored -= np.searchsorted(pos, stored)
    if kind == IVF_PQ_REFINE:
        refine = _refine(index)
        refine.refine_index.remove_ids(faiss.IDSelectorBatch(pos))
        refine.base_index.ntotal = refine.ntotal = ivf.ntotal
    kept = np.delete(id_map, pos)
    faiss.copy_array_to_vector(kept, index.id_map)
    index.ntotal = len(kept)
    index.construct_rev_map()
    return True


# ---- searches restricted to some ids ------------------------------------------------------------
def search_selected(index: faiss.Index, kind: str, q: np.ndarray, k: int, *, allowed: np.ndarray | None,
                    masked: np.ndarray, fraction: float, positions=None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k among ``allowed`` ids (None: all), never ``masked`` ones. ``fraction``: the share of
    the index that may match; the search knob is raised for it: nprobe by 1 / sqrt(fraction)
    (measured at 100k: recall@10 within a random 5% 0.989 as with 1 / fraction, 0.966 unraised,
    at 0.72 of the time of 1 / fraction), efSearch by 1 / fraction (a graph's beam loses more).
    ``positions``: external ids -> positions in the id map (needed for ``ivf_pq_refine``)."""
    if allowed is not None:
        sel_ids, invert = allowed, False
    else:
        sel_ids, invert = masked, True
    fraction = max(fraction, 1e-6)
    scale = 1.0 / (fraction if kind == HNSW_SQ8 else math.sqrt(fraction))
    if kind == IVF_PQ_REFINE:  # IndexRefine takes no selector: select positions in its base index
        inner = _refine(index)
        pos = positions(sel_ids)
        sel = _selector(pos, invert)
        base = faiss.SearchParametersIVF(sel=sel, nprobe=_scaled(ivf_of(index).nprobe, scale, ivf_of(index).nlist))
        params = faiss.IndexRefineSearchParameters(k_factor=inner.k_factor, base_index_params=base)
        scores, found = inner.search(q, k, params=params)
        id_map = positions.id_map
        return scores, np.where(found >= 0, id_map[np.maximum(found, 0)], -1)
    sel = _selector(sel_ids, invert)
    if kind == IVF_SQ8:
        ivf = ivf_of(index)
        params = faiss.SearchParametersIVF(sel=sel, nprobe=_scaled(ivf.nprobe, scale, ivf.nlist))
    elif kind == HNSW_SQ8:
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=_scaled(_hnsw(index).hnsw.efSearch, scale, EF_MAX))
    else:
        params = faiss.SearchParameters(sel=sel)
    return index.search(q, k, params=params)


def _scaled(value: int, scale: float, most: int) -> int:
    return int(min(most, max(value, math.ceil(value * scale))))


def _selector(ids: np.ndarray, invert: bool):
    inner = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
    if not invert:
        return inner
    sel = faiss.IDSelectorNot(inner)
    sel.referenced = inner  # keep the wrapped selector alive as long as this one
    return sel
