"""What the IVF kinds share (:class:`IVFKind`, not a kind itself): inverted lists sized by the
collection (:func:`nlist_for`), trained on 40 vectors a list, searched with ``nprobe`` lists,
and compacted in place (:meth:`IVFKind.compact`)."""

from __future__ import annotations

import math

import numpy as np

from simsearch.index.kinds.base import IndexKind, held_ids, scaled

TRAIN_PER_LIST = 40  # training vectors per inverted list (FAISS's k-means warns below 39)
NPROBE_LADDER = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
                 3072, 4096, 6144, 8192)


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest below 4 sqrt(n), with at least
    39 training vectors per list (2,048 at 1M, 1,024 at 100k, 32 at 2,000)."""
    target = max(1.0, min(4 * math.sqrt(max(n, 1)), n / 39))
    return int(min(65536, 1 << int(math.log2(target))))


def ivf_of(index):
    import faiss

    return faiss.extract_index_ivf(index)


class IVFKind(IndexKind):
    """An IVF kind: subclasses give the codes (:meth:`factory`) and register themselves."""

    compacts_in_place = True

    def train_size(self, n: int) -> int:
        """40 vectors a list (81,920 at 1M, 40,960 at 100k)."""
        return min(n, TRAIN_PER_LIST * nlist_for(n))

    def sizes(self, n: int) -> dict:
        return {"nlist": nlist_for(n)}

    def trained_sizes(self, index) -> dict:
        return {"nlist": ivf_of(index).nlist}

    def training_problem(self, dim: int, n_train: int, nlist: int | None = None, **sizes) -> str | None:
        """Also: at least one training vector a list (FAISS's k-means throws below that)."""
        problem = super().training_problem(dim, n_train)
        if problem is None and nlist is not None and n_train < nlist:
            problem = f"{n_train:,} training vectors for {nlist:,} inverted lists (k-means needs one a list)"
        return problem

    def nprobe_ladder(self, index) -> list[int]:
        nlist = ivf_of(index).nlist
        return sorted({min(nlist, p) for p in NPROBE_LADDER + (nlist,)})

    def knob_grid(self, index) -> list[list[dict]]:
        return [[{"nprobe": p} for p in self.nprobe_ladder(index)]]

    def get_params(self, index) -> dict:
        ivf = ivf_of(index)
        return {"nprobe": int(ivf.nprobe), "nlist": int(ivf.nlist)}

    def set_params(self, index, params: dict) -> None:
        if "nprobe" in params:
            ivf_of(index).nprobe = int(params["nprobe"])

    def selected_params(self, index, sel, scale: float):
        import faiss

        ivf = ivf_of(index)
        return faiss.SearchParametersIVF(sel=sel, nprobe=scaled(ivf.nprobe, scale, ivf.nlist))

    def compact(self, index, ids: np.ndarray) -> bool:
        """Remove ``ids`` (masked deletions) for good, in place, without retraining or re-adding.

        IndexIDMap2.remove_ids cannot do it for an IVF: the lists keep each vector's position in
        the id map, which removal shifts. So: remove the positions from the lists (and from any
        codes kept by position: :meth:`compact_positions`), renumber the positions the lists
        keep, then shorten the id map."""
        import faiss

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
        self.compact_positions(index, pos, ivf)
        kept = np.delete(id_map, pos)
        faiss.copy_array_to_vector(kept, index.id_map)
        index.ntotal = len(kept)
        index.construct_rev_map()
        return True

    def compact_positions(self, index, pos: np.ndarray, ivf) -> None:
        """Remove the positions ``pos`` from what the kind keeps beside its lists (nothing here)."""
