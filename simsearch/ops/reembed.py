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


def _sources(ctx, collection_id: int, ids=None) -> list[tuple[int, str]]:
    with ctx.db.session() as s:
        rows = list(s.execute(select(Image.id, Image.source_path)
                              .where(Image.collection_id == collection_id, Image.status == "ok")
                              .order_by(Image.id)).all())
    if ids is None:
        return rows
    keep = {int(i) for i in ids}
    return [r for r in rows if int(r[0]) in keep]


def _unreadable(paths: list[str]) -> list[str]:
    """The paths that cannot be read any more: local files that cannot be opened, bucket objects
    no longer listed under their common prefix (one listing per bucket, not a request per object).
    URLs are not checked here (a failed read stops the pass)."""
    missing, objects = [], [p for p in paths if remote.is_remote(p) and p.lower().startswith("s3://")]
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
        prefix = prefix[:prefix.rfind("/") + 1] if prefix.count("/") > 3 else f"s3://{bucket}"
        try:
            listed = set(remote.list_objects(prefix))
        except SimsearchError:
            listed = set()
        missing += [p for p in uris if p not in listed]
    return missing


def embed_collection(ctx, collection_id: int, spaces: list[str], *, ids=None, progress=None) -> Reembedded:
    """Embed every ok image of the collection (``ids``: only those of its images) in ``spaces`` (one
    backbone, one precision), store the vectors (replacing any) and leave their indexes to be built
    when first searched; all or nothing (see the module's text), in this process, with the batch
    steps of the sharded job (:mod:`simsearch.jobs.reembed`). ``progress``: called with (images
    done, total)."""
    reembed.check_spaces(spaces)
    out = Reembedded(spaces=list(spaces))
    rows = _sources(ctx, collection_id, ids)
    t0 = time.perf_counter()
    missing = _unreadable([path for _, path in rows])
    if missing:
        out.unavailable = (f"{len(missing)} of {len(rows)} images can no longer be read where they were ingested "
                           "from (uploads are not kept), so they cannot be embedded in another space")
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
