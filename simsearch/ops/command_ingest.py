"""`simsearch ingest`: a folder embedded in this process (the command's own run, recorded as a job
owned by the command, so one killed mid-way shows as interrupted), or queued for the workers
(``--queue``: the API's server-path ingest, :func:`simsearch.ops.ingest.from_server_path`)."""

from __future__ import annotations

from pathlib import Path

from simsearch.errors import InvalidInput, QueueUnavailable
from simsearch.ingest import Ingester, files_from_folder
from simsearch.jobs.execute import create_command_run, mark_interrupted_now
from simsearch.jobs.reconcile import mark_interrupted
from simsearch.jobs.runners import RQRunner
from simsearch.ops import ingest as ingest_ops
from simsearch.ops.ingest import IMAGE_TYPES


def interrupted_commands(ctx) -> list[int]:
    """Mark ``interrupted`` the runs of earlier `simsearch ingest` commands on this host that were
    killed mid-way; returns their ids (their committed work is kept)."""
    return mark_interrupted(ctx)


def folder_files(path, *, labels: str | None = None, metadata=None) -> tuple[list, list[str]]:
    """(the image files under ``path``, the names of files ignored for their extension)."""
    files, ignored = files_from_folder(path, labels=labels, metadata_csv=metadata)
    if not files:
        raise InvalidInput(f"{path}: no image files found (looked for {IMAGE_TYPES})", field="path")
    return files, ignored


def ingest_folder(ctx, collection: str, path, files: list, ignored: list[str], spaces: list[str], *,
                  batch_size: int | None = None, workers: int | None = None, weights: dict | None = None,
                  show_bar: bool = False):
    """Embed ``files`` (from :func:`folder_files`) into ``collection`` in this process, as a run
    owned by this command; returns the ingest report. On Ctrl-C the run is marked interrupted
    (everything committed is kept) and the KeyboardInterrupt goes on to the caller."""
    ingester = Ingester(ctx, spaces=spaces, batch_size=batch_size, workers=workers, weights=weights,
                        show_bar=show_bar)
    source = str(Path(path).resolve())
    run_id = create_command_run(ctx, collection, spaces, source, len(files))
    try:
        return ingester.run(collection, files, source=source, ignored=ignored, run_id=run_id)
    except KeyboardInterrupt:
        mark_interrupted_now(ctx, run_id)
        raise


def queue_folder(ctx, collection: str, path, options: dict, *, metadata=None, weights=None) -> dict:
    """Queue the ingest of ``path`` for the workers (SIMSEARCH_REDIS_URL), with the path itself as
    the allowed folder; returns the accepted job (as the API answers it). ``weights`` (a local
    weights file) is refused: it is not sent to the workers."""
    settings = ctx.settings
    if not settings.redis_url:
        raise InvalidInput("--queue needs SIMSEARCH_REDIS_URL (the Redis that `simsearch worker` processes read)",
                           field="queue")
    if weights:
        raise InvalidInput("--weights is not sent to workers: give the workers the weights file "
                           "(SIMSEARCH_WEIGHTS_DIR) and queue without --weights", field="weights")
    target = Path(path).resolve()
    runner = RQRunner(ctx, settings.redis_url, settings.queue.split(",")[0])
    try:
        runner.ping()
    except Exception as exc:
        raise QueueUnavailable(f"the job queue (Redis at {settings.redis_url}) is unreachable: "
                               f"{type(exc).__name__}") from None
    return ingest_ops.from_server_path(ctx, runner, collection, str(target), options,
                                       allowed_root=target if target.is_dir() else target.parent, metadata_csv=metadata)
