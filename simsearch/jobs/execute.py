"""Creating, running and failing ingest jobs (the same code in the web app's threads and in
``simsearch worker``)."""

from __future__ import annotations

import logging
import os
import shutil

from simsearch.errors import JobCancelled, NotFound, public_reason
from simsearch.store import lifecycle
from simsearch.store.lifecycle import JobKind, JobStatus
from simsearch.jobs.manifest import Manifest, ManifestFile, run_folder
from simsearch.jobs.staging import Staging, remove_quietly
from simsearch.store import repo
from simsearch.store.models import IngestRun
from simsearch.text import plural
from simsearch.images.decode import release_memory
from simsearch.ingest import DEFAULT_BATCH_SIZE, Ingester
from simsearch.jobs.cleanup import release_uploads
from simsearch.owners import this_process
from simsearch.store.db import unavailable

log = logging.getLogger("simsearch.jobs")


def create_run(ctx, collection: str, spaces: list[str], source: str, staging: Staging, *,
               absolute_files: list[ManifestFile] | None = None, batch_size: int | None = None) -> int:
    """Create the queued run, move the staged files to ``uploads/<run_id>/`` and write its manifest.
    ``absolute_files``: files outside the staging folder (a server-side folder) instead of its own."""
    if absolute_files is not None:
        files = list(absolute_files)
    else:
        files = [ManifestFile(path=f.rel, label=f.label) for f in staging.files]
    with ctx.db.session() as s:
        coll = repo.get_or_create_collection(s, collection)
        run = lifecycle.new_run(collection_id=coll.id, source=source, spaces=spaces, total=len(files))
        s.add(run)
        s.flush()
        run_id = run.id
    folder = run_folder(ctx.settings, run_id)
    try:
        if folder.exists():  # left over from a deleted run that had the same id
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging.dir, folder)
        if absolute_files is None:
            for f in files:
                f.name = str(folder / f.path)
        Manifest(run_id=run_id, collection=collection, files=files, ignored=staging.ignored, batch_size=batch_size).write(folder)
    except BaseException as exc:
        log.exception("ingest job %s: could not stage the files", run_id)
        mark_failed(ctx, run_id, exc, "could not stage the files: ")
        remove_quietly(staging.dir)
        raise
    return run_id


def create_command_run(ctx, collection: str, spaces: list[str], source: str, total: int) -> int:
    """The run of a `simsearch ingest` command, owned by this process: if the command is killed,
    the next one marks it ``interrupted`` (:func:`simsearch.jobs.reconcile.mark_interrupted`)."""
    with ctx.db.session() as s:
        coll = repo.get_or_create_collection(s, collection)
        run = lifecycle.new_run(collection_id=coll.id, source=source, spaces=spaces, total=total,
                                owner=this_process("cli"))
        s.add(run)
        s.flush()
        return run.id


def mark_interrupted_now(ctx, run_id: int) -> None:
    """The command running ``run_id`` was interrupted (Ctrl-C): say so on the run."""
    with ctx.db.session() as s:
        run = s.get(IngestRun, run_id)
        processed, total = (run.processed, run.total) if run is not None else (0, 0)
    lifecycle.interrupt(ctx.db, run_id, f"interrupted after {processed} of {plural(total, 'file')}; everything "
                                        "committed is kept, run the same command again to continue")


def failure_reason(exc: BaseException) -> str:
    """What a failed job's message says: the error's own message, or for a database error its
    reason (never the SQL or its parameters)."""
    db_error = unavailable(exc)
    if db_error is not None:
        return f"{db_error.message.split(';')[0]} while the job ran; ingest the same files again to finish it"
    return public_reason(exc)


def mark_failed(ctx, run_id: int, failure: str | BaseException, context: str = "") -> None:
    """Record a failure on a run that did not finish (no-op on finished runs). An exception is
    recorded as :func:`~simsearch.errors.public_reason` gives it: a reason, never SQL or paths
    inside the data directory."""
    if isinstance(failure, BaseException):
        failure = public_reason(failure, hide=(str(ctx.settings.home),))
    lifecycle.fail(ctx.db, run_id, context + failure)


def mark_retrying(ctx, run_id: int, failure: str | BaseException, retries_left: int) -> None:
    """An attempt failed (or its worker died) and the queue starts the job again: back to
    ``queued`` with the reason (no-op on ended runs)."""
    if isinstance(failure, BaseException):
        failure = failure_reason(failure) if _db_error(failure) else public_reason(failure, hide=(str(ctx.settings.home),))
    with ctx.db.session() as s:
        run = s.get(IngestRun, run_id)
        attempts = run.attempts if run is not None else 0
    lifecycle.requeue(ctx.db, run_id, f"attempt {attempts or 1} stopped ({failure}); starting again "
                                      f"({retries_left} more attempt{'s' if retries_left != 1 else ''} allowed)",
                      when=(*lifecycle.UNFINISHED, JobStatus.FAILED))


RUNNABLE = lifecycle.UNFINISHED  # running: a worker died mid-job and the queue started it again


def execute_run(ctx, run_id: int, *, batch_size: int | None = None, workers: int | None = None) -> dict:
    """Run a queued ingest job to the end; the run row tracks progress. Returns the report dict."""
    got = lifecycle.claim(ctx.db, run_id, kinds=(JobKind.INGEST,), runnable=RUNNABLE, count_attempt=True)
    if got.run is None:
        raise NotFound(f"no ingest job with id {run_id}", field="job_id")
    if not got.claimed:
        log.warning("ingest job %s is %s: not running it again", run_id, got.status)
        return {"run_id": run_id, "status": got.status}
    collection, spaces, source = got.collection, list(got.run.spaces), got.run.source
    try:
        folder = run_folder(ctx.settings, run_id)
        manifest = Manifest.read(folder)
        ingester = Ingester(ctx, spaces=spaces, batch_size=batch_size or manifest.batch_size or DEFAULT_BATCH_SIZE,
                            workers=workers)
        report = ingester.run(collection, manifest.source_files(folder), source=source, ignored=manifest.ignored,
                              run_id=run_id)
    except JobCancelled:  # (not a failure to retry: it stays cancelled)
        log.info("ingest job %s was cancelled", run_id)
        return {"run_id": run_id, "status": JobStatus.FAILED.value, "cancelled": True}
    except BaseException as exc:
        mark_failed(ctx, run_id, failure_reason(exc) if _db_error(exc) else exc)
        raise
    finally:
        release_uploads(ctx, run_id)
        release_memory()  # the decode threads' buffers (up to SIMSEARCH_MAX_PIXELS each) are free now
    return report.to_dict()


def _db_error(exc: BaseException) -> bool:
    return unavailable(exc) is not None
