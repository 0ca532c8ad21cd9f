"""``hnsw_sq8``: an HNSW graph (M=32) over 8-bit scalar-quantised vectors (``IndexHNSWSQ``),
tuned by ``efSearch``. It cannot remove vectors: deletions are masked, and compacting rebuilds it."""

from __future__ import annotations

from simsearch.index.kinds.base import IndexKind, inner_of, scaled
from simsearch.index.kinds.registry import register

HNSW_M = 32
EF_CONSTRUCTION = 40
EF_MAX = 2048
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, EF_MAX)
TRAIN_MAX = 50_000  # vectors the scalar quantiser is trained on, at most


@register
class HnswSQ8(IndexKind):
    name = "hnsw_sq8"
    preference = 30
    structure = f"IndexHNSWSQ (8-bit, M={HNSW_M})"
    untuned = True  # good enough without tuning: what faiss_index.build_index builds above its threshold
    default_params = {"efSearch": 128}

    def factory(self, dim: int, n: int) -> str:
        return f"HNSW{HNSW_M}_SQ8"

    def make(self, dim: int, n: int):
        index = super().make(dim, n)
        inner_of(index).hnsw.efConstruction = EF_CONSTRUCTION
        return index

    def matches(self, inner) -> bool:
        import faiss

        return isinstance(inner, faiss.IndexHNSWSQ)

    def memory_bytes(self, n: int, dim: int) -> int:
        # a vector: its 8-bit code, its id, 2 M links on level 0 (4 bytes each), about 4 bytes of
        # links on the upper levels (M links on 1/M of the vectors), its level and its links' offset
        return n * (dim + 8 + 2 * HNSW_M * 4 + 4 + 4 + 8) + 8 * dim

    def train_size(self, n: int) -> int:
        return min(n, TRAIN_MAX)

    def knob_grid(self, index) -> list[list[dict]]:
        return [[{"efSearch": e} for e in EF_LADDER]]

    def get_params(self, index) -> dict:
        return {"efSearch": int(inner_of(index).hnsw.efSearch), "M": HNSW_M}

    def set_params(self, index, params: dict) -> None:
        if "efSearch" in params:
            inner_of(index).hnsw.efSearch = int(params["efSearch"])

    def selection_scale(self, fraction: float) -> float:
        return 1.0 / fraction  # a graph's beam loses more than an IVF's probes to a filter

    def selected_params(self, index, sel, scale: float):
        import faiss

        return faiss.SearchParametersHNSW(sel=sel, efSearch=scaled(inner_of(index).hnsw.efSearch, scale, EF_MAX))
