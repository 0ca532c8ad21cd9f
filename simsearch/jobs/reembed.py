"""Re-embedding as a sharded job: stored images embedded again in other spaces of a backbone (a
pooling or test-time-view variant, a tuned space's base, another backbone).

A job of kind ``reembed`` holds the target spaces (its ``spaces``) and the image set, split into
shards (kind ``reembed_shard``, ``parent_id`` the job) of at most ``SIMSEARCH_SHARD_SIZE`` image
ids each (``params["ids"]``). Any worker takes a shard (:data:`TARGET` on the RQ queue, or a
thread of the process that started it, or the command itself: :func:`run_here`). A shard reads
its images again from where they were ingested from (or their kept original), decodes them as
ingest does, runs the backbone's feature map once per test-time view for all target spaces
(:meth:`~simsearch.embedding.embedder.Embedder.embed_variants`) and stores the vectors batch by
batch, one transaction each (the old vectors of those images in those spaces replaced, with the
model seconds per image, as ingest records them). An image that cannot be read or decoded any more
is one error of the shard (its file and reason) and the others are embedded, as at ingest. Before
each batch it skips the images that already have vectors in every target space, so a shard run
again after its worker was killed embeds only what the killed run had not committed.

:func:`run_here` runs a job in the calling process (`simsearch embed`, `simsearch compare`, a
tuning), owning the shards it runs: if that process dies the job is found lost
(:mod:`simsearch.jobs.reembed_lost`). When a queue is configured the workers take shards of the
same job while the command runs others and waits for theirs (:mod:`simsearch.jobs.fleet`).

The job's progress is the sums of its shards (:func:`simsearch.jobs.shards.progress`); it ends
when its last shard ends (:func:`simsearch.jobs.shards.roll_up`). Cancel and retry are the jobs'
own (``POST /api/jobs/<id>/cancel``, ``/retry``): a cancelled shard stops before its next batch.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select, update

from simsearch.errors import ImageDecodeError, InvalidInput, JobCancelled, public_reason
from simsearch.jobs import fleet, shards
from simsearch.jobs.kept_originals import stored_path
from simsearch.jobs.rq import REEMBED_SHARD_TARGET, REEMBED_THREAD_TARGET
from simsearch.ingest import remote
from simsearch.ingest.pipeline import default_workers
from simsearch.images import THUMBNAIL_SIDE, decode_image, resize_for_model
from simsearch.spaces import parse, space_key
from simsearch.store import bulk, job_cancel, lifecycle
from simsearch.store.lifecycle import JobKind, JobStatus
from simsearch.store.models import Embedding, Image, IngestRun, utcnow

log = logging.getLogger("simsearch.jobs")

KIND = JobKind.REEMBED
SHARD_KIND = JobKind.REEMBED_SHARD
TARGET = REEMBED_SHARD_TARGET  # on the RQ queue: a failure is retried by RQ's callback
THREAD_TARGET = REEMBED_THREAD_TARGET  # in a thread: a failure ends the shard
BATCH = 32
MAX_ERRORS = 1000


def check_spaces(spaces: list[str]) -> list[str]:
    """The target spaces, checked: backbone spaces sharing one backbone and precision."""
    spaces = list(dict.fromkeys(spaces))
    if not spaces:
        raise InvalidInput("give at least one space to embed in", field="spaces")
    specs = [parse(sp) for sp in spaces]
    if len({(sp.backbone, sp.precision) for sp in specs}) != 1:
        raise InvalidInput("spaces embedded together must share their backbone and precision", field="spaces")
    return spaces


def lacking(session, ids, spaces: list[str]) -> list[int]:
    """Those of ``ids`` that lack vectors in at least one of ``spaces`` (in their order)."""
    ids = [int(i) for i in ids]
    complete: set[int] = set()
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        complete.update(session.scalars(select(Embedding.image_id)
                                        .where(Embedding.image_id.in_(chunk), Embedding.space.in_(spaces))
                                        .group_by(Embedding.image_id)
                                        .having(func.count(func.distinct(Embedding.space)) == len(spaces))))
    return [i for i in ids if i not in complete]


def readable_path(settings, source_path: str | None, digest: str | None) -> str | None:
    """Where an image's bytes can be read again: its source file, else its kept original (SIMSEARCH_KEEP_ORIGINALS)."""
    if source_path and remote.is_remote(source_path):
        return source_path  # a bucket object or URL: read with this process's AWS environment (a failed read is the image's error)
    if source_path and Path(source_path).exists() and not Path(source_path).is_dir():
        return source_path
    kept = stored_path(settings, digest)
    return str(kept) if kept is not None and kept.is_file() else None


def sources(ctx, ids) -> list[tuple[int, str | None, str]]:
    """(id, readable path or None, source path) of the ok images among ``ids``, in id order."""
    ids = [int(i) for i in ids]
    rows = []
    with ctx.db.session() as s:
        for start in range(0, len(ids), 5000):
            rows += s.execute(select(Image.id, Image.source_path, Image.content_hash)
                              .where(Image.id.in_(ids[start:start + 5000]), Image.status == "ok")).all()
    return [(int(i), readable_path(ctx.settings, path, digest), path or "?") for i, path, digest in sorted(rows)]


def read_source(path: str) -> bytes:
    """The bytes of an image's file, bucket object or URL (:mod:`simsearch.ingest.remote`)."""
    if remote.is_remote(path):
        return remote.read_bytes(path)
    with open(path, "rb") as f:
        return f.read()


def feature_map(ctx, spaces: list[str]):
    """The embedder of the spaces' backbone whose output is the feature map (pooled outside the model)."""
    spec = parse(spaces[0])
    return ctx.embedder(space_key(spec.backbone, "gem3", spec.precision))


def read_pixels(ctx, path: str, size: int) -> np.ndarray:
    """One image's pixels for a model of input side ``size``, read and decoded as at ingest."""
    data = read_source(path)
    img = decode_image(data, source=path, max_pixels=ctx.settings.max_pixels, draft_size=size, draft_long=THUMBNAIL_SIDE)
    return resize_for_model(img.image, size)


def embed_pixels(ctx, spaces: list[str], pixels: np.ndarray, view_seconds: dict | None = None) -> dict[str, np.ndarray]:
    """Decoded images (:func:`read_pixels`) in ``spaces`` (one backbone and precision); the
    feature map runs once per test-time view for all of them."""
    specs = [parse(sp) for sp in spaces]
    return feature_map(ctx, spaces).embed_variants(pixels, dict(zip(spaces, specs)), pad_to=BATCH,
                                                   view_seconds=view_seconds)


def embed_batch(ctx, spaces: list[str], paths: list[str], view_seconds: dict | None = None) -> dict[str, np.ndarray]:
    """The images at ``paths`` in ``spaces`` (one backbone and precision), decoded as at ingest (on
    the ingest's decode threads: a read from a bucket waits on the network, Pillow's decode
    releases the GIL); the feature map runs once per test-time view for all of them. An unreadable
    image raises (the first in ``paths``' order)."""
    size = feature_map(ctx, spaces).input_size
    with ThreadPoolExecutor(max(1, min(len(paths), default_workers())), thread_name_prefix="reembed-read") as pool:
        pixels = list(pool.map(lambda path: read_pixels(ctx, path, size), paths))
    return embed_pixels(ctx, spaces, np.stack(pixels), view_seconds)


def _read_or_why(ctx, path: str, src: str, size: int):
    """(pixels, None) or (None, the error row of a file that cannot be read: one bad file never
    stops a shard, as at ingest)."""
    try:
        return read_pixels(ctx, path, size), None
    except ImageDecodeError as exc:
        return None, {"file": Path(src).name, "reason": exc.reason}
    except (OSError, InvalidInput) as exc:
        return None, {"file": Path(src).name, "reason": public_reason(exc, hide=(str(ctx.settings.home),))}


def model_seconds(spaces: list[str], view_seconds: dict[str, float], images: int) -> dict[str, float]:
    """Each space's model seconds per image in one batch: the forwards of the views it is made of."""
    return {sp: sum(view_seconds.get(v, 0.0) for v in parse(sp).view_list) / max(1, images) for sp in spaces}


def store(session, dialect: str, ids, vectors: dict[str, np.ndarray], seconds: dict[str, float] | None = None) -> None:
    """Replace the vectors of images ``ids`` in each space of ``vectors`` (the caller commits);
    ``seconds``: each space's model seconds per image, recorded with them as ingest does."""
    now = datetime.now(timezone.utc)
    ids = np.asarray(ids, np.int64)
    for sp, x in vectors.items():
        session.execute(delete(Embedding).where(Embedding.space == sp, Embedding.image_id.in_(ids.tolist())))
        bulk.write_vectors(session, bulk.prepare_vectors(dialect, ids, sp, x, now), now)
        if seconds and seconds.get(sp) is not None:
            session.execute(update(Embedding).where(Embedding.space == sp, Embedding.image_id.in_(ids.tolist()))
                            .values(seconds=float(seconds[sp])))


# ---- the job -----------------------------------------------------------------------------------

def create(ctx, collection_id: int, spaces: list[str], ids, *, source: str, shard_size: int | None = None,
           batch_size: int | None = None, estimate: dict | None = None) -> tuple[int, list[int]]:
    """A queued re-embedding of images ``ids`` of the collection in ``spaces``, split into shards of
    at most ``shard_size`` images (default ``SIMSEARCH_SHARD_SIZE``). Returns (job id, shard ids)."""
    return shards.create_pass(ctx, KIND, collection_id, ids, spaces=check_spaces(spaces), source=source,
                              shard_size=shard_size, batch_size=int(batch_size or BATCH), estimate=estimate,
                              nothing="nothing to embed")


def unfinished_shards(ctx, parent_id: int) -> list[int]:
    """The shards of a re-embedding that have not ended for good (to queue, or run here)."""
    return shards.unfinished_shards(ctx, parent_id)


def execute_shard(ctx, shard_id: int, *, progress=None) -> dict:
    """Embed one shard's images that still lack a target space's vectors, then roll the job up.
    A shard that ended is not run again; one left ``running`` by a dead worker is (what it
    committed is skipped). A failure propagates (RQ's failure callback retries the shard, or fails
    it for good after its last attempt). ``progress(done, total)``: after each batch."""
    got = shards.claim_shard(ctx, shard_id, SHARD_KIND, "re-embedding shard")
    shard = got.run
    if not got.claimed:
        return {"run_id": shard_id, "status": shard.status}
    parent_id, spaces = shard.parent_id, list(shard.spaces)
    ids, batch = [int(i) for i in shard.params["ids"]], int(shard.params.get("batch_size") or BATCH)
    try:
        with lifecycle.Heartbeat(ctx.db, shard_id):
            out = _embed_shard(ctx, shard_id, ids, spaces, batch, progress)
    except JobCancelled:
        shards.roll_up(ctx, parent_id)
        return {"run_id": shard_id, "status": JobStatus.FAILED.value, "cancelled": True}
    lifecycle.finish(ctx.db, shard_id, f"embedded {out['added']} images, {out['skipped']} had the vectors already"
                     + (f", {out['failed']} could not be read" if out["failed"] else ""),
                     params={**shard.params, "seconds": round(out["seconds"], 3), "forwards": out["forwards"]})
    shards.roll_up(ctx, parent_id)
    return {"run_id": shard_id, "status": JobStatus.DONE.value, **out}


def execute_shard_once(ctx, shard_id: int) -> dict:
    """:func:`execute_shard` in a thread runner (no retries): a failure ends the shard for good
    (:func:`simsearch.jobs.shards.run_once`)."""
    return shards.run_once(ctx, shard_id, execute_shard)


def _embed_shard(ctx, shard_id: int, ids: list[int], spaces: list[str], batch: int, progress) -> dict:
    with ctx.db.session() as s:
        todo = lacking(s, ids, spaces)
    rows = sources(ctx, todo)
    skipped = len(ids) - len(rows)  # had every vector already (an earlier run's), or no longer an ok image
    errors = [{"file": Path(src).name, "reason": "its source file is gone and no original was kept"}
              for _i, path, src in rows if path is None]
    rows = [r for r in rows if r[1] is not None]
    counts = {"processed": skipped + len(errors), "added": 0, "skipped": skipped, "failed": len(errors)}
    _write(ctx, shard_id, counts, errors)
    view_seconds: dict[str, float] = {}
    size = feature_map(ctx, spaces).input_size
    if rows:
        feature_map(ctx, spaces).load()  # (opening the model is not part of the recorded rate)
    t0 = time.perf_counter()
    # The next batch is read and decoded on the ingest's decode threads while the model embeds
    # this one (it was one image after another in this thread: 11.5 images/s for tune's chosen
    # variant at 100,000 files in a bucket); at most two batches of pixels are held.
    pool = ThreadPoolExecutor(default_workers(), thread_name_prefix="reembed-read")

    def read(start: int) -> list:
        return [(image_id, pool.submit(_read_or_why, ctx, path, src, size))
                for image_id, path, src in rows[start:start + batch]]

    try:
        ahead = read(0)
        for start in range(0, len(rows), batch):
            current, ahead = ahead, read(start + batch)
            chunk, pixels, bad = [], [], []
            for image_id, future in current:
                px, why = future.result()
                if px is None:
                    bad.append(why)
                else:
                    pixels.append(px)
                    chunk.append(image_id)
            _embed_store(ctx, shard_id, spaces, chunk, pixels, bad, counts, errors, view_seconds, len(ids))
            if progress is not None:
                progress(counts["processed"], len(ids))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return {**counts, "seconds": time.perf_counter() - t0, "forwards": len(view_seconds)}


def _embed_store(ctx, shard_id: int, spaces: list[str], chunk: list[int], pixels: list, bad: list, counts: dict,
                 errors: list, view_seconds: dict, total: int) -> None:
    """Embed one batch's pixels and store their vectors with the shard's counters, unless the shard
    was cancelled meanwhile (JobCancelled)."""
    views: dict[str, float] = {}
    vectors = embed_pixels(ctx, spaces, np.stack(pixels), views) if pixels else {}
    for view, secs in views.items():
        view_seconds[view] = view_seconds.get(view, 0.0) + secs
    with ctx.db.session() as s:
        running = job_cancel.still_running(s, shard_id)  # cancelled meanwhile: stop before storing
        if running:
            if chunk:
                store(s, ctx.db.dialect, chunk, vectors, model_seconds(spaces, views, len(chunk)))
            errors.extend(bad)
            counts["processed"] += len(chunk) + len(bad)
            counts["added"] += len(chunk)
            counts["failed"] += len(bad)
            s.execute(update(IngestRun).where(IngestRun.id == shard_id)
                      .values(**counts, errors=errors[:MAX_ERRORS], updated_at=utcnow()))
    if not running:
        with ctx.db.session() as s:
            job_cancel.stopped(s.get(IngestRun, shard_id), f"stopped after {counts['processed']} of "
                                                           f"{total} images (what was stored is kept)")
        raise JobCancelled(f"re-embedding shard {shard_id} was cancelled", field="job_id")


def _write(ctx, shard_id: int, counts: dict, errors: list) -> None:
    with ctx.db.session() as s:
        s.execute(update(IngestRun).where(IngestRun.id == shard_id)
                  .values(**counts, errors=errors[:MAX_ERRORS], updated_at=utcnow()))


def run_here(ctx, parent_id: int, progress=None) -> str:
    """Run the job's unfinished shards one after another in this process (a command without
    ``--queue``, or a tuning that embeds its chosen space), offered to the workers too when a queue
    is configured (:func:`simsearch.jobs.fleet.run_pass`: the command waits for theirs); returns
    the job's status. ``progress(done, total)``: the job's images done, after each batch."""
    return fleet.run_pass(ctx, parent_id, execute_shard, progress)
