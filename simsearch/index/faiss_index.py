"""FAISS indexes: a derived cache of the database's vectors, one per (collection, space).

- FAISS ids are image ids; inner product on L2-normalised vectors (= cosine similarity).
- :func:`build_index` (indexes built outside the policy): exact search (``IndexFlatIP``) up to
  ``HNSW_THRESHOLD`` vectors, HNSW above it (approximate, but keeps single-query latency low at
  100k+ vectors).
- Saved atomically: written to a temporary file in the same folder, fsynced, then renamed; the
  file ends with a checksum of its bytes, verified before FAISS reads it (:mod:`.integrity`).
- Checked when opened (by :mod:`simsearch.index.manager`, which owns the layout and the
  reuse/extend/rebuild policy): the ids it holds must match the database's.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simsearch.errors import IndexCorrupt, InvalidInput
from simsearch.index.integrity import read_checked, write_checksummed
from simsearch.index import kinds

HNSW_THRESHOLD = 50_000
TUNED_K = 10  # the k the policy tunes for (recall@10); fewer results are taken from a top-10


def build_index(ids: np.ndarray, vectors: np.ndarray, *, hnsw_threshold: int = HNSW_THRESHOLD,
                kind: str | None = None) -> faiss.Index:
    """An index of ``kind`` (default: exact below ``hnsw_threshold`` vectors, HNSW+SQ8 above),
    with its default search parameters. The index manager builds through the index policy
    instead (:mod:`simsearch.index.policy`: the kind by size, tuned to a recall target; the kinds:
    :mod:`simsearch.index.kinds`). Untuned: the kind's ``default_params``."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise InvalidInput(f"vectors must be (N, D) with N ids; got {vectors.shape} and {len(ids)} ids", field="vectors")
    kind = kind or (kinds.untuned().name if len(ids) >= hnsw_threshold else kinds.exact().name)
    of = kinds.get(kinds.fitting([kind], len(ids), vectors.shape[1])[0])  # exact when FAISS cannot build that kind
    index = of.make(vectors.shape[1], len(ids))
    of.train(index, vectors[:of.train_size(len(ids))])
    of.set_params(index, of.default_params)
    if len(ids):
        kinds.add(index, ids, vectors)
    return index


def index_ids(index: faiss.Index) -> np.ndarray:
    import faiss

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


def load_index(path: Path, *, mmap: bool = False, check: bool = True) -> faiss.Index:
    """The index saved at ``path``; IndexCorrupt when it is missing, fails its checksum (damaged,
    truncated, or saved without one), or cannot be read. ``mmap``: mapped read-only from the file
    (shared through the page cache; never to be changed: see :func:`~simsearch.index.integrity.read_checked`),
    else read into this process's memory. ``check``: False skips the checksum pass (a file this
    process has just saved)."""
    import faiss

    if not path.exists():
        raise IndexCorrupt(f"{path}: index file missing")
    index = read_checked(path, mmap=mmap, check=check)
    if not hasattr(index, "id_map"):
        index = faiss.downcast_index(index)
    if not isinstance(index, (faiss.IndexIDMap2, faiss.IndexIDMap)):
        raise IndexCorrupt(f"{path}: not an id-mapped index")
    return index


@dataclass
class LoadedIndex:
    """An open index plus what it was checked against. ``masked``: ids of deleted vectors it still
    holds (kinds that cannot remove), left out of every search until it is compacted. ``mapped``:
    the index is memory-mapped read-only from its file (never changed, not even by an update)."""

    index: faiss.Index
    fingerprint: str
    generation: int
    rebuilt: bool = False
    kind: str | None = None
    masked: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    exact_subset: int = 4096  # a filter that leaves at most this many vectors is searched exactly
    mapped: bool = False
    _positions: "_Positions | None" = field(default=None, repr=False)

    def __post_init__(self):
        if self.kind is None:
            self.kind = kinds.kind_of(self.index)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal) - len(self.masked)

    def positions(self) -> "_Positions":
        """The ids the index holds, in its own order (made once: the index is never changed in place)."""
        if self._positions is None:
            self._positions = _Positions(index_ids(self.index))
        return self._positions

    def search(self, query: np.ndarray, k: int, *, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for one or more L2-normalised queries; ids -1 mean no result.
        ``allowed_ids``: only these (a label filter). Masked ids are never returned."""
        q = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
        if self.ntotal == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        k = max(1, min(int(k), self.ntotal))
        of = kinds.behaviour(self.kind)
        if not of.exact and k < min(TUNED_K, self.ntotal):  # as many candidates as when tuned
            scores, ids = self.search(q, min(TUNED_K, self.ntotal), allowed_ids=allowed_ids)  # (IndexRefine re-ranks k * k_factor)
            return scores[:, :k], ids[:, :k]
        if allowed_ids is None and not len(self.masked):
            return self.index.search(q, k)  # the tuned knobs are set on the index
        allowed = None
        if allowed_ids is not None:
            allowed = np.setdiff1d(np.asarray(allowed_ids, dtype=np.int64), self.masked)
            if len(allowed) == 0:
                return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
            if not of.exact and len(allowed) <= self.exact_subset:
                return self._exact(q, min(k, len(allowed)), allowed)
        fraction = (len(allowed) if allowed is not None else self.ntotal) / max(1, int(self.index.ntotal))
        return of.search_selected(self.index, q, k, allowed=allowed, masked=self.masked, fraction=fraction,
                                  positions=self.positions() if of.selects_positions else None)

    def _exact(self, q: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every allowed vector scored (as the index stores it: 8-bit codes for the compressed kinds)."""
        allowed = self.positions().held(allowed)  # ids added to the database since the index was synced are not in it
        if len(allowed) == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        k = min(k, len(allowed))
        of = kinds.behaviour(self.kind)
        if of.scans_to_decode:  # no direct map to decode by id: every list scanned, only these scored
            return of.search_selected(self.index, q, k, allowed=allowed, masked=self.masked, fraction=0.0)

        import faiss

        vectors = self.index.reconstruct_batch(np.ascontiguousarray(allowed, dtype=np.int64))
        # scored by FAISS, not numpy: a few queries go through its own SIMD loop on this thread,
        # where OpenBLAS would wake its threads (~8 ms for 1,000 vectors on a busy 2-core host)
        scores, top = faiss.knn(q, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
        return scores, allowed[top]


class _Positions:
    """The ids an index holds: which of some ids it holds, and their positions in its id map
    (searches that select inside an IndexRefine, which knows positions, not ids)."""

    def __init__(self, id_map: np.ndarray):
        self.id_map = id_map
        self.order = np.argsort(id_map, kind="stable")
        self.sorted = id_map[self.order]

    def _found(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, dtype=np.int64)
        if not len(self.sorted):
            return np.zeros(0, np.int64), np.zeros(len(ids), bool)
        at = np.minimum(np.searchsorted(self.sorted, ids), len(self.sorted) - 1)
        return at, self.sorted[at] == ids

    def held(self, ids: np.ndarray) -> np.ndarray:
        at, ok = self._found(ids)
        return np.asarray(ids, dtype=np.int64)[ok]

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        at, ok = self._found(ids)
        return self.order[at[ok]]
