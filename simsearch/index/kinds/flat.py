"""``flat``: exact search (``IndexFlatIP``): no training, no knobs; deletions removed at once.
The policy's choice below the exact threshold and its last resort above it."""

from __future__ import annotations

import numpy as np

from simsearch.index.kinds.base import IndexKind
from simsearch.index.kinds.registry import register


@register
class Flat(IndexKind):
    name = "flat"
    exact = True
    masks_deletions = False
    structure = "IndexFlatIP: exact"

    def factory(self, dim: int, n: int) -> str:
        return "Flat"

    def matches(self, inner) -> bool:
        import faiss

        return isinstance(inner, faiss.IndexFlat)

    def memory_bytes(self, n: int, dim: int) -> int:
        return n * (4 * dim + 8)  # the float vectors and their ids

    def remove(self, index, ids: np.ndarray) -> int:
        import faiss

        return int(index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))))
