"""Embedding a collection's images again in new spaces of a backbone it already has (the pooling
and test-time-view variants `simsearch tune` tries: ``@gem3``, ``+flip``...).

The images are read again from where they were ingested from (``images.source_path``: a file, or a
bucket object or URL with this process's AWS environment, :mod:`simsearch.ingest.remote`) and decoded
as at ingest; every view runs the backbone's feature map once per batch and each space pools and
combines what it needs (:meth:`simsearch.embedding.embedder.Embedder.embed_variants`). Nothing is written unless
every image could be read: a space with vectors for only some images would hide the others.

This is the in-process pass of `simsearch tune` over its sample; embedding a whole collection
(the chosen variant, `simsearch embed`, the API) is the sharded, resumable job of
:mod:`simsearch.ops.reembed_jobs`, whose batch steps this uses.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from sqlalchemy import select

from simsearch.errors import SimsearchError
from simsearch.ingest import remote
from simsearch.jobs import reembed
from simsearch.spaces import parse
from simsearch.store.models import Image

BATCH = reembed.BATCH
HEAD_SHARE = 10  # a bucket's sampled objects are HEADed when at most 1/10 of what a listing would return


@dataclass
class Reembedded:
    spaces: list[str]
    images: int = 0
    seconds: float = 0.0  # wall time of the whole pass: reading, decoding, model, storing
    view_seconds: dict[str, float] = field(default_factory=dict)  # model seconds of each test-time view
    unavailable: str | None = None  # why nothing was embedded (images no longer readable), else None

    def space_seconds(self, space: str) -> float:
        """The model seconds this space needs on its own: the views it is made of."""
        return float(sum(self.view_seconds.get(v, 0.0) for v in parse(space).view_list))


def _sources(ctx, collection_id: int) -> list[tuple[int, str]]:
    with ctx.db.session() as s:
        return list(s.execute(select(Image.id, Image.source_path)
                              .where(Image.collection_id == collection_id, Image.status == "ok")
                              .order_by(Image.id)).all())


def _by_head(asked: int, listed: int) -> bool:
    """Whether ``asked`` objects of a bucket are checked with a HEAD request each rather than by
    listing the ``listed`` objects (at least) under their common prefix. The rule: HEAD when they
    fit in one round of HEAD_THREADS parallel requests (never more than the listing's one page), or
    when they are at most 1/HEAD_SHARE of what the listing would page through. HEAD costs
    asked/16 rounds of requests with empty answers; the listing listed/1,000 requests one after
    the other, each answer carrying 1,000 keys. At 1/10, HEAD is at most 6.25 rounds a page: a
    sample of 2,000 of 100,000 objects is 125 rounds of HEAD against 100 pages of listing, and HEAD
    is chosen; 2,000 of 10,000 (10 pages) is listed. Above 1/10 the listing is kept."""
    return asked <= remote.HEAD_THREADS or asked * HEAD_SHARE <= listed


def _unreadable(paths: list[str], among: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(the paths that cannot be read any more, why the buckets that could not be checked were
    not). Local files: those that cannot be opened. Bucket objects, per bucket, by the rule of
    :func:`_by_head` (the sample's size against the listing's): a ``HEAD`` of each object, 16
    at a time (:func:`simsearch.ingest.remote.missing_objects`: requests grow with the sample), or
    one listing of their common prefix (:func:`simsearch.ingest.remote.list_objects`: requests of
    1,000 keys that grow with everything under the prefix). ``among``: every source path of the
    collection, of which ``paths`` are a sample; those under the prefix are what the listing would
    return at least (without ``among``, only the sample is counted, which favours the listing).
    Either way a missing object is unreadable, and a bucket that cannot be checked (access denied,
    the endpoint unreachable: the SimsearchError of the listing or of the HEAD requests) counts
    every one of its objects unreadable, its one-line reason in the second list: never "all
    readable", never an exception. URLs are not checked here (a failed read stops the pass)."""
    missing, failed = [], []
    objects = [p for p in paths if remote.is_remote(p) and p.lower().startswith("s3://")]
    for path in paths:
        if remote.is_remote(path):
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError:
            missing.append(path)
    by_bucket: dict[str, list[str]] = {}
    for uri in objects:
        by_bucket.setdefault(uri.split("/", 3)[2], []).append(uri)
    for bucket, uris in by_bucket.items():
        prefix = os.path.commonprefix(uris)
        prefix = prefix[:prefix.rfind("/") + 1] if prefix.count("/") > 3 else f"s3://{bucket}/"
        listed = len(uris) if among is None else sum(p.startswith(prefix) for p in among)
        try:
            if _by_head(len(uris), listed):
                missing += remote.missing_objects(uris)
            else:
                present = set(remote.list_objects(prefix))
                missing += [p for p in uris if p not in present]
        except SimsearchError as exc:
            failed.append(str(exc))
            missing += uris
    return missing, failed


def embed_collection(ctx, collection_id: int, spaces: list[str], *, ids=None, progress=None) -> Reembedded:
    """Embed every ok image of the collection (``ids``: only those of its images) in ``spaces`` (one
    backbone, one precision), store the vectors (replacing any) and leave their indexes to be built
    when first searched; all or nothing (see the module's text), in this process, with the batch
    steps of the sharded job (:mod:`simsearch.jobs.reembed`). ``progress``: called with (images
    done, total)."""
    reembed.check_spaces(spaces)
    out = Reembedded(spaces=list(spaces))
    every = _sources(ctx, collection_id)
    keep = None if ids is None else {int(i) for i in ids}
    rows = every if keep is None else [r for r in every if int(r[0]) in keep]
    t0 = time.perf_counter()
    missing, failed = _unreadable([path for _, path in rows], among=[path for _, path in every])
    if missing:
        out.unavailable = (f"{len(missing)} of {len(rows)} images can no longer be read where they were ingested "
                           "from (uploads are not kept), so they cannot be embedded in another space"
                           + "".join(f"; {why}" for why in failed))
        return out
    for start in range(0, len(rows), BATCH):
        chunk = rows[start:start + BATCH]
        vectors = reembed.embed_batch(ctx, spaces, [path for _, path in chunk], out.view_seconds)
        with ctx.db.session() as s:
            reembed.store(s, ctx.db.dialect, [i for i, _ in chunk], vectors)
            s.commit()
        out.images += len(chunk)
        if progress is not None:
            progress(out.images, len(rows))
    out.seconds = time.perf_counter() - t0
    return out
