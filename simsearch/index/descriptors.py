"""The descriptor index of a collection: every stored SIFT descriptor of its images
(``image_features``) in one FAISS index, the candidate source of a search by local features
(:mod:`simsearch.images.local_votes`).

Like the vector index (:mod:`simsearch.index.manager`), it is a derived cache: the database is the
source of truth. Its file is ``<index_dir>/collection-<id>/local-<method>-<signature>.faiss``,
where the signature is a digest of what it was built from (the number of images with features of
that method, the sum and the largest of their ids: :func:`simsearch.store.features.signature`). A
process re-reads the signature at most every :data:`CHECK_INTERVAL` seconds; when it differs, the
file of the new signature is opened if another process saved it, else built and saved atomically
(checksummed, like the vector index: :func:`simsearch.index.faiss_index.save_index`), and the
files of other signatures are removed. An image added or deleted, or features re-extracted,
therefore rebuild the whole index (seconds for thousands of images; no update in place yet).

Descriptors are stored exactly (SIFT's are uint8: FAISS's 8-bit direct scalar quantizer, 128
bytes and an 8-byte id each); up to :data:`IVF_AT` descriptors the search is exhaustive, above it
an inverted file (:data:`NPROBE` of ~2 sqrt(n) lists, trained on a sample of 32 a list).
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np

from simsearch.images import local_features as LF
from simsearch.images import local_votes
from simsearch.index.faiss_index import load_index, save_index
from simsearch.index.manager import writer_lock
from simsearch.paths import collection_index_dir, index_file
from simsearch.store import features as stored

# Seconds a process trusts its open descriptor index before reading the database's signature again.
CHECK_INTERVAL = 30.0
# Descriptors from which the index is an inverted file instead of an exhaustive search.
IVF_AT = 20_000
# Inverted lists visited per query keypoint (an IVF index).
NPROBE = 4
# Nearest stored descriptors looked up per query keypoint: the ratio test needs the nearest one of
# another image than the first's (a close copy's twins can fill the first few).
NEIGHBOURS = 8


def signature_text(sig: tuple[int, int, int]) -> str:
    """A short file-name-safe digest of a signature."""
    return hashlib.blake2b(repr(tuple(int(x) for x in sig)).encode(), digest_size=6).hexdigest()


def build(ids: np.ndarray, desc: np.ndarray, *, ivf_at: int = IVF_AT, seed: int = 0):
    """A FAISS index of ``desc`` ((n, d) uint8) under ``ids`` ((n,) int64): exhaustive below
    ``ivf_at`` descriptors, else an inverted file of ~2 sqrt(n) lists trained on a sample."""
    import faiss

    desc = np.ascontiguousarray(desc, np.uint8)
    n, d = desc.shape
    x = desc.astype(np.float32)
    sq = faiss.ScalarQuantizer.QT_8bit_direct  # exact for uint8 descriptors, 1 byte a dimension
    if n < ivf_at:
        index = faiss.IndexIDMap2(faiss.IndexScalarQuantizer(d, sq, faiss.METRIC_L2))
    else:
        nlist = max(64, int(2 * np.sqrt(n)))
        ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatL2(d), d, nlist, sq, faiss.METRIC_L2)
        sample = x[np.random.default_rng(seed).choice(n, min(n, 32 * nlist), replace=False)]
        ivf.train(sample)
        ivf.nprobe = NPROBE
        index = faiss.IndexIDMap2(ivf)
    if not index.is_trained:  # the 8-bit direct quantizer needs no statistics
        index.train(x[:1] if n else np.zeros((1, d), np.float32))
    if n:
        index.add_with_ids(x, np.ascontiguousarray(ids, np.int64))
    return index


def search(index, desc: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest stored descriptors of each row of ``desc``: squared L2 distances and ids
    (``-1`` where there are fewer), best first."""
    desc = np.asarray(desc)
    if index.ntotal == 0 or len(desc) == 0:
        return np.zeros((len(desc), 0), np.float32), np.zeros((len(desc), 0), np.int64)
    return index.search(np.ascontiguousarray(desc, np.float32), int(min(k, index.ntotal)))


def _arrays(rows) -> tuple[np.ndarray, np.ndarray]:
    ids, descs = [], []
    for image_id, data in rows:
        f = LF.deserialise(data)
        ids.append(local_votes.descriptor_ids(image_id, len(f)))
        descs.append(f.desc)
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, LF.DESC_BYTES[LF.DEFAULT_KIND]), np.uint8)
    return np.concatenate(ids), np.concatenate(descs)


class DescriptorIndexes:
    """The descriptor indexes this process has open (thread-safe), kept in step with the database."""

    def __init__(self, db, index_dir: Path, method: str = LF.METHOD):
        self.db = db
        self.index_dir = Path(index_dir)
        self.method = method
        self.builds = 0  # indexes built by this process (a test's way to see a rebuild)
        self._lock = threading.Lock()
        self._open: dict[int, tuple[tuple[int, int, int], object, float]] = {}
        self._coverage: dict[int, tuple[float, float]] = {}

    def path_for(self, collection_id: int, sig: tuple[int, int, int]) -> Path:
        return index_file(self.index_dir, collection_id, f"local-{self.method}-{signature_text(sig)}")

    def get(self, collection_id: int):
        """The collection's descriptor index as the database now says (None without any features)."""
        now = time.monotonic()
        with self._lock:
            entry = self._open.get(collection_id)
            if entry is not None and now - entry[2] < CHECK_INTERVAL:
                return entry[1]
            with self.db.session() as s:
                sig = stored.signature(s, collection_id, self.method)
            if entry is not None and entry[0] == sig:
                self._open[collection_id] = (sig, entry[1], now)
                return entry[1]
            index = None if sig[0] == 0 else self._open_or_build(collection_id, sig)
            self._open[collection_id] = (sig, index, now)
            return index

    def coverage(self, collection_id: int) -> float:
        """The share of the collection's images (ingested, status ok) that have features of this
        method, as the database said at most :data:`CHECK_INTERVAL` seconds ago (0 without images)."""
        now = time.monotonic()
        with self._lock:
            got = self._coverage.get(collection_id)
            if got is not None and now - got[1] < CHECK_INTERVAL:
                return got[0]
        with self.db.session() as s:
            n = stored.signature(s, collection_id, self.method)[0]
            total = stored.images_ok(s, collection_id)
        share = n / total if total else 0.0
        with self._lock:
            self._coverage[collection_id] = (share, now)
        return share

    def forget(self, collection_id: int) -> None:
        with self._lock:
            self._open.pop(collection_id, None)
            self._coverage.pop(collection_id, None)

    def _open_or_build(self, collection_id: int, sig: tuple[int, int, int]):
        path = self.path_for(collection_id, sig)
        with writer_lock(self.db, path):
            if path.exists():
                return load_index(path)
            with self.db.session() as s:
                ids, desc = _arrays(stored.of_collection(s, collection_id, self.method))
            index = build(ids, desc)
            save_index(index, path)
            self.builds += 1
            for old in collection_index_dir(self.index_dir, collection_id).glob("local-*.faiss"):
                if old != path:  # another signature's or another method's: stale
                    old.unlink(missing_ok=True)
        return index
