"""What the API's views share: the app's context and job runner, the 202 of a view that starts a
job, and JSON for images and hits."""

from __future__ import annotations

from flask import current_app, jsonify, request, url_for

from simsearch.web.paths import needs_sources, run_sources, shown_path


def ctx():
    """The app's :class:`~simsearch.context.AppContext`."""
    return current_app.extensions["simsearch"]

def runner():
    """The app's job runner (:mod:`simsearch.jobs.runners`)."""
    return current_app.extensions["simsearch_jobs"]

def job_accepted(job: dict, schema=None):
    """**202** for a view that started (or joined) a job: ``job`` (``job_id``, ``status`` and what
    else the view tells) with ``status_url``, the job's URL to poll, also in ``Location``.
    ``schema``: a pydantic model the body is checked against."""
    status_url = url_for("api.job", job_id=job["job_id"])
    body = {**job, "status_url": status_url}
    if schema is not None:
        body = schema(**body).model_dump()
    resp = jsonify(body)
    resp.status_code = 202
    resp.headers["Location"] = status_url
    return resp


def thumbnail_url(image_id: int) -> str:
    return f"{request.script_root}/api/images/{image_id}/thumbnail"

def image_json(record: dict) -> dict:
    """An :func:`simsearch.ops.images.image_record` with its thumbnail's URL (None: none)."""
    out = {key: value for key, value in record.items() if key != "has_thumbnail"}
    out["thumbnail_url"] = thumbnail_url(record["id"]) if record["has_thumbnail"] else None
    return out


def hits_json(hits: list[dict]) -> list[dict]:
    return [{**h, "thumbnail_url": thumbnail_url(h["image_id"])} for h in public_paths(hits, "image_id")]


def public_paths(records: list[dict], id_key: str = "id") -> list[dict]:
    """``records`` (dicts with a ``path``) with their paths as responses show them
    (:mod:`simsearch.web.paths`); one query for the ingest sources, only when one is needed."""
    paths = {r[id_key]: r.get("path") for r in records}
    sources = {}
    if needs_sources(paths.values()):
        sources = run_sources(paths)
    return [{**r, "path": shown_path(r.get("path"), sources.get(r[id_key]))} if "path" in r else r for r in records]
