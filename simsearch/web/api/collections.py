"""``/api/collections``: list, create, get, rename, delete; a collection's images and labels."""

from __future__ import annotations

from flask import jsonify, url_for

from simsearch.ops import collections as ops_collections
from simsearch.ops import images as ops_images
from simsearch.web import schemas as S
from simsearch.web.api.blueprint import bp
from simsearch.web.api.common import ctx, image_json, public_paths
from simsearch.web.contract import WRITE_SECURITY, errors, links
from simsearch.web.paths import exposed, public_job, shown_path


@bp.get("/collections")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.CollectionList, description="Collections with image and vector counts.")
@bp.doc(summary="List collections", tags=["collections"], responses=errors(400))
def list_collections(q):
    return {"collections": ops_collections.list_collections(ctx())}


@bp.post("/collections")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.NewCollection, location="json", arg_name="body")
@bp.output(S.Collection, status_code=201, description="Created.", links=links.CREATED_COLLECTION)
@bp.doc(summary="Create a collection", tags=["collections"], security=WRITE_SECURITY,
        responses={**errors(400, 401, 403, 409), 201: {"description": "Created.", "headers": {
            "Location": {"schema": {"type": "string"}, "description": "The collection's URL."}}}})
def create_collection(q, body: S.NewCollection):
    out = ops_collections.create(ctx(), body.name, body.description)
    resp = jsonify(out)
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.get_collection_view", name=out["name"])
    return resp


@bp.get("/collections/<name>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.CollectionDetail, description="The collection, its labels and recent ingest jobs.")
@bp.doc(summary="Get a collection", tags=["collections"], responses=errors(400, 404))
def get_collection_view(name: str, q):
    out = ops_collections.detail(ctx(), name)
    out["recent_jobs"] = [public_job(j) for j in out.get("recent_jobs", [])]
    return out


@bp.patch("/collections/<name>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.CollectionRename, location="json", arg_name="body")
@bp.output(S.Collection, description="Renamed (its images, vectors and indexes are kept).")
@bp.doc(summary="Rename a collection", tags=["collections"], security=WRITE_SECURITY,
        description="Its cached analyses (clusters, map, evaluation) are recomputed on their next request. "
                    "409 when the new name is taken or while one of its jobs is queued or running.",
        responses=errors(400, 401, 403, 404, 409))
def rename_collection(name: str, q, body: S.CollectionRename):
    return ops_collections.rename(ctx(), name, body.name)


@bp.delete("/collections/<name>")
@bp.input(S.CollectionDeleteQuery, location="query", arg_name="q")
@bp.output(S.CollectionDeleted, description="Deleted, with its images, vectors, index files and staged uploads.")
@bp.doc(summary="Delete a collection", tags=["collections"], security=WRITE_SECURITY,
        description="409 while one of its jobs (ingest, analysis, tuning) is queued or running, unless `force=true`, "
                    "which cancels them first (a running ingest stops at its next batch). Of parallel deletes one "
                    "answers 200, the others 404.",
        responses=errors(400, 401, 403, 404, 409))
def delete_collection(name: str, q: S.CollectionDeleteQuery):
    return ops_collections.delete(ctx(), name, force=q.force)


@bp.get("/collections/<name>/images")
@bp.input(S.ImagesQuery, location="query", arg_name="q")
@bp.output(S.ImagePage, description="One page of images (by id unless `sort` says otherwise), with the total count.",
           links=links.LISTED_IMAGES)
@bp.doc(summary="List a collection's images", tags=["images"],
        description="Sort and filter with the query parameters (all given must match); a bad value is a 400 naming "
                    "it, an ingest job (`run`) that is not the collection's a 404.",
        responses=errors(400, 404))
def list_images(name: str, q: S.ImagesQuery):
    out = ops_images.list_page(ctx(), name, page=q.page, per_page=q.per_page, label=q.label, status=q.status,
                               meta=q.meta, sort=q.sort, labelled=q.labelled, path=q.path, min_size=q.min_size,
                               max_size=q.max_size, added_after=q.added_after, added_before=q.added_before, run=q.run,
                               path_view=None if exposed() else shown_path)
    out["images"] = [image_json(img) for img in public_paths(out["images"])]
    return out


@bp.post("/collections/<name>/labels")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.Labels, location="json", arg_name="body")
@bp.output(S.LabelsResult, description="The images now carry the label.")
@bp.doc(summary="Label a group of images", tags=["images"], security=WRITE_SECURITY,
        description="Saves a named group (e.g. a lasso selection on the map) as the images' label.",
        responses=errors(400, 401, 403, 404))
def set_labels(name: str, q, body: S.Labels):
    return ops_images.set_labels(ctx(), name, body.image_ids, body.label)
