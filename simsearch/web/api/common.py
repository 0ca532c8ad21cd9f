"""What the API's views share: the app's context and job runner, and JSON for images and hits."""

from __future__ import annotations

from flask import current_app, request

def ctx():
    """The app's :class:`~simsearch.context.AppContext`."""
    return current_app.extensions["simsearch"]

def runner():
    """The app's job runner (:mod:`simsearch.jobs.runners`)."""
    return current_app.extensions["simsearch_jobs"]

def thumbnail_url(image_id: int) -> str:
    return f"{request.script_root}/api/images/{image_id}/thumbnail"

def image_json(record: dict) -> dict:
    """An :func:`simsearch.ops.images.image_record` with its thumbnail's URL (None: none)."""
    out = dict(record)
    has = out.pop("has_thumbnail")
    backbones = out.pop("backbones", None)
    out["thumbnail_url"] = thumbnail_url(out["id"]) if has else None
    if backbones is not None:
        out["backbones"] = backbones
    return out

def hits_json(hits: list[dict]) -> list[dict]:
    return [{**h, "thumbnail_url": thumbnail_url(h["image_id"])} for h in hits]
