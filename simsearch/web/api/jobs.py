"""``POST /api/collections/<name>/ingest`` (202 + a job to poll) and ``/api/jobs``."""

from __future__ import annotations

from flask import request

from simsearch.errors import InvalidInput
from simsearch.jobs.staging import ZipLimits
from simsearch.ops import ingest as ops_ingest
from simsearch.ops import jobs as ops_jobs
from simsearch.ops import local_features, reembed_jobs
from simsearch.store import repo
from simsearch.web import schemas as S
from simsearch.web.api.blueprint import bp
from simsearch.web.api.analysis import JOB_CAP
from simsearch.web.api.common import ctx, job_accepted, runner
from simsearch.web.contract import WRITE_SECURITY, bodies, errors, form_data, json_model, links, validate
from simsearch.web.paths import public_job
from simsearch.ops.embed_jobs import start_embedding


@bp.post("/collections/<name>/ingest")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.JobAccepted, status_code=202, description="Queued; poll status_url.", links=links.QUEUED_JOB)
@bp.doc(summary="Add images (background job)", tags=["ingest"], security=WRITE_SECURITY,
        description="Upload image files or one zip archive (multipart), or name a folder on the server (JSON, only when "
                    "the administrator set SIMSEARCH_ALLOW_SERVER_PATHS). The collection is created if new. Files "
                    "already in the collection (same content) are skipped.",
        responses={**errors(400, 401, 403, 413, 429, 503,
                            e400="Bad input, no images, or a refused archive (path traversal, symlinks, zip bomb).",
                            e429=JOB_CAP,
                            e403="Server paths are not enabled, the path is outside the allowed root, or CSRF failed."),
                   202: {"description": "Queued; poll status_url.", "headers": {
                       "Location": {"schema": {"type": "string"}, "description": "The job's status URL."}}}},
        extensions=bodies(**{"multipart/form-data": S.UploadIngest, "application/json": S.ServerPathIngest}))
def ingest(name: str, q):
    repo.validate_collection_name(name)
    if request.is_json:
        body = json_model(S.ServerPathIngest)
        options = {"backbones": (body.backbones or []) + ([body.backbone] if body.backbone else []),
                   "pooling": body.pooling, "labels": body.labels, "label": body.label, "batch_size": body.batch_size}
        return job_accepted(ops_ingest.from_server_path(ctx(), runner(), name, body.server_path, options,
                                                     allowed_root=ctx().settings.allow_server_paths))
    if request.mimetype != "multipart/form-data":
        raise InvalidInput("send image files as multipart/form-data (field 'files', repeatable, or one zip in 'archive'), "
                           "or JSON {\"server_path\": ...}", field="files")
    form = validate(S.UploadIngest, form_data(S.UploadIngest), "form")
    options = {"backbones": (form.backbone or []) + (form.backbones or []), "pooling": form.pooling,
               "labels": form.labels, "label": form.label, "batch_size": form.batch_size}
    files = form.files or []
    archive = form.archive
    out = ops_ingest.from_upload(ctx(), runner(), name, options, files=files,
                                 archive=archive.stream if archive else None,
                                 archive_name=archive.filename if archive else None,
                                 zip_limits=ZipLimits.from_settings(ctx().settings))
    return job_accepted(out)


@bp.get("/jobs/<int:job_id>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.Job, description="Progress (ingest: files, rate, ETA, per-file errors; analysis: steps).")
@bp.doc(summary="Job status", tags=["ingest"], responses=errors(400, 404))
def job(job_id: int, q):
    return public_job(ops_jobs.get(ctx(), job_id))


@bp.get("/jobs")
@bp.input(S.JobsQuery, location="query", arg_name="q")
@bp.output(S.JobList, description="Most recent first.", links=links.LISTED_JOBS)
@bp.doc(summary="List jobs (ingest and analysis)", tags=["ingest"], responses=errors(400, 404))
def list_jobs(q: S.JobsQuery):
    return {"jobs": [public_job(j) for j in ops_jobs.recent(ctx(), collection=q.collection, limit=q.limit)]}


# The embedding jobs' answers (another backbone, a re-embedding): 202 with the job's URL, or why not
EMBEDDING_RESPONSES = {**errors(400, 401, 403, 404, 409, 429, 503, e429=JOB_CAP,
                                e503="The backbone's weights are unavailable, or the job queue is."),
                       202: {"description": "Queued; poll status_url.", "headers": {
                           "Location": {"schema": {"type": "string"}, "description": "The job's status URL."}}}}


@bp.post("/collections/<name>/embed")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.EmbedBackbone, location="json", arg_name="body")
@bp.output(S.EmbedAccepted, status_code=202, description="Queued; poll status_url.", links=links.QUEUED_JOB)
@bp.doc(summary="Embed a collection with another backbone (sharded background job)", tags=["ingest"],
        security=WRITE_SECURITY,
        description="Queues a re-embedding (as `/reembed` does, with its cost `estimate` worked out before it starts) over "
                    "the collection's images that lack the backbone's vectors, read again from their source files or kept "
                    "originals (those that are gone are listed in `ignored` and left out); the vectors are added, "
                    "nothing else changes. The same request while one runs joins it. What `simsearch compare "
                    "--backbones A,B` does before comparing. 409 when every image already has the vectors, or no "
                    "source file is left.",
        responses=EMBEDDING_RESPONSES)
def embed(name: str, q, body: S.EmbedBackbone):
    return job_accepted(start_embedding(ctx(), runner(), name, body.backbone))


@bp.post("/collections/<name>/reembed")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.ReembedRequest, location="json", arg_name="body")
@bp.output(S.ReembedAccepted, status_code=202, description="Queued; poll status_url.", links=links.QUEUED_JOB)
@bp.doc(summary="Embed the collection's stored images in other spaces (sharded background job)", tags=["ingest"],
        security=WRITE_SECURITY,
        description="Splits the collection's ok images that lack a vector in one of `spaces` into shards that any worker "
                    "takes (resumable: a shard run again skips the images already stored), and answers with the cost "
                    "estimate worked out before it starts. The same request while one runs joins it. 409 when every "
                    "image already has the vectors.",
        responses=EMBEDDING_RESPONSES)
def reembed(name: str, q, body: S.ReembedRequest):
    return job_accepted(reembed_jobs.start(ctx(), runner(), name, body.spaces, shard_size=body.shard_size))


@bp.post("/collections/<name>/features")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.FeaturesRequest, location="json", arg_name="body")
@bp.output(S.FeaturesAccepted, status_code=202, description="Queued; poll status_url.", links=links.QUEUED_JOB)
@bp.doc(summary="Store the local features of the collection's images (sharded background job)", tags=["ingest"],
        security=WRITE_SECURITY,
        description="Extracts the local features (SIFT keypoints) of the collection's ok images that lack them from "
                    "their originals and stores them, so that a search by upload takes candidates by local features by "
                    "default. The images are split into shards that any worker takes (resumable: a shard run again "
                    "skips the images already stored); the answer carries the cost estimate worked out before it "
                    "starts. The same request while one runs joins it. 409 when every image already has them. "
                    "Images whose original a pass could not read are recorded as tried and not taken again, unless "
                    "`retry_unreadable` (originals fixed or restored since).",
        responses={**errors(400, 401, 403, 404, 409, 429, 503, e429=JOB_CAP, e503="The job queue is unavailable."),
                   202: EMBEDDING_RESPONSES[202]})
def features(name: str, q, body: S.FeaturesRequest):
    return job_accepted(local_features.start(ctx(), runner(), name, shard_size=body.shard_size,
                                             retry_unreadable=body.retry_unreadable))
