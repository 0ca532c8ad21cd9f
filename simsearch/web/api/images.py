"""``/api/images/<id>``: get, change (rename, label), delete, thumbnail, original file, similar images; removing
several images of a collection at once."""

from __future__ import annotations

from flask import Response, request, send_file, url_for

from simsearch.errors import InvalidInput
from simsearch.ops import browse as ops_browse
from simsearch.ops import images as ops_images
from simsearch.ops import originals
from simsearch.ops import search as ops_search
from simsearch.web import schemas as S
from simsearch.web.api.blueprint import bp
from simsearch.web.api.common import ctx, image_json, public_paths, thumbnail_url
from simsearch.web.contract import BINARY, WRITE_SECURITY, errors
from simsearch.web.paths import shown_path

THUMBNAIL_MAX_AGE = 7 * 24 * 3600


def _image_detail(record: dict) -> dict:
    files = record.pop("files", None) or [{"path": record["path"], "size": None, "mtime": None, "source": None}]
    out = image_json(public_paths([record])[0])
    out["files"] = [{"path": shown_path(f["path"], f["source"]), "size": f["size"], "mtime": f["mtime"]} for f in files]
    out["similar_url"] = url_for("api.similar", image_id=record["id"])
    out["file_url"] = url_for("api.image_file", image_id=record["id"])
    return out


@bp.get("/images/<int:image_id>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.ImageDetail, description="The image's metadata.")
@bp.doc(summary="Get an image", tags=["images"], responses=errors(400, 404))
def get_image(image_id: int, q):
    return _image_detail(ops_images.get(ctx(), image_id))


@bp.patch("/images/<int:image_id>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.ImagePatch, location="json", arg_name="body")
@bp.output(S.ImageDetail, description="The image, changed.")
@bp.doc(summary="Rename an image or change its label", tags=["images"], security=WRITE_SECURITY,
        description="`name` gives the image a new file name in the same folder (what it is shown as, and where the "
                    "file is read again to embed it with another backbone; the file itself is not touched). "
                    "`label` sets its label (null removes it). Give either or both; vectors and thumbnail are kept.",
        responses=errors(400, 401, 403, 404))
def patch_image(image_id: int, q, body: S.ImagePatch):
    given = body.model_fields_set
    if not given:
        raise InvalidInput("give the image's new 'name', its 'label' (null removes it), or both", field="name")
    record = None
    if "name" in given:
        record = ops_images.rename(ctx(), image_id, body.name)
    if "label" in given:
        record = ops_images.set_label(ctx(), image_id, body.label)
    return _image_detail(record)


@bp.delete("/images/<int:image_id>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.ImageDeleted, description="Deleted (with its vectors).")
@bp.doc(summary="Delete an image", tags=["images"], security=WRITE_SECURITY, responses=errors(400, 401, 403, 404))
def delete_image(image_id: int, q):
    return ops_images.delete(ctx(), image_id)


@bp.post("/collections/<name>/images/remove")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.ImageIds, location="json", arg_name="body")
@bp.output(S.ImagesRemoved, description="Removed, with their vectors (their files are not touched).")
@bp.doc(summary="Remove several images from a collection", tags=["images"], security=WRITE_SECURITY,
        description="Removes the images (e.g. a selection in the browse grid) and their vectors from the collection; "
                    "its indexes follow. The image files on disk are not touched. All or none: a 404 lists the ids "
                    "that are not in the collection.",
        responses=errors(400, 401, 403, 404))
def remove_images(name: str, q, body: S.ImageIds):
    return ops_browse.remove_images(ctx(), name, body.image_ids)


@bp.get("/images/<int:image_id>/thumbnail")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.doc(summary="An image's thumbnail", tags=["images"], responses={
    200: {"description": "JPEG thumbnail (cacheable; ETag is the content hash).", "content": {"image/jpeg": {"schema": BINARY}}},
    304: {"description": "Not modified (If-None-Match matched)."}, **errors(400, 404)})
def thumbnail(image_id: int, q):
    thumb = ops_images.thumbnail(ctx(), image_id)
    resp = Response(thumb.data, mimetype=thumb.mime_type)
    resp.set_etag(thumb.etag)
    resp.cache_control.public = True
    resp.cache_control.max_age = THUMBNAIL_MAX_AGE
    return resp.make_conditional(request)


@bp.get("/images/<int:image_id>/file")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.doc(summary="An image's original file", tags=["images"],
        description="The file as it was ingested, byte for byte (its SHA-256 is checked against the one recorded at "
                    "ingest), typed by its decoded format. Uploaded files are deleted when their ingest job ends; "
                    "with SIMSEARCH_KEEP_ORIGINALS (the default) their originals are kept by content hash and "
                    "served from there, otherwise 410 (unless SIMSEARCH_UPLOAD_RETENTION_HOURS keeps them).",
        responses={
            200: {"description": "The original file (cacheable; ETag is the content hash).",
                  "content": {mime: {"schema": BINARY} for mime in originals.MIME_TYPES}},
            304: {"description": "Not modified (If-None-Match matched)."},
            **errors(400, 404, 409, 410,
                     e404="No such image, or an image made by import-vectors (it has no file).",
                     e409="The image failed to decode at ingest: there is no image to show.",
                     e410="The original file is gone (deleted upload, moved, or changed since ingest).")})
def image_file(image_id: int, q):
    from pathlib import PurePath

    orig = originals.open_original(ctx(), image_id)
    resp = send_file(orig.file, mimetype=orig.mime_type, etag=orig.etag, conditional=True, max_age=THUMBNAIL_MAX_AGE,
                     download_name=PurePath(shown_path(orig.source_path) or f"image-{image_id}").name)
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp


@bp.get("/images/<int:image_id>/similar")
@bp.input(S.SimilarQuery, location="query", arg_name="q")
@bp.output(S.SimilarResult, description="The most similar images of its collection (itself excluded), best first.")
@bp.doc(summary="Images similar to an ingested image", tags=["search"], responses=errors(400, 404, 409))
def similar(image_id: int, q: S.SimilarQuery):
    out = ops_search.by_image(ctx(), image_id, backbone=q.backbone, k=q.k, label=q.label)
    shown = public_paths([out["query"], *out["results"]], "image_id")  # one query for both
    out["query"] = {**shown[0], "thumbnail_url": thumbnail_url(image_id)}
    out["results"] = [{**h, "thumbnail_url": thumbnail_url(h["image_id"])} for h in shown[1:]]
    return out
