"""``ivf_pq_refine``: ``IndexRefine`` of an OPQ rotation + IVF + PQ 4-bit fast-scan codes, with
an 8-bit scalar-quantised copy of the vectors that re-ranks the candidates. Tuned by ``nprobe``
and ``k_factor`` (candidates re-ranked: k x k_factor). Deletions are masked, then compacted in
place (the refine codes too).

Preconditions beyond the IVF's: at least 16 (2^4) training vectors, the centroids of each 4-bit
PQ sub-quantizer (FAISS throws below that); and the OPQ rotation trained on at least ``dim``
vectors: ``OPQMatrix::train`` sizes a buffer n x d that it fills with a d x d product, so below
that it writes past it (heap corruption, then a segfault: FAISS 1.15)."""

from __future__ import annotations

import numpy as np

from simsearch.index.kinds.base import inner_of, selector, scaled
from simsearch.index.kinds.ivf import IVFKind, ivf_of, nlist_for
from simsearch.index.kinds.registry import register

K_FACTORS = (8, 16, 32, 64)
# what one re-ranked candidate costs against one fast-scan code, for choosing (nprobe, k_factor):
# measured at 100,000 x 1,280 on the 2-core benchmark machine (see docs/index-policy.md)
REFINE_COST = 200.0
OPQ_ITERATIONS = 4
OPQ_TRAIN = 10_000  # vectors the OPQ rotation is trained on (its cost does not grow with the collection)
PQ_BITS = 4  # the fast-scan codes (and the PQ the OPQ rotation is trained with)


def pq_m(dim: int) -> int:
    """PQ sub-quantizers: one per 8 dimensions (160 at 1,280: 80 bytes a vector at 4 bits)."""
    m = max(1, dim // 8)
    while dim % m:
        m -= 1
    return m


def opq_train_size(n_train: int) -> int:
    """Vectors the OPQ rotation is trained on, of a training sample of ``n_train``."""
    return min(n_train, OPQ_TRAIN)


@register
class IvfPQRefine(IVFKind):
    name = "ivf_pq_refine"
    preference = 10
    selects_positions = True  # IndexRefine takes no selector: positions are selected in its base index
    structure = ("IndexRefine(OPQ rotation + IVF + PQ 4-bit fast-scan codes, an 8-bit scalar-quantised copy of "
                 "the vectors that re-ranks the candidates)")

    def factory(self, dim: int, n: int) -> str:
        m = pq_m(dim)
        return f"OPQ{m},IVF{nlist_for(n)},PQ{m}x{PQ_BITS}fs,Refine(SQ8)"

    def matches(self, inner) -> bool:
        import faiss

        return isinstance(inner, faiss.IndexRefine)

    def memory_bytes(self, n: int, dim: int) -> int:
        # a vector: its 4-bit PQ code, its 8-bit copy, its id twice; the centroids and the rotation
        return n * (pq_m(dim) * PQ_BITS // 8 + dim + 16) + nlist_for(n) * dim * 4 + dim * dim * 4

    def training_problem(self, dim: int, n_train: int, nlist: int | None = None, **sizes) -> str | None:
        problem = super().training_problem(dim, n_train, nlist)
        if problem is not None:
            return problem
        if n_train < 1 << PQ_BITS:
            return f"{n_train:,} training vectors for the {1 << PQ_BITS} centroids of each {PQ_BITS}-bit PQ sub-quantizer"
        opq = opq_train_size(n_train)
        if opq < dim:
            return (f"its OPQ rotation would be trained on {opq:,} vectors, fewer than their {dim:,} dimensions "
                    "(FAISS writes past a buffer there)")
        return None

    def train(self, index, sample: np.ndarray) -> None:
        """OPQ is trained with the 4-bit PQ the index uses (FAISS's default, 8 bits, has 16 times
        the centroids to fit) on at most :data:`OPQ_TRAIN` vectors, then the IVF and the PQ in the
        rotated space."""
        import faiss

        sample = np.ascontiguousarray(sample, dtype=np.float32)
        self.check_sample(index, sample)
        base = faiss.downcast_index(inner_of(index).base_index)
        opq = faiss.downcast_VectorTransform(base.chain.at(0))
        pq = faiss.ProductQuantizer(opq.d_in, opq.M, PQ_BITS)
        opq.pq, opq.niter, opq.verbose = pq, OPQ_ITERATIONS, False
        opq.train(sample[:opq_train_size(len(sample))])
        opq.pq = None  # ``pq`` (a Python object) only served the training
        index.train(sample)

    def knob_grid(self, index) -> list[list[dict]]:
        ladder = self.nprobe_ladder(index)
        return [[{"nprobe": p, "k_factor": kf} for p in ladder] for kf in K_FACTORS]

    def cost(self, params: dict, n: int, k: int) -> float:
        nlist = max(1, nlist_for(n))
        return params["nprobe"] * n / nlist + params["k_factor"] * k * REFINE_COST

    def get_params(self, index) -> dict:
        return dict(super().get_params(index), k_factor=int(round(inner_of(index).k_factor)))

    def set_params(self, index, params: dict) -> None:
        super().set_params(index, params)
        if "k_factor" in params:
            inner_of(index).k_factor = float(params["k_factor"])

    def compact_positions(self, index, pos: np.ndarray, ivf) -> None:
        import faiss

        refine = inner_of(index)  # the refine codes are kept by position, as the id map
        refine.refine_index.remove_ids(faiss.IDSelectorBatch(pos))
        refine.base_index.ntotal = refine.ntotal = ivf.ntotal

    def search_selected(self, index, q: np.ndarray, k: int, *, allowed: np.ndarray | None, masked: np.ndarray,
                        fraction: float, positions=None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        sel_ids, invert = (allowed, False) if allowed is not None else (masked, True)
        scale = self.selection_scale(max(fraction, 1e-6))
        inner = inner_of(index)
        sel = selector(positions(sel_ids), invert)
        ivf = ivf_of(index)
        base = faiss.SearchParametersIVF(sel=sel, nprobe=scaled(ivf.nprobe, scale, ivf.nlist))
        params = faiss.IndexRefineSearchParameters(k_factor=inner.k_factor, base_index_params=base)
        scores, found = inner.search(q, k, params=params)
        return scores, np.where(found >= 0, positions.id_map[np.maximum(found, 0)], -1)
