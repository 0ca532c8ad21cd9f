"""``ivf_sq8``: an IVF of 8-bit scalar-quantised vectors (``IndexIVFScalarQuantizer``), tuned by
``nprobe``. Deletions are masked, then compacted in place."""

from __future__ import annotations

from simsearch.index.kinds.ivf import IVFKind, nlist_for
from simsearch.index.kinds.registry import register


@register
class IvfSQ8(IVFKind):
    name = "ivf_sq8"
    preference = 20
    structure = "IndexIVFScalarQuantizer (8-bit)"
    scans_to_decode = True  # no direct map to decode by id: a few ids are scored by a selected scan

    def factory(self, dim: int, n: int) -> str:
        return f"IVF{nlist_for(n)},SQ8"

    def matches(self, inner) -> bool:
        import faiss

        return isinstance(inner, faiss.IndexIVFScalarQuantizer)

    def memory_bytes(self, n: int, dim: int) -> int:
        # a vector: its code and its id twice (the id map, the list); the centroids
        return n * (dim + 16) + nlist_for(n) * dim * 4 + 8 * dim
