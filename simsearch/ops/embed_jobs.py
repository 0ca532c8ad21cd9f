"""Embedding a collection with another backbone as a background job (the comparison page's action).

The same job as an ingest from a server folder (:mod:`simsearch.ops.ingest`): the collection's ok
images that lack the backbone's vectors, read again from their source files, go to the job runner
(a thread, or RQ + ``simsearch worker``); the ingest sees each file's content already stored and
only adds the new vectors. The job is polled at ``/api/jobs/<id>`` like any ingest. It is the
web's counterpart of ``simsearch compare --backbones A,B`` (which embeds the missing vectors in
the command itself, :func:`simsearch.ops.comparison.embed_missing`).

Files that are gone (uploads are deleted after their ingest job unless
``SIMSEARCH_UPLOAD_RETENTION_HOURS`` keeps them) are listed as ignored, with the reason; when
none is left the request is refused (409) saying how to add the vectors instead.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from simsearch.errors import Conflict
from simsearch.jobs.execute import create_run
from simsearch.jobs.kept_originals import stored_path
from simsearch.store.lifecycle import JobStatus
from simsearch.jobs.manifest import ManifestFile, uploads_dir
from simsearch.jobs.staging import Staging, new_staging_dir
from simsearch.ops.ingest import IngestOptions
from simsearch.store import repo
from simsearch.store.models import Embedding, Image

MAX_IGNORED_SHOWN = 200


def missing_images(ctx, collection: str, space: str) -> list[tuple[int, str, str | None, dict, str]]:
    """(id, source path, label, meta, content hash) of the collection's ok images without ``space`` vectors."""
    with ctx.db.session() as s:
        coll = repo.get_collection(s, collection)
        have = select(Embedding.image_id).where(Embedding.space == space)
        rows = s.execute(select(Image.id, Image.source_path, Image.label, Image.meta, Image.content_hash)
                         .where(Image.collection_id == coll.id, Image.status == "ok", Image.id.not_in(have))
                         .order_by(Image.id)).all()
    return [(int(i), path, label, meta or {}, digest) for i, path, label, meta, digest in rows]


def start_embedding(ctx, runner, collection: str, backbone: str) -> dict:
    """Queue the job that embeds ``collection``'s images with ``backbone`` (checked: a known
    backbone whose weights are available, else 400 / 503). Returns the ingest's 202 body."""
    options = IngestOptions.parse(ctx.settings, backbones=[backbone])
    space = options.spaces[0]
    rows = missing_images(ctx, collection, space)
    if not rows:
        raise Conflict(f"every image of {collection!r} already has {space} vectors", field="backbone")
    files, ignored = [], []
    for _image_id, path, label, meta, digest in rows:
        kept = stored_path(ctx.settings, digest)
        if path and Path(path).is_file():
            files.append(ManifestFile(path=path, name=path, label=label, meta=dict(meta)))
        elif kept is not None and kept.is_file():  # an upload whose original was kept (SIMSEARCH_KEEP_ORIGINALS)
            files.append(ManifestFile(path=str(kept), name=path, label=label, meta=dict(meta)))
        else:
            ignored.append(f"{Path(path or '?').name} (its source file is gone)")
    if not files:
        raise Conflict(f"the source files of the {len(rows)} image(s) without {space} vectors are gone (uploaded files "
                       "are not kept after their ingest unless SIMSEARCH_KEEP_ORIGINALS is on): upload them again with this backbone on the collection's "
                       "Add images page, or run `simsearch ingest FOLDER --collection "
                       f"{collection} --backbone {backbone}` on the original folder", field="backbone",
                       details={"ignored": ignored[:MAX_IGNORED_SHOWN]})
    staging = Staging(dir=new_staging_dir(uploads_dir(ctx.settings)), ignored=ignored)
    run_id = create_run(ctx, collection, options.spaces, f"embed: {space}", staging, absolute_files=files)
    runner.submit(run_id, {"batch_size": None})
    return {"job_id": run_id, "status": JobStatus.QUEUED.value, "collection": collection, "total": len(files),
            "ignored": ignored[:MAX_IGNORED_SHOWN], "runner": runner.kind}
