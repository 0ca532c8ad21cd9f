"""``POST /api/collections/<name>/ingest`` (202 + a job to poll) and ``/api/jobs``."""

from __future__ import annotations

from flask import jsonify, request, url_for

from simsearch.errors import InvalidInput
from simsearch.jobs.staging import ZipLimits
from simsearch.ops import ingest as ops_ingest
from simsearch.ops import jobs as ops_jobs
from simsearch.store import repo
from simsearch.web.api import bp
from simsearch.web.api.common import ctx, runner
from simsearch.web.paths import public_job
from simsearch.web.payloads import int_arg, json_body, str_arg


def _accepted(out: dict):
    status_url = url_for("api.job", job_id=out["job_id"])
    resp = jsonify({**out, "status_url": status_url})
    resp.status_code = 202
    resp.headers["Location"] = status_url
    return resp


@bp.post("/collections/<name>/ingest")
def ingest(name: str):
    repo.validate_collection_name(name)
    if request.is_json:
        body = json_body()
        options = {"backbones": ops_ingest.name_list(body.get("backbones")) + ops_ingest.name_list(body.get("backbone")),
                   "pooling": body.get("pooling"), "labels": body.get("labels"), "label": body.get("label"),
                   "batch_size": body.get("batch_size")}
        return _accepted(ops_ingest.from_server_path(ctx(), runner(), name, body.get("server_path"), options,
                                                     allowed_root=ctx().settings.allow_server_paths))
    if request.mimetype != "multipart/form-data":
        raise InvalidInput("send image files as multipart/form-data (field 'files', repeatable, or one zip in 'archive'), "
                           "or JSON {\"server_path\": ...}", field="files")
    form = request.form
    options = {"backbones": form.getlist("backbone") + form.getlist("backbones"), "pooling": form.get("pooling"),
               "labels": form.get("labels"), "label": form.get("label"), "batch_size": form.get("batch_size")}
    files = [f for f in request.files.getlist("files") if f.filename or f.content_length]
    archives = [f for f in request.files.getlist("archive") if f.filename or f.content_length]
    if len(archives) > 1:
        raise InvalidInput("send one zip archive at a time", field="archive")
    archive = archives[0] if archives else None
    out = ops_ingest.from_upload(ctx(), runner(), name, options, files=files,
                                 archive=archive.stream if archive else None,
                                 archive_name=archive.filename if archive else None,
                                 zip_limits=ZipLimits.from_settings(ctx().settings))
    return _accepted(out)


@bp.get("/jobs/<int:job_id>")
def job(job_id: int):
    return public_job(ops_jobs.get(ctx(), job_id))


@bp.get("/jobs")
def list_jobs():
    limit = int_arg("limit", 20, minimum=1, maximum=ops_jobs.MAX_LIMIT)
    return {"jobs": [public_job(j) for j in ops_jobs.recent(ctx(), collection=str_arg("collection"), limit=limit)]}
