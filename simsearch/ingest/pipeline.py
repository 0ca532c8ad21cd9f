"""The ingest pipeline: worker threads read, hash, decode, thumbnail and resize files (PIL releases
the GIL) while the main thread runs batched model forwards; each batch is stored in one
transaction (:mod:`simsearch.ingest.writes`, on a writer thread), so an interrupted ingest keeps
everything committed and a rerun continues where it stopped. Files are identified by content
hash, so running the same ingest again adds nothing, and runs of overlapping files may run at
once. One bad file never aborts the run: it is recorded with its reason and reported at the end.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

import numpy as np

from simsearch import derived, provenance, space_defaults
from simsearch.errors import ImageDecodeError, InvalidInput, JobCancelled, public_reason
from simsearch.images import (THUMBNAIL_SIDE, content_hash, decode_image, local_features, make_thumbnail, phash,
                              resize_for_model, shrink)
from simsearch.ingest.sources import SourceFile
from simsearch.store import job_cancel, lifecycle  # (store-only: the statuses of the run it writes)
from simsearch.ingest.writes import Prepared, store_batch
from simsearch.spaces import parse as parse_space
from simsearch.store import repo
from simsearch.store.models import IngestRun, utcnow

DEFAULT_BATCH_SIZE = 32
# A shard of a sharded ingest brings the collection's indexes up to date at its end only when
# they were last written at least this long ago (seconds) or have never been: each sync reads
# every vector id of the space and rewrites the index file (O(collection)), so syncing after
# every 1,000-image shard made shards slower as the collection grew (62.6 s -> 82.3 s at
# 100,000 images, docs/benchmarks.md). The shard that finds its job ended syncs them always
# (jobs.shards.execute_shard).
SHARD_INDEX_SYNC_EVERY = 300.0


@dataclass
class IngestReport:
    collection: str
    run_id: int
    spaces: list[str]
    total: int = 0
    added: int = 0  # new images
    embedded: int = 0  # new vectors (all spaces)
    skipped: int = 0  # already present (the same file ingested before)
    duplicates: int = 0  # files with the bytes of an image stored under another path (kept as its paths)
    failed: int = 0
    ignored: list[str] = field(default_factory=list)  # files without an image extension
    errors: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {
            "collection": self.collection,
            "run_id": self.run_id,
            "spaces": self.spaces,
            "total": self.total,
            "added": self.added,
            "embedded": self.embedded,
            "skipped": self.skipped,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "ignored": self.ignored,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.rate, 2),
        }


# ---- the pipeline ---------------------------------------------------------------------------


def default_workers() -> int:
    """Decode threads: one per core (2 to 16). PIL releases the GIL while it decodes, resizes and
    encodes, and hashlib while it hashes, so threads scale like processes here without copying
    pixels between processes. They run below the model's priority (see :func:`_lower_priority`),
    so on a 2-core machine they use the cycles the model leaves and never starve it; the queue of
    prepared files is bounded (``Ingester._prepared``), so memory stays bounded too."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 2
    return max(2, min(16, cores))


def _lower_priority(policy: str) -> None:
    """Run this decode thread below the model's threads, so it fills the gaps the model leaves on
    the cores instead of preempting one of its worker threads (which stalls every parallel op of
    the forward pass until that thread runs again). Linux: SCHED_IDLE for this thread only."""
    try:
        if policy == "idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif policy.isdigit():
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), int(policy))
    except (AttributeError, OSError):  # not Linux, or not permitted: run at normal priority
        pass


def _mtime(src: SourceFile) -> datetime | None:
    """The modification time of a file on disk (UTC); None for bytes without a file."""
    if src.path is None:
        return None
    try:
        return datetime.fromtimestamp(src.path.stat().st_mtime, timezone.utc)
    except (OSError, ValueError, OverflowError):
        return None


def index_sync_due(db, collection_id: int, space: str, every: float) -> bool:
    """Whether the (collection, space) index has never been written or was last written at least
    ``every`` seconds ago (``index_states.built_at``, bumped by every write of the index)."""
    with db.session() as s:
        state = repo.index_state(s, collection_id, space)
        if state is None or state.built_at is None:
            return True
        written = state.built_at if state.built_at.tzinfo else state.built_at.replace(tzinfo=timezone.utc)
    return (utcnow() - written).total_seconds() >= every


class Ingester:
    """Runs one ingest. ``ctx`` is the :class:`simsearch.context.AppContext`."""

    def __init__(self, ctx, *, spaces: list[str], batch_size: int = DEFAULT_BATCH_SIZE,
                 workers: int | None = None, weights: dict[str, str] | None = None,
                 progress: Callable[[IngestRun], None] | None = None, show_bar: bool = False):
        if not spaces:
            raise InvalidInput("give at least one backbone", field="backbone")
        for s in spaces:
            parse_space(s)
        if batch_size < 1:
            raise InvalidInput("batch size must be at least 1", field="batch_size")
        self.ctx = ctx
        self.spaces = list(dict.fromkeys(spaces))
        self.batch_size = batch_size
        self.workers = workers or default_workers()
        self.weights = weights or {}
        self.progress = progress
        self.show_bar = show_bar
        self.max_pixels = ctx.settings.max_pixels
        self.local_features = ctx.settings.local_features
        # "idle" (default), a nice value such as "10", or "0" for normal priority.
        self.decode_priority = ctx.settings.decode_priority

    def run(self, collection: str, files: list[SourceFile], *, source: str, ignored: Iterable[str] = (),
            run_id: int | None = None, refresh_derived: bool = True,
            sync_every: float | None = None) -> IngestReport:
        """Ingest ``files``. Besides the spaces asked for, the images are embedded in the spaces the
        collection's derived spaces and default space are made from (:func:`simsearch.space_defaults.
        required_spaces`). ``refresh_derived``: recompute the derived spaces at the end (a shard of a
        sharded job leaves it to the job's end: :func:`simsearch.jobs.shards.roll_up`).
        ``sync_every``: None brings every space's index up to date at the end; a number of seconds
        does so only for the indexes not written for that long (:func:`index_sync_due`)."""
        db = self.ctx.db
        self.spaces = list(dict.fromkeys(self.spaces + space_defaults.required_spaces(self.ctx, collection)))
        embedders = {s: self.ctx.embedder(s, weights=self.weights.get(s)) for s in self.spaces}
        for emb in embedders.values():
            # Fail early (weights unavailable, runtime missing) before touching the database, but
            # load nothing yet: a re-ingest that finds nothing new never opens a model.
            emb.check()
        provenance.check_embedders(self.ctx, collection, embedders)  # never two models' vectors in one space
        space_defaults.keep_default(self.ctx, collection, self.spaces)  # a new space does not change the default
        with db.session() as s:
            coll = repo.get_or_create_collection(s, collection)
            if run_id is None:
                run = lifecycle.new_run(collection_id=coll.id, source=source, spaces=self.spaces)
                s.add(run)
                s.flush()
            else:
                run = s.get(IngestRun, run_id)
            lifecycle.begin(run, len(files))  # (a resumed run counts again from 0; what was stored counts as skipped)
            run.spaces = self.spaces
            coll_id, run_id = coll.id, run.id
            known = repo.known_hashes(s, coll_id)
            have = {sp: repo.embedded_ids(s, coll_id, sp) for sp in self.spaces}
        report = IngestReport(collection=collection, run_id=run_id, spaces=self.spaces, total=len(files), ignored=list(ignored))
        sizes = {sp: embedders[sp].input_size for sp in self.spaces}
        t0 = time.perf_counter()
        bar = self._bar(len(files))
        seen: set[str] = set()
        batch: list[Prepared] = []
        # The SQL transaction of batch N runs on a writer thread while the model works on batch
        # N+1; at most one batch is in flight, and each batch is still committed atomically.
        writer = ThreadPoolExecutor(1, thread_name_prefix="store")
        stored = None

        def flush(batch: list[Prepared]) -> None:
            nonlocal stored
            vectors, seconds = self._embed(batch, embedders, report)
            if stored is not None:
                stored.result()
            stored = writer.submit(self._store, batch, vectors, seconds, coll_id, run_id, known, have, report)
            stored.add_done_callback(lambda f, n=len(batch): f.exception() is None and bar.update(n))

        try:
            for prep in self._prepared(files, known, have, sizes):
                if prep.hash is not None and prep.hash in seen and not prep.error:
                    prep.skip, prep.need = True, ()
                if prep.hash is not None:
                    seen.add(prep.hash)
                batch.append(prep)
                if len(batch) >= self.batch_size:
                    flush(batch)
                    batch = []
            if batch:
                flush(batch)
            if stored is not None:
                stored.result()
        except JobCancelled:
            writer.shutdown(wait=True, cancel_futures=True)
            self._finish(run_id, report, None, None)  # it stays as cancelled; what was committed counts
            raise
        except BaseException as exc:
            writer.shutdown(wait=True, cancel_futures=True)
            self._finish(run_id, report, lifecycle.JobStatus.FAILED, public_reason(exc, hide=(str(self.ctx.settings.home),)))
            raise
        finally:
            writer.shutdown(wait=True)
            bar.close()
        report.seconds = time.perf_counter() - t0
        if report.embedded:
            provenance.record_embedders(self.ctx, coll_id, embedders)
        for sp in self.spaces:
            if sync_every is None or index_sync_due(self.ctx.db, coll_id, sp, sync_every):
                self.ctx.sync_index(coll_id, sp)
        if report.embedded and refresh_derived:
            derived.refresh_for_bases(self.ctx, coll_id, self.spaces)  # the new images get derived vectors too
        self._finish(run_id, report, lifecycle.JobStatus.DONE, None)
        return report

    def _bar(self, total: int):
        from tqdm import tqdm

        return tqdm(total=total, unit="img", desc="ingest", disable=not self.show_bar, smoothing=0.1, dynamic_ncols=True)

    def _prepared(self, files, known, have, sizes) -> Iterable[Prepared]:
        """Yield prepared files in order, keeping the worker threads ahead of the model."""
        ahead = max(self.batch_size * 3, self.workers * 4)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode", initializer=_lower_priority,
                                initargs=(self.decode_priority,)) as pool:
            pending: deque[Future] = deque()
            it = iter(files)
            for src in it:
                pending.append(pool.submit(self._prepare, src, known, have, sizes))
                if len(pending) >= ahead:
                    break
            while pending:
                yield pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(self._prepare, nxt, known, have, sizes))

    def _prepare(self, src: SourceFile, known, have, sizes) -> Prepared:
        prep = Prepared(src=src)
        try:
            data = src.read()
            prep.hash = content_hash(data)
            prep.size, prep.mtime = len(data), _mtime(src)
            existing = known.get(prep.hash)
            if existing is not None and existing[1] == "ok":
                prep.need = tuple(sp for sp in self.spaces if existing[0] not in have[sp])
                if not prep.need:
                    prep.skip = True
                    return prep
            else:  # new, or failed before: decode again so the reason is reported (or it now succeeds)
                existing = None
                prep.need = tuple(self.spaces)
            # One decode feeds the thumbnail and every model input: a JPEG at least twice as large
            # as they need is decoded at 1/2, 1/4 or 1/8 scale (draft mode), several times faster.
            draft = max(sizes[sp] for sp in prep.need)
            img = decode_image(data, source=src.name, max_pixels=self.max_pixels, draft_size=draft,
                               draft_long=THUMBNAIL_SIDE)
            prep.width, prep.height = img.width, img.height
            if existing is None:
                small = shrink(img.image)  # one resize for both (the same as each would make)
                prep.thumbnail = make_thumbnail(small)
                prep.hashes = phash.to_bytes(phash.image_hashes(small))  # near-duplicates' check
                if self.local_features:  # search's verification (verify=true); else filled on first use
                    prep.features = local_features.serialise(local_features.of_picture(img.image))
            for size in {sizes[sp] for sp in prep.need}:
                prep.pixels[size] = resize_for_model(img.image, size)
        except ImageDecodeError as exc:
            prep.error = exc.reason
        except Exception as exc:  # one bad file never aborts the batch
            prep.error = f"unexpected error: {public_reason(exc, hide=(str(self.ctx.settings.home),))}"
        return prep

    def _embed(self, batch: list[Prepared], embedders, report: IngestReport):
        """Model forwards for one batch: {space: {batch position: vector}}, {space: seconds per image}."""
        vectors: dict[str, dict[int, np.ndarray]] = {}
        per_image_seconds: dict[str, float] = {}
        for sp in self.spaces:
            rows = [i for i, p in enumerate(batch) if not p.error and sp in p.need]
            if not rows:
                continue
            size = embedders[sp].input_size
            t0 = time.perf_counter()
            out = embedders[sp].embed(np.stack([batch[i].pixels[size] for i in rows]), pad_to=self.batch_size)
            dt = time.perf_counter() - t0
            report.model_seconds += dt
            per_image_seconds[sp] = dt / len(rows)
            vectors[sp] = {i: out[j] for j, i in enumerate(rows)}
        return vectors, per_image_seconds

    def _store(self, batch: list[Prepared], vectors, per_image_seconds, coll_id: int, run_id: int, known, have,
               report: IngestReport) -> None:
        """Store one embedded batch in one transaction; the report and the run's counters follow
        what the database says was stored (another run may have stored some files first)."""
        with self.ctx.db.session() as s:
            if not job_cancel.still_running(s, run_id):  # cancelled meanwhile: stop before this batch
                raise JobCancelled(f"ingest job {run_id} was cancelled", field="job_id")
            out = store_batch(s, batch, vectors, per_image_seconds, collection_id=coll_id, run_id=run_id)
            run = s.get(IngestRun, run_id)
            run.processed += len(batch)
            run.added, run.skipped = report.added + out.added, report.skipped + out.skipped
            run.duplicates = report.duplicates + out.duplicates
            run.failed, run.errors = report.failed + out.failed, report.errors + out.errors
            run.updated_at = utcnow()
        # Committed: count it, and let the decode threads know what is stored now.
        report.added, report.skipped, report.failed = run.added, run.skipped, run.failed
        report.duplicates = run.duplicates
        report.embedded += out.embedded
        report.errors.extend(out.errors)
        known.update(out.images)
        for sp, ids in out.vectors.items():
            have[sp].update(ids)
        if self.progress is not None:
            self.progress(run)

    def _finish(self, run_id: int, report: IngestReport, status: str | None, message: str | None) -> None:
        """End the run with ``status`` (None: a cancelled run keeps its status and message)."""
        with self.ctx.db.session() as s:
            run = s.get(IngestRun, run_id)
            if run is None:
                return
            # (a resumed run that finishes keeps the note that it was resumed)
            if status is not None:
                lifecycle.end(run, status, message, keep_message=message is None and status != lifecycle.JobStatus.FAILED)
            else:  # cancelled: say that it has stopped now (a retry may start it again)
                job_cancel.stopped(run, f"stopped after {report.added + report.skipped + report.failed + report.duplicates} "
                                       f"of {report.total} files (what was stored is kept)")
            run.added, run.skipped, run.failed, run.errors = report.added, report.skipped, report.failed, list(report.errors)
            run.duplicates = report.duplicates
