"""``/api/collections``: list, create, get, delete; a collection's images and labels."""

from __future__ import annotations

from flask import jsonify, request, url_for

from simsearch.ops import collections as ops_collections
from simsearch.ops import images as ops_images
from simsearch.web.api import bp
from simsearch.web.api.common import ctx, image_json, public_paths
from simsearch.web.paths import public_job
from simsearch.web.payloads import int_arg, json_body, str_arg


@bp.get("/collections")
def list_collections():
    return {"collections": ops_collections.list_collections(ctx())}


@bp.post("/collections")
def create_collection():
    body = json_body()
    out = ops_collections.create(ctx(), body.get("name"), body.get("description"))
    resp = jsonify(out)
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.get_collection_view", name=out["name"])
    return resp


@bp.get("/collections/<name>")
def get_collection_view(name: str):
    out = ops_collections.detail(ctx(), name)
    out["recent_jobs"] = [public_job(j) for j in out.get("recent_jobs", [])]
    return out


@bp.delete("/collections/<name>")
def delete_collection(name: str):
    return ops_collections.delete(ctx(), name)


def meta_filters() -> dict[str, str]:
    """``meta.KEY=VALUE`` (or OpenAPI's deepObject ``meta[KEY]=VALUE``) query parameters."""
    out = {}
    for key, value in request.args.items(multi=True):
        if key.startswith("meta."):
            mkey = key[5:]
        elif key.startswith("meta[") and key.endswith("]"):
            mkey = key[5:-1]
        else:
            continue
        out[ops_images.check_meta_key(mkey, field=key)] = value
    return out


@bp.get("/collections/<name>/images")
def list_images(name: str):
    page = int_arg("page", 1, minimum=1, maximum=ops_images.MAX_PAGE)
    per_page = int_arg("per_page", ops_images.DEFAULT_PER_PAGE, minimum=1, maximum=ops_images.MAX_PER_PAGE)
    out = ops_images.list_page(ctx(), name, page=page, per_page=per_page, label=str_arg("label"),
                               status=str_arg("status"), meta=meta_filters())
    out["images"] = [image_json(img) for img in public_paths(out["images"])]
    return out


@bp.post("/collections/<name>/labels")
def set_labels(name: str):
    body = json_body()
    return ops_images.set_labels(ctx(), name, body.get("image_ids"), body.get("label", ...))
