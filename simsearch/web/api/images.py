"""``/api/images/<id>``: get, delete, thumbnail, similar images."""

from __future__ import annotations

from flask import Response, request, url_for

from simsearch.ops import images as ops_images
from simsearch.ops import search as ops_search
from simsearch.web.api import bp
from simsearch.web.api.common import backbone_arg, ctx, hits_json, image_json, public_paths, thumbnail_url
from simsearch.web.payloads import int_arg, str_arg

THUMBNAIL_MAX_AGE = 7 * 24 * 3600


@bp.get("/images/<int:image_id>")
def get_image(image_id: int):
    out = image_json(public_paths([ops_images.get(ctx(), image_id)])[0])
    out["similar_url"] = url_for("api.similar", image_id=image_id)
    return out


@bp.delete("/images/<int:image_id>")
def delete_image(image_id: int):
    return ops_images.delete(ctx(), image_id)


@bp.get("/images/<int:image_id>/thumbnail")
def thumbnail(image_id: int):
    thumb = ops_images.thumbnail(ctx(), image_id)
    resp = Response(thumb.data, mimetype=thumb.mime_type)
    resp.set_etag(thumb.etag)
    resp.cache_control.public = True
    resp.cache_control.max_age = THUMBNAIL_MAX_AGE
    return resp.make_conditional(request)


@bp.get("/images/<int:image_id>/similar")
def similar(image_id: int):
    k = int_arg("k", 10)
    out = ops_search.by_image(ctx(), image_id, backbone=backbone_arg(), k=k, label=str_arg("label"))
    out["query"] = public_paths([{**out["query"], "id": image_id}])[0]
    out["query"].pop("id")
    out["query"]["thumbnail_url"] = thumbnail_url(image_id)
    out["results"] = hits_json(out["results"])
    return out
