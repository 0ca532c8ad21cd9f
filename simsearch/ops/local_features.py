"""Local features stored after ingest: the SIFT keypoints of a collection's images
(:mod:`simsearch.images.local_features`) extracted from their originals and stored
(``image_features``), so that a search by upload takes candidates by local features by default
(:func:`simsearch.ops.verify.local_default`) without ingest paying for them.

Ingest with ``SIMSEARCH_LOCAL_FEATURES`` stores them as it goes, at about three times ingest's
pre-processing CPU time (docs/region-search.md); this stores them afterwards, batch by batch (one
transaction each), for the images that lack them, so a run that was stopped continues where it
stopped when it is run again.
"""

from __future__ import annotations

import time

from simsearch.images import local_features as LF
from simsearch.ops.verify import features_from_original
from simsearch.store import features as stored
from simsearch.store import repo

BATCH = 64


def store_missing(ctx, collection: str, *, batch: int = BATCH, progress=None) -> dict:
    """Extract and store the features of the collection's images that lack them (or have a stale
    method's). ``progress(done, total)`` after each batch. Returns the counts: ``lacking`` (before),
    ``stored``, ``unreadable`` (no readable original: they stay without, and unverified) and
    ``seconds``."""
    t0 = time.perf_counter()
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
        ids, stale = stored.lacking(s, coll_id, LF.METHOD)
    done = unreadable = 0
    for start in range(0, len(ids), max(1, batch)):
        chunk = ids[start:start + max(1, batch)]
        new = {i: f for i in chunk if (f := features_from_original(ctx, i)) is not None}
        unreadable += len(chunk) - len(new)
        if new:
            with ctx.db.session() as s:
                stored.store(s, new, LF.METHOD, replace=bool(stale & set(new)))
        done += len(new)
        if progress is not None:
            progress(start + len(chunk), len(ids))
    if ctx.descriptors is not None:
        ctx.descriptors.forget(coll_id)
    return {"collection": collection, "lacking": len(ids), "stored": done, "unreadable": unreadable,
            "seconds": round(time.perf_counter() - t0, 2)}
