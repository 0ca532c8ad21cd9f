"""Deleting uploaded files once their ingest job has ended.

Uploads are staged under ``<home>/uploads/<run id>/`` for the job (in this process or in
``simsearch worker``). When the job ends, done or failed, they are deleted at once by default
(``SIMSEARCH_UPLOAD_RETENTION_HOURS`` = 0): the database keeps the vectors and thumbnails, and
keeping copies would silently double the disk used by every upload. With a retention, each job's
end also sweeps the folders whose job ended longer ago than that. Before any of that, with
``SIMSEARCH_KEEP_ORIGINALS`` (the default) the files of the images the job stored are kept in
``<home>/originals`` (:mod:`simsearch.jobs.kept_originals`): one file per content, nothing else.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from simsearch.store.lifecycle import JobStatus
from simsearch.jobs.manifest import run_folder, uploads_dir
from simsearch.store.models import IngestRun
from simsearch.jobs.kept_originals import keep_run

log = logging.getLogger("simsearch.jobs")

STAGING_MAX_AGE = 24 * 3600  # seconds: a '.staging-*' folder this old was left by a failed upload
ORPHAN_MIN_AGE = 3600  # seconds: an upload folder whose run row is gone (collection deleted)


def _keep(ctx, run_id: int) -> None:
    try:
        keep_run(ctx, run_id)
    except Exception:  # keeping originals must not turn a finished job into a failure either
        log.exception("could not keep the uploaded originals of ingest job %s", run_id)


def release_uploads(ctx, run_id: int) -> None:
    """After job ``run_id`` ended: keep the originals of the images it stored (``keep_originals``),
    delete its uploaded files now (``upload_retention_hours`` 0, the default) and those of jobs
    that ended longer ago than the retention. Never raises."""
    _keep(ctx, run_id)
    try:
        if ctx.settings.upload_retention_hours <= 0:
            shutil.rmtree(run_folder(ctx.settings, run_id), ignore_errors=True)
        sweep_uploads(ctx)
    except Exception:  # cleaning up must not turn a finished job into a failure
        log.exception("could not clean up the uploads of ingest job %s", run_id)


def sweep_uploads(ctx, now: datetime | None = None) -> list[Path]:
    """Delete upload folders past their retention: those of ended jobs (``done`` or ``failed``)
    that finished more than ``upload_retention_hours`` ago, those whose job no longer exists,
    and staging folders of uploads that never became a job. Returns the folders deleted."""
    from sqlalchemy import select

    uploads = uploads_dir(ctx.settings)
    if not uploads.is_dir():
        return []
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(hours=max(0.0, float(ctx.settings.upload_retention_hours)))
    folders = {int(p.name): p for p in uploads.iterdir() if p.name.isdigit() and p.is_dir()}
    runs: dict[int, tuple[str, datetime | None]] = {}
    ids = sorted(folders)
    with ctx.db.session() as s:
        for start in range(0, len(ids), 5000):
            rows = s.execute(select(IngestRun.id, IngestRun.status, IngestRun.finished_at)
                             .where(IngestRun.id.in_(ids[start:start + 5000]))).all()
            runs.update({run_id: (status, finished) for run_id, status, finished in rows})
    removed = []
    wall = time.time()
    for run_id, folder in folders.items():
        if run_id in runs:
            status, finished = runs[run_id]
            if finished is not None and finished.tzinfo is None:
                finished = finished.replace(tzinfo=timezone.utc)
            expired = status in (JobStatus.DONE, JobStatus.FAILED) and (finished is None or finished <= cutoff)
        else:
            expired = wall - _mtime(folder) > ORPHAN_MIN_AGE
        if expired:
            if run_id in runs:  # a job that ended without its own clean-up (its worker died)
                _keep(ctx, run_id)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    for folder in uploads.glob(".staging-*"):
        if wall - _mtime(folder) > STAGING_MAX_AGE:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


