"""The FAISS side of the descriptor index (:mod:`simsearch.index.descriptors`): which kind of
index a number of SIFT descriptors gets, how it is trained (on a bounded sample), which images an
index holds, and how it is changed in place (descriptors added, images removed) instead of built
again.

Three kinds, by the number of descriptors ``n``:

- ``exhaustive`` (below :data:`IVF_AT`): every descriptor scored, kept exactly (SIFT's are uint8: FAISS's
  8-bit direct scalar quantizer, 128 bytes a descriptor) under an id map;
- ``ivf-sq8`` (from :data:`IVF_AT`): an inverted file of :func:`lists_for` lists, :data:`NPROBE`
  visited, descriptors still exact;
- ``ivf-pq`` (from :data:`PQ_AT`): the same inverted file with product-quantised descriptors
  (:data:`PQ_M` bytes a descriptor, residuals to the list's centroid).

An inverted file holds the descriptor ids itself (``add_with_ids``; ``remove_ids`` takes them out
of their lists): no id map, so nothing to renumber when images are removed. Its quantizer (and the
product quantizer's codebooks) are trained once, on :data:`TRAIN_PER_LIST` descriptors a list
(:data:`MAX_LISTS` lists at most: a sample of at most 131,072 descriptors whatever the collection's
size; a product quantizer at least :data:`PQ_TRAIN`); descriptors added later are encoded with
them. :func:`stale` says when they no longer fit the size the index has grown or shrunk to (then
it is built again).
"""

from __future__ import annotations

import numpy as np

from simsearch.images import local_votes

# Descriptors from which the index is an inverted file instead of an exhaustive search.
IVF_AT = 20_000
# Descriptors from which the inverted file's descriptors are product-quantised (~360 pictures; below,
# the exact index takes under 14 MB). docs/region-search.md, "Memory": PQ16 lost no wall photo's target
# from the candidates at 128,534 and 618,378 descriptors, at a fifth of the bytes.
PQ_AT = 100_000
# Bytes of product-quantisation code a descriptor (sub-vectors of 128 / PQ_M dimensions, 8 bits each).
PQ_M = 16
# Inverted lists visited per query keypoint (an IVF index).
NPROBE = 4
# Lists of an inverted file: ~2 sqrt(n), at least MIN_LISTS, at most MAX_LISTS (the training cost grows
# with lists x sample, i.e. with the square of the lists).
MIN_LISTS = 64
MAX_LISTS = 4096
# Training sample: this many descriptors a list (k-means' rule of thumb is 30-256), and for a product
# quantizer at least PQ_TRAIN (FAISS asks 39 points for each of a sub-quantizer's 256 centroids).
TRAIN_PER_LIST = 32
PQ_TRAIN = 9_984
# An inverted file is trained again when the lists the size now calls for are this many times more
# (or fewer) than it has: with ~2 sqrt(n) lists, a size 4x (or 1/4 of) the one it was trained at.
STALE_LISTS = 2.0
# Descriptors converted to float32 and added at a time (bounds the memory of a build or an update).
ADD_CHUNK = 65_536

KINDS = ("exhaustive", "ivf-sq8", "ivf-pq")


def kind_for(n: int, *, ivf_at: int | None = None, pq_at: int | None = None) -> str:
    """The kind an index of ``n`` descriptors is built as."""
    ivf_at = IVF_AT if ivf_at is None else ivf_at
    pq_at = PQ_AT if pq_at is None else pq_at
    return "ivf-pq" if n >= max(pq_at, ivf_at) else "ivf-sq8" if n >= ivf_at else "exhaustive"


def lists_for(n: int) -> int:
    return int(np.clip(int(2 * np.sqrt(max(n, 1))), MIN_LISTS, MAX_LISTS))


def train_size(n: int, kind: str) -> int:
    """Descriptors the kind's training needs at most (0: none)."""
    if kind == "exhaustive":
        return 0
    return min(n, max(TRAIN_PER_LIST * lists_for(n), PQ_TRAIN if kind == "ivf-pq" else 0))


def kind_of(index) -> str | None:
    """The kind of an index built here; None for anything else (an older layout: an id map over an
    inverted file), which is built again."""
    import faiss

    if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        return "exhaustive" if isinstance(faiss.downcast_index(index.index), faiss.IndexScalarQuantizer) else None
    if isinstance(index, faiss.IndexIVFPQ):
        return "ivf-pq"
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        return "ivf-sq8"
    return None


def empty(kind: str, n: int, sample: np.ndarray, d: int = 128, *, seed: int = 0, m: int | None = None):
    """An empty index of ``kind`` sized for ``n`` descriptors, trained on ``sample`` ((s, d) uint8,
    a random sample of them; unused by ``exhaustive``)."""
    import faiss

    sq = faiss.ScalarQuantizer.QT_8bit_direct  # exact for uint8 descriptors, 1 byte a dimension
    if kind == "exhaustive":
        index = faiss.IndexIDMap2(faiss.IndexScalarQuantizer(d, sq, faiss.METRIC_L2))
        index.train(np.zeros((1, d), np.float32))  # the 8-bit direct quantizer needs no statistics
        return index
    nlist = lists_for(n)
    quantizer = faiss.IndexFlatL2(d)
    if kind == "ivf-pq":
        index = faiss.IndexIVFPQ(quantizer, d, nlist, m or PQ_M, 8, faiss.METRIC_L2)
    elif kind == "ivf-sq8":
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, sq, faiss.METRIC_L2)
    else:
        raise ValueError(f"unknown descriptor index kind {kind!r}")
    index.cp.seed = seed
    if kind == "ivf-pq":
        index.pq.cp.seed = seed
    threads = faiss.omp_get_max_threads()
    # one thread, as simsearch.analysis.cluster trains k-means: on the busy 2 cores the OpenMP barriers
    # of k-means' many short loops made a PQ16 training of 23,000 descriptors take 23 s instead of 6
    faiss.omp_set_num_threads(1)
    try:
        index.train(np.ascontiguousarray(sample, np.float32))
    finally:
        faiss.omp_set_num_threads(threads)
    index.nprobe = NPROBE
    return index


def add(index, ids: np.ndarray, desc: np.ndarray) -> None:
    """Add descriptors (uint8) under their ids, :data:`ADD_CHUNK` at a time."""
    for at in range(0, len(ids), ADD_CHUNK):
        x = np.ascontiguousarray(desc[at:at + ADD_CHUNK], np.float32)
        index.add_with_ids(x, np.ascontiguousarray(ids[at:at + ADD_CHUNK], np.int64))


def _id_blocks(index):
    """The descriptor ids an index holds, a block at a time (one inverted list, or the id map)."""
    import faiss

    if not hasattr(index, "invlists"):
        yield faiss.vector_to_array(index.id_map).astype(np.int64)
        return
    lists = index.invlists
    for lst in range(index.nlist):
        size = lists.list_size(lst)
        if size:
            yield faiss.rev_swig_ptr(lists.get_ids(lst), size).astype(np.int64)


def ids_held(index) -> np.ndarray:
    """Every descriptor id the index holds, sorted."""
    blocks = list(_id_blocks(index))
    return np.sort(np.concatenate(blocks)) if blocks else np.zeros(0, np.int64)


def images_held(index) -> np.ndarray:
    """The images (sorted ids) with at least one descriptor in the index: those holding their
    keypoint 0 (every image's descriptors are numbered from it: :func:`local_votes.descriptor_ids`)."""
    first = [b[b % local_votes.KEYPOINT_SLOTS == 0] for b in _id_blocks(index)]
    return np.sort(local_votes.owners(np.concatenate(first))) if first else np.zeros(0, np.int64)


def remove_images(index, image_ids: np.ndarray) -> int:
    """Take every descriptor of these images out of the index; the number removed."""
    import faiss

    image_ids = np.asarray(image_ids, np.int64)
    if not len(image_ids) or index.ntotal == 0:
        return 0
    gone = [b[np.isin(local_votes.owners(b), image_ids)] for b in _id_blocks(index)]
    gone = np.concatenate(gone) if gone else np.zeros(0, np.int64)
    if not len(gone):
        return 0
    return int(index.remove_ids(faiss.IDSelectorBatch(len(gone), faiss.swig_ptr(np.ascontiguousarray(gone)))))


def stale(index, n: int, *, ivf_at: int | None = None, pq_at: int | None = None) -> bool:
    """Whether an index about to hold ``n`` descriptors should be built again rather than changed:
    another kind than :func:`kind_for` gives (a larger kind is kept down to half its threshold, so
    that a size that goes back and forth across one does not rebuild each time), or an inverted
    file whose lists are :data:`STALE_LISTS` times more or fewer than :func:`lists_for` ``n``."""
    have, want = kind_of(index), kind_for(n, ivf_at=ivf_at, pq_at=pq_at)
    if have is None:
        return True
    if have != want:
        if KINDS.index(have) < KINDS.index(want):
            return True
        floor = kind_for(2 * n, ivf_at=ivf_at, pq_at=pq_at)  # still this kind at twice the size?
        if KINDS.index(floor) < KINDS.index(have):
            return True
    if have == "exhaustive":
        return False
    ratio = lists_for(n) / index.nlist
    return ratio >= STALE_LISTS or ratio <= 1 / STALE_LISTS


def code_bytes(index) -> int:
    """Bytes a descriptor takes in the index (its code and its id), as stored in memory and on disk."""
    import faiss

    if hasattr(index, "invlists"):
        return int(faiss.extract_index_ivf(index).code_size) + 8
    return int(faiss.downcast_index(index.index).code_size) + 8
