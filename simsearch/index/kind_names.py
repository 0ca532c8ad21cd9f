"""The names of the index kinds, which the policy (:mod:`.policy`: which kind, when) and the kinds
themselves (:mod:`.kinds`: FAISS, imported only by the latter) both use."""

FLAT, IVF_PQ_REFINE, IVF_SQ8, HNSW_SQ8 = "flat", "ivf_pq_refine", "ivf_sq8", "hnsw_sq8"
