"""The descriptor index of a collection: every stored SIFT descriptor of its images
(``image_features``) in one FAISS index, the candidate source of a search by local features
(:mod:`simsearch.images.local_votes`).

Like the vector index (:mod:`simsearch.index.manager`), it is a derived cache: the database is the
source of truth. Its file is ``<index_dir>/collection-<id>/local-<method>-<signature>.faiss``,
where the signature is a digest of the images it holds (their number, the sum and the largest of
their ids, as :func:`simsearch.store.features.signature` reads them from the database). A process
re-reads the database's signature at most every :data:`CHECK_INTERVAL` seconds; when it differs,
under the collection's writer lock, the file of the new signature is opened if another process
saved it, else the index this process has open (or the newest saved one) is **brought up to
date**: the descriptors of the images added since are added to it, those of the images deleted
are removed (the images it holds are read from the index itself:
:func:`simsearch.index.descriptor_kinds.images_held`), and the result is checked against the
database's images. It is built again from the database only when there is no index to start from,
when the check fails, or when its trained quantizer no longer fits the size
(:func:`~simsearch.index.descriptor_kinds.stale`). The file is saved atomically (checksummed,
like the vector index: :func:`simsearch.index.faiss_index.save_index`) under the signature of the
images it was made from, and the files of other signatures are removed.

The kinds (exact below :data:`~simsearch.index.descriptor_kinds.PQ_AT` descriptors, product-
quantised above) and their training: :mod:`simsearch.index.descriptor_kinds`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path

import numpy as np

from simsearch.errors import IndexCorrupt
from simsearch.images import local_features as LF
from simsearch.images import local_votes
from simsearch.index import descriptor_kinds as K
from simsearch.index.faiss_index import save_index
from simsearch.index.integrity import read_checked
from simsearch.index.manager import writer_lock
from simsearch.paths import collection_index_dir, index_file
from simsearch.store import features as stored

log = logging.getLogger(__name__)

# Seconds a process trusts its open descriptor index before reading the database's signature again.
CHECK_INTERVAL = 30.0
# Nearest stored descriptors looked up per query keypoint: the ratio test needs the nearest one of
# another image than the first's (a close copy's twins can fill the first few).
NEIGHBOURS = 8
# Images whose features are read to choose the kind and train it (a build from the database):
# enough for the largest training sample (descriptor_kinds.MAX_LISTS x TRAIN_PER_LIST) at ~130
# descriptors an image.
TRAIN_IMAGES = 1024
# Images read from the database at a time while adding their descriptors.
READ_CHUNK = 500


def signature_text(sig: tuple[int, int, int]) -> str:
    """A short file-name-safe digest of a signature."""
    return hashlib.blake2b(repr(tuple(int(x) for x in sig)).encode(), digest_size=6).hexdigest()


def signature_of(image_ids) -> tuple[int, int, int]:
    """The signature of a set of image ids, as :func:`simsearch.store.features.signature` computes
    it in the database (Python integers: a sum of large ids does not overflow)."""
    ids = [int(i) for i in image_ids]
    return len(ids), sum(ids), max(ids, default=0)


def new_index(n: int, sample: np.ndarray, d: int = 128, *, ivf_at: int | None = None, pq_at: int | None = None,
              seed: int = 0):
    """An empty index for about ``n`` descriptors (kind: :func:`~simsearch.index.descriptor_kinds.kind_for`),
    trained on a random sample of at most :func:`~simsearch.index.descriptor_kinds.train_size` rows of
    ``sample`` (uint8 descriptors drawn from them)."""
    kind = K.kind_for(n, ivf_at=ivf_at, pq_at=pq_at)
    take = min(len(sample), K.train_size(n, kind))
    rows = np.random.default_rng(seed).choice(len(sample), take, replace=False) if take else np.zeros(0, np.int64)
    return K.empty(kind, n, np.asarray(sample)[np.sort(rows)], d, seed=seed)


def build(ids: np.ndarray, desc: np.ndarray, *, ivf_at: int | None = None, pq_at: int | None = None, seed: int = 0):
    """A FAISS index of ``desc`` ((n, d) uint8) under ``ids`` ((n,) int64), of the kind its size calls for."""
    desc = np.ascontiguousarray(desc, np.uint8)
    index = new_index(len(desc), desc, desc.shape[1], ivf_at=ivf_at, pq_at=pq_at, seed=seed)
    K.add(index, np.asarray(ids, np.int64), desc)
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


def load(path: Path):
    """A saved descriptor index (checksum verified); IndexCorrupt when it is damaged or of no kind built here."""
    index = read_checked(path)  # FAISS returns the index as its own class
    if K.kind_of(index) is None:
        raise IndexCorrupt(f"{path}: not a descriptor index of this simsearch")
    if hasattr(index, "nprobe"):
        index.nprobe = K.NPROBE
    return index


class DescriptorIndexes:
    """The descriptor indexes this process has open (thread-safe), kept in step with the database.
    ``ivf_at``, ``pq_at``: the kinds' thresholds (default: :mod:`~simsearch.index.descriptor_kinds`'s)."""

    def __init__(self, db, index_dir: Path, method: str = LF.METHOD, *, ivf_at: int | None = None,
                 pq_at: int | None = None):
        self.db = db
        self.index_dir = Path(index_dir)
        self.method = method
        self.ivf_at, self.pq_at = ivf_at, pq_at
        self.builds = 0  # indexes built from the whole database by this process (a test's way to see a rebuild)
        self.updates = 0  # indexes brought up to date in place (descriptors added or removed)
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
            if sig[0] == 0:
                index = None
            else:  # (the signature of what it holds: the database may have changed since it was read)
                sig, index = self._open_or_make(collection_id, sig, entry[1] if entry else None)
            self._open[collection_id] = (sig, index, now)
            return index

    def coverage(self, collection_id: int) -> float:
        """The share of the collection's images (ingested, status ok) that have features of this
        method, as the database said at most :data:`CHECK_INTERVAL` seconds ago (0 without images).
        Images whose original a features pass could not read (:func:`simsearch.store.features.record_unreadable`)
        are left out of the whole: they were tried, and cannot have features."""
        now = time.monotonic()
        with self._lock:
            got = self._coverage.get(collection_id)
            if got is not None and now - got[1] < CHECK_INTERVAL:
                return got[0]
        with self.db.session() as s:
            n = stored.signature(s, collection_id, self.method)[0]
            total = stored.images_ok(s, collection_id) - stored.tried_unreadable(s, collection_id, self.method)
        share = n / total if total else 0.0
        with self._lock:
            self._coverage[collection_id] = (share, now)
        return share

    def forget(self, collection_id: int) -> None:
        with self._lock:
            self._open.pop(collection_id, None)
            self._coverage.pop(collection_id, None)

    def _saved(self, collection_id: int, sig: tuple[int, int, int]):
        path = self.path_for(collection_id, sig)
        if not path.exists():
            return None
        try:
            return load(path)
        except IndexCorrupt as exc:
            log.warning("descriptor index %s: %s; made again", path.name, exc)
            path.unlink(missing_ok=True)
            return None

    def _open_or_make(self, collection_id: int, sig: tuple[int, int, int], current):
        """``(signature, index)``: the index of signature ``sig`` saved by another process, else of the
        database's images now: ``current`` (this process's, of an older signature; or the newest
        saved file) brought up to date, else built."""
        folder = collection_index_dir(self.index_dir, collection_id)
        with writer_lock(self.db, index_file(self.index_dir, collection_id, f"local-{self.method}")):
            index = self._saved(collection_id, sig)
            if index is not None:
                return sig, index
            with self.db.session() as s:
                image_ids = np.asarray(stored.image_ids(s, collection_id, self.method), np.int64)
            sig = signature_of(image_ids)  # the images it will hold (the database may have changed since)
            index = self._saved(collection_id, sig) if len(image_ids) else None
            if index is not None:
                return sig, index
            index = self._updated(collection_id, image_ids, current)
            if index is None:
                index = self._built(collection_id, image_ids)
                self.builds += 1
            else:
                self.updates += 1
            path = self.path_for(collection_id, sig)
            save_index(index, path)
            for old in folder.glob("local-*.faiss"):
                if old != path:  # another signature's or another method's: stale
                    old.unlink(missing_ok=True)
        return sig, index

    def _newest_saved(self, collection_id: int):
        prefix = self.path_for(collection_id, (0, 0, 0)).name.rsplit("-", 1)[0]  # the method, as file names spell it
        files = sorted(collection_index_dir(self.index_dir, collection_id).glob(f"{prefix}-*.faiss"),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        for path in files[:1]:
            try:
                return load(path)
            except (IndexCorrupt, OSError) as exc:
                log.warning("descriptor index %s: %s; not used", path.name, exc)
        return None

    def _updated(self, collection_id: int, image_ids: np.ndarray, current):
        """``current`` (left unchanged: searches may be using it; else the newest saved index) with
        the descriptors of the images added since put in and those of the images deleted taken
        out; None when there is none to start from, its quantizer is stale or the result does not
        hold the database's images."""
        import faiss

        base = current if current is not None else self._newest_saved(collection_id)
        if base is None or K.kind_of(base) is None:
            return None
        held = K.images_held(base)
        added, removed = np.setdiff1d(image_ids, held), np.setdiff1d(held, image_ids)
        per_image = base.ntotal / len(held) if len(held) else LF.N_FEATURES
        expected = int(base.ntotal + per_image * (len(added) - len(removed)))
        if K.stale(base, expected, ivf_at=self.ivf_at, pq_at=self.pq_at):
            return None
        index = faiss.clone_index(base) if base is current else base
        if hasattr(index, "nprobe"):
            index.nprobe = K.NPROBE
        K.remove_images(index, removed)
        without = []  # added images without descriptors (no keypoints) or deleted meanwhile
        for at in range(0, len(added), READ_CHUNK):
            chunk = added[at:at + READ_CHUNK]
            with self.db.session() as s:
                found, _ = stored.of_images(s, chunk.tolist(), self.method)
            ids, desc = _arrays(sorted(found.items()))
            K.add(index, ids, desc)
            have = set(local_votes.owners(ids[ids % local_votes.KEYPOINT_SLOTS == 0]).tolist())
            without += [i for i in chunk.tolist() if i not in have]
        now = K.images_held(index)
        if not np.array_equal(np.union1d(now, without), np.union1d(image_ids, without)):
            log.warning("descriptor index of collection %s: %d images after the update where the database has %d; "
                        "built again", collection_id, len(now), len(image_ids))
            return None
        return index

    def _built(self, collection_id: int, image_ids: np.ndarray):
        """The index of these images' stored descriptors, from the database: the kind and its
        training from the features of up to :data:`TRAIN_IMAGES` of them drawn at random, then
        every image's descriptors added, :data:`READ_CHUNK` images at a time."""
        rng = np.random.default_rng(0)
        sample_ids = image_ids if len(image_ids) <= TRAIN_IMAGES else rng.choice(image_ids, TRAIN_IMAGES, replace=False)
        with self.db.session() as s:
            found, _ = stored.of_images(s, sample_ids.tolist(), self.method)
        _, sample = _arrays(sorted(found.items()))
        n = int(round(len(sample) * len(image_ids) / max(1, len(found))))  # exact when every image is in the sample
        index = new_index(n, sample, sample.shape[1], ivf_at=self.ivf_at, pq_at=self.pq_at)
        wanted, rows = set(image_ids.tolist()), []
        with self.db.session() as s:
            for image_id, data in stored.of_collection(s, collection_id, self.method):
                if image_id in wanted:  # not one added since image_ids was read: the file names what it holds
                    rows.append((image_id, data))
                if len(rows) >= READ_CHUNK:
                    K.add(index, *_arrays(rows))
                    rows = []
        K.add(index, *_arrays(rows))
        return index
