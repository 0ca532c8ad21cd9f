"""Starting ingest jobs: from a folder on the server, uploaded image files, or a zip archive.

Each function checks the options, stages the files (:mod:`simsearch.jobs.staging`), creates the
queued run and hands it to a runner (:mod:`simsearch.jobs.runners`); the caller polls the job.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path

from simsearch import limits
from simsearch.errors import Forbidden, InvalidInput, WeightsUnavailable
from simsearch.jobs.execute import create_run
from simsearch.jobs.manifest import ManifestFile, uploads_dir
from simsearch.jobs.staging import Staging, ZipLimits, extract_zip, new_staging_dir, remove_quietly, stage_files
from simsearch.store import repo
from simsearch.text import plural
from simsearch.embedding.backbones import get_backbone
from simsearch.ingest import files_from_folder
from simsearch.spaces import new_space, parse

MAX_BATCH_SIZE = limits.BATCH_SIZE_MAX
MAX_IGNORED_SHOWN = 200
IMAGE_TYPES = ".jpg .jpeg .png .gif .bmp .tif .tiff .webp"


@dataclass
class IngestOptions:
    spaces: list[str]
    labels: str | None = None  # "folders": label each image by its folder
    label: str | None = None  # one label for every image
    batch_size: int | None = None

    @classmethod
    def parse(cls, settings, *, backbones=(), pooling: str | None = None, labels=None, label=None,
              batch_size=None) -> "IngestOptions":
        """From request-style values (strings, lists of comma-separated names); checks that each
        backbone's weights are available before anything is queued."""
        return cls(spaces=_spaces(settings, list(backbones), pooling), labels=_labels(labels), label=_label(label),
                   batch_size=_batch_size(batch_size))


def name_list(value, field: str = "backbones") -> list[str]:
    """A name or a list of names (JSON bodies) as a list."""
    if value is None:
        return []
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise InvalidInput("backbones must be a list of names", field=field)
        return value
    if isinstance(value, str):
        return [value]
    raise InvalidInput("backbones must be a name or a list of names", field=field)


def _spaces(settings, values: list[str], pooling: str | None) -> list[str]:
    names = [v.strip() for raw in values for v in str(raw).split(",") if v.strip()]
    if not names:
        names = [settings.default_backbone]
    spaces = []
    for n in dict.fromkeys(names):
        space = new_space(settings, n, pooling or "avg")  # n may carry its pooling and views
        spaces.append(space)
        base = parse(space).backbone
        ok, reason = get_backbone(base).weights_status(settings.weights_dir)
        if not ok:
            raise WeightsUnavailable(f"{base}: {reason}", field="backbone")
    return list(dict.fromkeys(spaces))


def _labels(value) -> str | None:
    if value in (None, "", "none"):
        return None
    if value != "folders":
        raise InvalidInput(f"labels must be 'folders' (label each image by its folder), not {value!r}", field="labels")
    return "folders"


def _label(value) -> str | None:
    if value in (None, ""):
        return None
    return limits.check(limits.Label, value, "label").strip()


def _batch_size(value) -> int | None:
    if value in (None, ""):
        return None
    return limits.check(limits.BatchSize, value, "batch_size")


def _accepted(runner, run_id: int, collection: str, total: int, ignored: list[str]) -> dict:
    return {"job_id": run_id, "status": "queued", "collection": collection, "total": total,
            "ignored": ignored[:MAX_IGNORED_SHOWN], "runner": runner.kind}


def _inside(path: Path, folder: Path) -> str:
    """``path`` relative to the ingested ``folder`` (a response never shows the server's paths)."""
    try:
        return Path(os.path.abspath(path)).relative_to(folder).as_posix()
    except ValueError:
        return Path(path).name


def from_server_path(ctx, runner, collection: str, server_path, options: dict, *, allowed_root,
                     metadata_csv=None) -> dict:
    """Queue the images of a folder on the server, inside ``allowed_root`` (None: not allowed).
    ``options``: the keyword arguments of :meth:`IngestOptions.parse`; ``metadata_csv``: a CSV of
    labels and metadata (the CLI's ``--metadata``)."""
    repo.validate_collection_name(collection)
    if not allowed_root:
        raise Forbidden("ingest from a server-side folder is disabled; the administrator can allow it with "
                        "SIMSEARCH_ALLOW_SERVER_PATHS=<allowed root folder>", field="server_path")
    if not isinstance(server_path, str) or not server_path.strip() or "\x00" in server_path:
        raise InvalidInput("server_path must be a folder path (a string)", field="server_path")
    root = Path(allowed_root).expanduser().resolve()
    given = Path(server_path.strip()).expanduser()
    target = (given if given.is_absolute() else root / given).resolve()
    if not target.is_relative_to(root):
        where = f" {root}" if ctx.settings.expose_paths else " (SIMSEARCH_ALLOW_SERVER_PATHS)"
        raise Forbidden(f"server_path must be inside the allowed folder{where}", field="server_path")
    try:
        exists = target.exists()
    except OSError as exc:  # a name too long, a loop of links...
        raise InvalidInput(f"server_path {server_path[:200]!r}: cannot be used ({exc.strerror})", field="server_path") from None
    if not exists:
        raise InvalidInput(f"server_path {server_path[:200]!r}: no such file or folder", field="server_path")
    options = IngestOptions.parse(ctx.settings, **options)
    files, ignored = files_from_folder(target, labels=options.labels, metadata_csv=metadata_csv)
    kept = []
    for f in files:
        if f.path.resolve().is_relative_to(root):  # no symlinks out of the allowed folder
            kept.append(ManifestFile(path=str(f.path), name=f.name, label=f.label or options.label, meta=f.meta))
        else:
            ignored.append(f"{_inside(f.path, target)} (links outside the allowed folder)")
    if not kept:
        raise InvalidInput(f"server_path {server_path!r}: no image files found", field="server_path",
                           details={"ignored": ignored[:100]})
    staging = Staging(dir=new_staging_dir(uploads_dir(ctx.settings)), ignored=ignored)
    try:
        run_id = create_run(ctx, collection, options.spaces, str(target), staging, absolute_files=kept,
                            batch_size=options.batch_size)
    except BaseException:  # refused (too many jobs: 429) or the database failed: no folder left behind
        remove_quietly(staging.dir)
        raise
    runner.submit(run_id, {"batch_size": options.batch_size})
    return _accepted(runner, run_id, collection, len(kept), ignored)


def from_sources(ctx, runner, collection: str, files: list, ignored: list[str], source: str, options: dict) -> dict:
    """Queue ``files`` (:class:`~simsearch.ingest.SourceFile` from a bucket prefix or a manifest:
    URIs, or local paths) as one job, sharded like a folder's; each worker reads the URIs with
    its own endpoint and credentials (the job stores the URIs only). ``options``: the keyword
    arguments of :meth:`IngestOptions.parse`."""
    repo.validate_collection_name(collection)
    options = IngestOptions.parse(ctx.settings, **options)
    kept = [ManifestFile(path=f.uri or str(f.path), name=f.name, label=f.label or options.label, meta=f.meta)
            for f in files]
    staging = Staging(dir=new_staging_dir(uploads_dir(ctx.settings)), ignored=list(ignored))
    try:
        run_id = create_run(ctx, collection, options.spaces, source, staging, absolute_files=kept,
                            batch_size=options.batch_size)
    except BaseException:
        remove_quietly(staging.dir)
        raise
    runner.submit(run_id, {"batch_size": options.batch_size})
    return _accepted(runner, run_id, collection, len(kept), list(ignored))


def from_upload(ctx, runner, collection: str, options: dict, *, files=(), archive=None,
                archive_name: str | None = None, zip_limits: ZipLimits | None = None) -> dict:
    """Queue uploaded image files (objects with ``filename`` and ``save``, e.g. werkzeug's
    FileStorage) or one zip archive (a binary stream). ``options``: the keyword arguments of
    :meth:`IngestOptions.parse`."""
    repo.validate_collection_name(collection)
    options = IngestOptions.parse(ctx.settings, **options)
    files = list(files)
    if files and archive is not None:
        raise InvalidInput("send either image files (field 'files') or one zip archive (field 'archive'), not both",
                           field="archive")
    if not files and archive is None:
        raise InvalidInput("no files: send images in the multipart field 'files' (repeatable) or a zip in 'archive'",
                           field="files")
    dest = new_staging_dir(uploads_dir(ctx.settings))
    try:
        if archive is not None:
            staging = extract_zip(archive, dest, zip_limits or ZipLimits(), labels=options.labels, label=options.label)
            source = f"upload: {archive_name or 'archive.zip'}"
        else:
            staging = stage_files(files, dest, labels=options.labels, label=options.label)
            source = f"upload: {plural(len(files), 'file')}"
        if not staging.files:
            raise InvalidInput(f"the upload has no image files (looked for {IMAGE_TYPES})",
                               field="archive" if archive is not None else "files", details={"ignored": staging.ignored[:100]})
        run_id = create_run(ctx, collection, options.spaces, source, staging, batch_size=options.batch_size)
    except BaseException:
        remove_quietly(dest)
        raise
    runner.submit(run_id, {"batch_size": options.batch_size})
    return _accepted(runner, run_id, collection, len(staging.files), staging.ignored)
