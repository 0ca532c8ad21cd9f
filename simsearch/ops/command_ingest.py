"""`simsearch ingest`: a folder, an ``s3://`` prefix or a manifest file (``--manifest``) embedded in
this process (the command's own run, recorded as a job owned by the command, so one killed mid-way
shows as interrupted), or queued for the workers (``--queue``: a folder as the API's server-path
ingest, :func:`simsearch.ops.ingest.from_server_path`; a bucket or a manifest as a job of URIs that
each worker reads with its own credentials, :func:`simsearch.ops.ingest.from_sources`)."""

from __future__ import annotations

from pathlib import Path

from simsearch.errors import InvalidInput, QueueUnavailable
from simsearch.ingest import Ingester, display_uri, files_from_bucket, files_from_folder, files_from_manifest, is_remote
from simsearch.jobs.execute import create_command_run, mark_interrupted_now
from simsearch.jobs.reconcile import mark_interrupted
from simsearch.jobs.runners import RQRunner
from simsearch.ops import ingest as ingest_ops
from simsearch.ops.ingest import IMAGE_TYPES


def interrupted_commands(ctx) -> list[int]:
    """Mark ``interrupted`` the runs of earlier `simsearch ingest` commands on this host that were
    killed mid-way; returns their ids (their committed work is kept)."""
    return mark_interrupted(ctx)


def folder_files(path, *, labels: str | None = None, metadata=None, manifest=None) -> tuple[list, list[str]]:
    """(the image files under ``path`` (a folder or an ``s3://`` prefix) or listed in ``manifest``,
    the names of files ignored for their extension)."""
    if manifest is not None:
        if path is not None:
            raise InvalidInput("give either PATH or --manifest, not both", field="manifest")
        if metadata is not None:
            raise InvalidInput("--metadata is for a folder: put the metadata in the manifest's columns", field="metadata")
        return files_from_manifest(manifest, labels=labels), []
    if path is None:
        raise InvalidInput("give a PATH (a folder, or s3://BUCKET/PREFIX) or --manifest FILE", field="path")
    if is_remote(path):
        if metadata is not None:
            raise InvalidInput("--metadata is for a local folder: give a bucket's labels and metadata in a --manifest",
                               field="metadata")
        files, ignored = files_from_bucket(str(path), labels=labels)
    else:
        files, ignored = files_from_folder(Path(path), labels=labels, metadata_csv=metadata)
    if not files:
        where = display_uri(str(path)) if is_remote(path) else path
        raise InvalidInput(f"{where}: no image files found (looked for {IMAGE_TYPES})", field="path")
    return files, ignored


def source_name(path, manifest=None) -> str:
    """What the run records as its source: the folder, the bucket prefix or the manifest file
    (never credentials: a URL's user, password and query string are left out). A local path is
    absolute, so the API shows it as it shows a folder's (without the server's folders)."""
    if manifest is not None:
        return str(Path(manifest).resolve())
    if is_remote(path):
        return display_uri(str(path))
    return str(Path(path).resolve())


def ingest_folder(ctx, collection: str, path, files: list, ignored: list[str], spaces: list[str], *,
                  batch_size: int | None = None, workers: int | None = None, weights: dict | None = None,
                  show_bar: bool = False, manifest=None):
    """Embed ``files`` (from :func:`folder_files`) into ``collection`` in this process, as a run
    owned by this command; returns the ingest report. On Ctrl-C the run is marked interrupted
    (everything committed is kept) and the KeyboardInterrupt goes on to the caller."""
    ingester = Ingester(ctx, spaces=spaces, batch_size=batch_size, workers=workers, weights=weights,
                        show_bar=show_bar)
    source = source_name(path, manifest)
    run_id = create_command_run(ctx, collection, spaces, source, len(files))
    try:
        return ingester.run(collection, files, source=source, ignored=ignored, run_id=run_id)
    except KeyboardInterrupt:
        mark_interrupted_now(ctx, run_id)
        raise


def queue_runner(ctx) -> RQRunner:
    """The workers' queue (``SIMSEARCH_REDIS_URL``, the first of ``SIMSEARCH_QUEUE``), checked to
    answer: what a command's ``--queue`` hands its job to."""
    settings = ctx.settings
    if not settings.redis_url:
        raise InvalidInput("--queue needs SIMSEARCH_REDIS_URL (the Redis that `simsearch worker` processes read)",
                           field="queue")
    runner = RQRunner(ctx, settings.redis_url, settings.queue.split(",")[0])
    try:
        runner.ping()
    except Exception as exc:
        raise QueueUnavailable(f"the job queue (Redis at {settings.redis_url}) is unreachable: "
                               f"{type(exc).__name__}") from None
    return runner


def queue_folder(ctx, collection: str, path, options: dict, *, metadata=None, weights=None, manifest=None) -> dict:
    """Queue the ingest of ``path`` for the workers (SIMSEARCH_REDIS_URL), with the path itself as
    the allowed folder, or of an ``s3://`` prefix or a ``manifest`` (the workers read each URI
    themselves); returns the accepted job (as the API answers it). ``weights`` (a local weights
    file) is refused: it is not sent to the workers."""
    settings = ctx.settings
    if not settings.redis_url:
        raise InvalidInput("--queue needs SIMSEARCH_REDIS_URL (the Redis that `simsearch worker` processes read)",
                           field="queue")
    if weights:
        raise InvalidInput("--weights is not sent to workers: give the workers the weights file "
                           "(SIMSEARCH_WEIGHTS_DIR) and queue without --weights", field="weights")
    if manifest is None and path is None:
        raise InvalidInput("give a PATH (a folder, or s3://BUCKET/PREFIX) or --manifest FILE", field="path")
    remote = manifest is not None or is_remote(path)
    if remote:  # listed before Redis is asked: a missing bucket is the error, whatever the queue
        files, ignored = folder_files(path, labels=options.get("labels"), metadata=metadata, manifest=manifest)
    runner = queue_runner(ctx)
    if remote:
        return ingest_ops.from_sources(ctx, runner, collection, files, ignored, source_name(path, manifest), options)
    target = Path(path).resolve()
    return ingest_ops.from_server_path(ctx, runner, collection, str(target), options,
                                       allowed_root=target if target.is_dir() else target.parent, metadata_csv=metadata)
