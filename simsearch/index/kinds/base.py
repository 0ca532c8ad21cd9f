"""What every index kind is: :class:`IndexKind`, the operations the policy, the manager and the
searches call on a kind, with the behaviour most kinds share; and the helpers the kinds share
(adding in batches, the ids an index holds, selectors).

A kind is one FAISS structure inside an ``IndexIDMap2`` (FAISS ids are image ids), searched by
inner product on L2-normalised vectors (cosine). Its class says:

- how it is made (:meth:`IndexKind.factory`: a ``faiss.index_factory`` string) and trained
  (:meth:`~IndexKind.train_size`, :meth:`~IndexKind.train`);
- its **preconditions** (:meth:`~IndexKind.training_problem`, :meth:`~IndexKind.unfit`): whether
  FAISS can build it for ``n`` vectors of ``dim`` dimensions, a pure function of the sizes it
  trains with (below them FAISS throws, or for an OPQ rotation writes past a buffer);
- its search knobs: the tuning ladder (:meth:`~IndexKind.knob_grid`), their relative cost
  (:meth:`~IndexKind.cost`), reading and setting them (:meth:`~IndexKind.get_params`,
  :meth:`~IndexKind.set_params`; FAISS saves them with the index);
- deletions: removed at once, or masked (left out of every search) until compaction, which some
  kinds do in place (:meth:`~IndexKind.compact`) and the others by a rebuild;
- a search restricted to some ids (:meth:`~IndexKind.search_selected`: label filters, masked ids);
- a cost estimate: bytes a vector (:meth:`~IndexKind.memory_bytes`).

FAISS is imported inside the methods: the registry is read by the settings and the CLI, which must
not load FAISS (``simsearch --help`` stays fast).
"""

from __future__ import annotations

import math

import numpy as np


class IndexKind:
    """One kind of index. Subclasses set :attr:`name` and override what differs; registered with
    :func:`simsearch.index.kinds.register` (one instance a kind)."""

    name: str = ""
    #: the exact kind: always fits, needs no tuning, the policy's last resort
    exact: bool = False
    #: rank in the automatic policy's preference (lower first); None: built only when forced
    preference: int | None = None
    #: deleted ids are masked (left out of every search) until compaction, not removed at once
    masks_deletions: bool = True
    #: compaction removes masked ids in place (else the index is rebuilt to compact)
    compacts_in_place: bool = False
    #: :meth:`search_selected` needs ``positions`` (external ids -> positions in the id map)
    selects_positions: bool = False
    #: an exact search over a few ids scans through :meth:`search_selected` (no direct map to
    #: decode them by id) instead of decoding them
    scans_to_decode: bool = False
    #: a saved index of this kind may be memory-mapped read-only (``IO_FLAG_MMAP_IFC``: its codes,
    #: graph and lists stay in the page cache, shared by the processes of a machine); an index
    #: that is mapped is never changed: updates work on a copy read into memory
    maps_file: bool = True
    #: the approximate kind ``faiss_index.build_index`` builds (outside the policy, untuned)
    untuned: bool = False
    #: search parameters an index built outside the policy gets (no tuning): ``build_index``
    default_params: dict = {}
    #: the FAISS structure in words (documentation, error messages)
    structure: str = ""

    # ---- structure ------------------------------------------------------------------------
    def factory(self, dim: int, n: int) -> str:
        """The ``faiss.index_factory`` string of an index for about ``n`` vectors of ``dim``."""
        raise NotImplementedError

    def make(self, dim: int, n: int):
        """An empty, untrained index of this kind sized for about ``n`` vectors (in an IndexIDMap2)."""
        import faiss

        return faiss.IndexIDMap2(faiss.index_factory(dim, self.factory(dim, n), faiss.METRIC_INNER_PRODUCT))

    def matches(self, inner) -> bool:
        """Whether ``inner`` (the downcast index inside the id map of a loaded file) is of this kind."""
        raise NotImplementedError

    def memory_bytes(self, n: int, dim: int) -> int:
        """About the bytes an index of ``n`` vectors of ``dim`` takes (in memory and on disk)."""
        raise NotImplementedError

    # ---- preconditions and training --------------------------------------------------------
    def train_size(self, n: int) -> int:
        """Vectors of a collection of ``n`` the index is trained on."""
        return 0

    def sizes(self, n: int) -> dict:
        """What the kind sizes by ``n`` beyond the training sample (IVF kinds: ``nlist``), as
        keyword arguments of :meth:`training_problem`."""
        return {}

    def training_problem(self, dim: int, n_train: int, **sizes) -> str | None:
        """Why FAISS cannot train this kind for ``dim``-d vectors on ``n_train`` vectors, or None."""
        if dim < 1:
            return f"vectors of {dim} dimensions"
        if n_train < 1:
            return "no vectors to train on"
        return None

    def unfit(self, n: int, dim: int) -> str | None:
        """Why this kind cannot be built for ``n`` vectors of ``dim`` dimensions (with the training
        sample and sizes it gives itself), or None when it can. Pure: no FAISS call."""
        if self.exact:
            return None
        if n < 1:
            return "no vectors"
        problem = self.training_problem(dim, self.train_size(n), **self.sizes(n))
        return f"{self.name} for {n:,} vector{'s' * (n != 1)} of {dim:,} dimensions: {problem}" if problem else None

    def trained_sizes(self, index) -> dict:
        """:meth:`sizes` as an index of this kind was made (IVF kinds: its ``nlist``)."""
        return {}

    def train(self, index, sample: np.ndarray) -> None:
        """Train on ``sample`` (:meth:`train_size` vectors of the collection); a ValueError, before
        FAISS sees it, when the sample breaks the preconditions."""
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        if self.exact:
            return
        self.check_sample(index, sample)
        index.train(sample)

    def check_sample(self, index, sample: np.ndarray) -> None:
        problem = self.training_problem(int(index.d), len(sample), **self.trained_sizes(index))
        if problem is not None or sample.ndim != 2 or sample.shape[1] != index.d:
            # a guard, not a fallback: the policy only builds kinds that fit (:meth:`unfit`)
            raise ValueError(f"cannot train {self.name}: "
                             f"{problem or f'a sample of shape {sample.shape} for {index.d} dimensions'}")

    # ---- search knobs ---------------------------------------------------------------------
    def knob_grid(self, index) -> list[list[dict]]:
        """Candidate search parameters: groups, each ascending in recall and cost (the tuner takes
        the first setting of each group that reaches the target, then the cheapest of those)."""
        return [[{}]]

    def cost(self, params: dict, n: int, k: int) -> float:
        """A relative cost of one query at ``params`` (to choose among settings that reach the target)."""
        return float(sum(params.values()))

    def get_params(self, index) -> dict:
        return {}

    def set_params(self, index, params: dict) -> None:
        if params:
            raise ValueError(f"{self.name} has no search parameters {sorted(params)}")

    # ---- deletions -----------------------------------------------------------------------
    def remove(self, index, ids: np.ndarray) -> int:
        """Remove ``ids`` at once (kinds that do not mask deletions)."""
        raise ValueError(f"{self.name} indexes mask deleted ids until they are compacted")

    def compact(self, index, ids: np.ndarray) -> bool:
        """Remove masked ``ids`` for good, in place; False when the kind must be rebuilt instead."""
        return False

    # ---- searches restricted to some ids --------------------------------------------------
    def selection_scale(self, fraction: float) -> float:
        """How much the search knob is raised when only ``fraction`` of the index may match."""
        return 1.0 / math.sqrt(fraction)

    def selected_params(self, index, sel, scale: float):
        """FAISS search parameters with the selector ``sel`` and the knob raised by ``scale``."""
        import faiss

        return faiss.SearchParameters(sel=sel)

    def search_selected(self, index, q: np.ndarray, k: int, *, allowed: np.ndarray | None, masked: np.ndarray,
                        fraction: float, positions=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k among ``allowed`` ids (None: all), never ``masked`` ones. ``fraction``: the share
        of the index that may match; the search knob is raised for it (:meth:`selection_scale`).
        ``positions``: external ids -> positions in the id map (kinds with :attr:`selects_positions`)."""
        sel_ids, invert = (allowed, False) if allowed is not None else (masked, True)
        scale = self.selection_scale(max(fraction, 1e-6))
        return index.search(q, k, params=self.selected_params(index, selector(sel_ids, invert), scale))


class ForeignKind(IndexKind):
    """An index of no registered kind (files of earlier versions: flat or HNSW over float vectors,
    reported as ``hnsw_flat``): searched as it is until the policy replaces it, never built."""

    def __init__(self, name: str):
        self.name = name
        self.masks_deletions = False
        self.maps_file = False  # read into memory: mapping is checked on the kinds this simsearch builds

    def unfit(self, n: int, dim: int) -> str | None:
        return f"{self.name} is not a kind this simsearch builds"

    def make(self, dim: int, n: int):
        raise ValueError(f"unknown index kind {self.name!r}")


# ---- shared helpers -------------------------------------------------------------------------
def scaled(value: int, scale: float, most: int) -> int:
    return int(min(most, max(value, math.ceil(value * scale))))


def selector(ids: np.ndarray, invert: bool):
    import faiss

    inner = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
    if not invert:
        return inner
    sel = faiss.IDSelectorNot(inner)
    sel.referenced = inner  # keep the wrapped selector alive as long as this one
    return sel


def inner_of(index):
    """The index inside the id map, downcast."""
    import faiss

    return faiss.downcast_index(index.index)


def held_ids(index) -> np.ndarray:
    """Every id the index holds (masked ones included), in the order of its positions."""
    import faiss

    return faiss.vector_to_array(index.id_map).astype(np.int64)


def add(index, ids: np.ndarray, vectors: np.ndarray, batch: int = 100_000, progress=None,
        skip: np.ndarray | None = None) -> None:
    """Add in batches (``progress(done, total)`` after each); ``skip``: rows left out (sorted)."""
    for start in range(0, len(ids), batch):
        stop = min(len(ids), start + batch)
        keep = slice(None)
        if skip is not None and len(skip):
            keep = ~np.isin(np.arange(start, stop), skip)
        index.add_with_ids(np.ascontiguousarray(vectors[start:stop][keep], dtype=np.float32),
                           np.ascontiguousarray(ids[start:stop][keep], dtype=np.int64))
        if progress is not None:
            progress(stop, len(ids))
