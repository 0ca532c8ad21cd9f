"""FAISS indexes: a derived cache of the database's vectors, one per (collection, space).

- FAISS ids are image ids; inner product on L2-normalised vectors (= cosine similarity).
- Exact search (``IndexFlatIP``) up to ``HNSW_THRESHOLD`` vectors, HNSW above it (approximate,
  but keeps single-query latency low at 100k+ vectors).
- Saved atomically: written to a temporary file in the same folder, fsynced, then renamed; the
  file ends with a checksum of its bytes, verified before FAISS reads it (:mod:`.integrity`).
- Checked when opened (by :mod:`simsearch.index.manager`, which owns the layout and the
  reuse/extend/rebuild policy): the ids it holds must match the database's.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from simsearch.errors import IndexCorrupt, InvalidInput
from simsearch.index.integrity import read_checked, write_checksummed

HNSW_THRESHOLD = 50_000
HNSW_M = 32
HNSW_EF_SEARCH = 128


def build_index(ids: np.ndarray, vectors: np.ndarray, *, hnsw_threshold: int = HNSW_THRESHOLD) -> faiss.Index:
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise InvalidInput(f"vectors must be (N, D) with N ids; got {vectors.shape} and {len(ids)} ids", field="vectors")
    dim = vectors.shape[1]
    if len(ids) >= hnsw_threshold:
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        inner = faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def index_ids(index: faiss.Index) -> np.ndarray:
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def save_index(index: faiss.Index, path: Path) -> None:
    """Write atomically: temp file in the same folder (with its checksum trailer), fsync, rename,
    fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write_checksummed(index, fh)  # the FAISS bytes, then their checksum (simsearch.index.integrity)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_index(path: Path) -> faiss.Index:
    """The index saved at ``path``; IndexCorrupt when it is missing, fails its checksum (damaged,
    truncated, or saved without one), or cannot be read."""
    if not path.exists():
        raise IndexCorrupt(f"{path}: index file missing")
    index = read_checked(path)
    if not hasattr(index, "id_map"):
        index = faiss.downcast_index(index)
    if not isinstance(index, (faiss.IndexIDMap2, faiss.IndexIDMap)):
        raise IndexCorrupt(f"{path}: not an id-mapped index")
    return index


@dataclass
class LoadedIndex:
    """An open index plus what it was checked against."""

    index: faiss.Index
    fingerprint: str
    generation: int
    rebuilt: bool = False

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, query: np.ndarray, k: int, *, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one or more L2-normalised queries; ids -1 mean no result."""
        q = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
        k = max(1, min(int(k), self.ntotal)) if self.ntotal else 1
        params = None
        if allowed_ids is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64)))
        if self.ntotal == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        scores, ids = self.index.search(q, k, params=params) if params is not None else self.index.search(q, k)
        return scores, ids
