"""The kinds of FAISS index the policy chooses from (:mod:`simsearch.index.policy`), one class a
kind, each in its own module of this package and registered by name (:mod:`.registry`):

=============== ============================================================ ===============
kind            FAISS structure (each in an IndexIDMap2: image ids)           tuned knobs
=============== ============================================================ ===============
flat            IndexFlatIP: exact                                            none
ivf_pq_refine   IndexRefine(OPQ rotation + IVF + PQ 4-bit fast-scan codes,    nprobe, k_factor
                an 8-bit scalar-quantised copy of the vectors that
                re-ranks the candidates)
ivf_sq8         IndexIVFScalarQuantizer (8-bit)                               nprobe
hnsw_sq8        IndexHNSWSQ (8-bit, M=32)                                     efSearch
=============== ============================================================ ===============

Each kind has the same operations (:class:`.base.IndexKind`): its factory string, make and train,
its preconditions (``unfit(n, dim)``: the policy never builds a kind that does not fit), its
search knobs and their tuning ladder, deletions (removed at once, or masked until compaction, in
place or by a rebuild), a search restricted to a set of ids, a memory estimate.

**Adding a kind** is one module here (a subclass of :class:`.base.IndexKind`, or of
:class:`.ivf.IVFKind`, decorated with :func:`register`) plus its test: every module of this
package is imported with it, and the policy, the manager, the searches, the settings
(``SIMSEARCH_INDEX_TYPE``) and the API ask the registry, never a kind's name. Nothing here
imports the policy, and nothing here imports FAISS at import time.
"""

from __future__ import annotations

import importlib
import pkgutil

from simsearch.index.kinds.base import IndexKind, add, held_ids
from simsearch.index.kinds.registry import (behaviour, exact, fitting, get, is_approximate, kind_of, names,
                                            preference, register, unregister, untuned)

__all__ = ["IndexKind", "add", "behaviour", "exact", "fitting", "get", "held_ids", "is_approximate", "kind_of",
           "names", "preference", "register", "unregister", "untuned"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # each kind registers itself
