"""The JSON API, mounted at ``/api``. Every error is ``{"error": {"code", "message", ...}}``
(see :mod:`simsearch.web.errors`); ``/api/openapi.json`` and ``/api/docs`` describe every endpoint."""

from __future__ import annotations

import gzip
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
from apiflask import APIBlueprint
from flask import Response, current_app, jsonify, request, url_for
from sqlalchemy import func, select, text, update
from werkzeug.datastructures import CombinedMultiDict

from simsearch import __version__
from simsearch.errors import Conflict, InvalidInput, NotFound, SimsearchError, WeightsUnavailable
from simsearch.store import repo
from simsearch.store.models import Collection, Embedding, Image, IngestRun, Thumbnail
from simsearch.web import jobs as jobs_mod
from simsearch.web import schemas as S
from simsearch.web.contract import links
from simsearch.web.contract import BINARY, WRITE_SECURITY, bodies, errors, form_data, json_model, validate
from simsearch.web.errors import Forbidden
from simsearch.web.payloads import Staging, ZipLimits, extract_zip, new_staging_dir, remove_quietly, stage_files
from simsearch.worker import run_folder, uploads_dir

bp = APIBlueprint("api", __name__, enable_openapi=True)

MAP_SIGNIFICANT_DIGITS = 4
ANALYSIS = "Computed on first request and cached in the database until the collection's vectors change."


def services():
    return current_app.extensions["simsearch"]


def runner():
    return current_app.extensions["simsearch_jobs"]


# ---- serialisation ------------------------------------------------------------------------

def image_dict(img: Image, collection: str | None) -> dict:
    return {
        "id": img.id,
        "collection": collection,
        "path": img.source_path,
        "label": img.label,
        "width": img.width,
        "height": img.height,
        "status": img.status,
        "error": img.error,
        "meta": img.meta or {},
        "created_at": jobs_mod.iso(img.created_at),
        "thumbnail_url": f"{request.script_root}/api/images/{img.id}/thumbnail" if img.thumbnail_hash else None,
    }


def hit_dict(hit) -> dict:
    d = hit.to_dict()
    d["thumbnail_url"] = f"{request.script_root}/api/images/{hit.image_id}/thumbnail"
    return d


def collection_summary(s, coll: Collection) -> dict:
    counts = repo.image_counts(s, coll.id)
    vectors = repo.vector_counts(s, coll.id)
    spaces = {}
    for space in repo.spaces_of(s, coll.id):
        cached = services().indexes.cached(coll.id, space)
        spaces[space] = {"vectors_in_db": vectors.get(space, 0), "vectors_in_index": cached.ntotal if cached else None}
    return {"name": coll.name, "id": coll.id, "description": coll.description, "created_at": jobs_mod.iso(coll.created_at),
            "images_ok": counts.get("ok", 0), "images_failed": counts.get("failed", 0), "backbones": spaces}


def get_collection(s, name: str) -> Collection:
    return repo.get_collection(s, name)


def known_backbone(value: str | None) -> str | None:
    """The ``backbone`` parameter, checked: 400 for a name that is no backbone at all (a known
    backbone without vectors in the collection is a 404, from the search)."""
    from simsearch.embed import parse_space

    if value is not None:
        parse_space(value)
    return value


# ---- responses: gzip for large JSON, security headers --------------------------------------

GZIP_MIN_BYTES = 1024


@bp.after_app_request
def compress_and_harden(resp: Response) -> Response:
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    if (resp.mimetype == "application/json" and resp.status_code == 200 and not resp.direct_passthrough
            and "Content-Encoding" not in resp.headers and "gzip" in request.headers.get("Accept-Encoding", "").lower()):
        data = resp.get_data()
        if len(data) >= GZIP_MIN_BYTES:
            resp.set_data(gzip.compress(data, compresslevel=6))
            resp.headers["Content-Encoding"] = "gzip"
    if resp.mimetype == "application/json":
        resp.vary.add("Accept-Encoding")
    return resp


# ---- health, backbones ---------------------------------------------------------------------

@bp.get("/health")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.Health, description="Database (and job queue) reachable.")
@bp.doc(summary="Health check", tags=["service"], responses=errors(400, 503))
def health(q):
    svc = services()
    out = {"status": "ok", "version": __version__, "database": svc.db.dialect, "jobs": runner().kind}
    try:
        with svc.db.session() as s:
            s.execute(text("SELECT 1"))
    except Exception as exc:
        raise SimsearchError(f"database unreachable: {type(exc).__name__}", details=out) from None
    if runner().kind == "rq":
        try:
            runner().ping()
        except Exception as exc:
            err = jobs_mod.QueueUnavailable(f"job queue (Redis) unreachable: {type(exc).__name__}", details=out)
            raise err from None
    return out


@bp.get("/backbones")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.BackboneList, description="Backbones and whether their weights are available.")
@bp.doc(summary="List backbones", tags=["service"], responses=errors(400))
def backbones(q):
    from simsearch.backbones import get_backbone, list_backbones
    from simsearch.embed import _MODELS

    weights_dir = services().settings.weights_dir
    loaded = {key[0] for key in list(_MODELS)}
    rows = []
    for name in list_backbones():
        b = get_backbone(name)
        ok, reason = b.weights_status(weights_dir)
        rows.append({"name": b.name, "input_size": b.input_size, "dim": b.dim, "family": b.family,
                     "weights_available": bool(ok), "weights_note": reason or None, "loaded": b.name in loaded,
                     "default": b.name == services().settings.default_backbone})
    return {"backbones": rows}


# ---- collections ---------------------------------------------------------------------------

@bp.get("/collections")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.CollectionList, description="Collections with image and vector counts.")
@bp.doc(summary="List collections", tags=["collections"], responses=errors(400))
def list_collections(q):
    with services().db.session() as s:
        rows = [collection_summary(s, c) for c in s.scalars(select(Collection).order_by(Collection.name))]
    return {"collections": rows}


@bp.post("/collections")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.NewCollection, location="json", arg_name="body")
@bp.output(S.Collection, status_code=201, description="Created.", links=links.CREATED_COLLECTION)
@bp.doc(summary="Create a collection", tags=["collections"], security=WRITE_SECURITY,
        responses={**errors(400, 401, 403, 409), 201: {"description": "Created.", "headers": {
            "Location": {"schema": {"type": "string"}, "description": "The collection's URL."}}}})
def create_collection(q, body: S.NewCollection):
    name, description = body.name, body.description
    with services().db.session() as s:
        if s.scalar(select(Collection.id).where(Collection.name == name)) is not None:
            raise Conflict(f"a collection named {name!r} already exists", field="name")
        coll = repo.get_or_create_collection(s, name, description)
        out = collection_summary(s, coll)
    resp = jsonify(out)
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.get_collection_view", name=name)
    return resp


@bp.get("/collections/<name>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.CollectionDetail, description="The collection, its labels and recent ingest jobs.")
@bp.doc(summary="Get a collection", tags=["collections"], responses=errors(400, 404))
def get_collection_view(name: str, q):
    with services().db.session() as s:
        coll = get_collection(s, name)
        out = collection_summary(s, coll)
        labels = s.execute(select(Image.label, func.count()).where(Image.collection_id == coll.id, Image.status == "ok")
                           .group_by(Image.label).order_by(func.count().desc(), Image.label)).all()
        out["labels"] = [{"label": lab, "count": n} for lab, n in labels]
        out["recent_jobs"] = [jobs_mod.job_dict(r, coll.name) for r in repo.latest_runs(s, coll.id, 5)]
    return out


@bp.delete("/collections/<name>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.CollectionDeleted, description="Deleted, with its images, vectors, index files and staged uploads.")
@bp.doc(summary="Delete a collection", tags=["collections"], security=WRITE_SECURITY, responses=errors(400, 401, 403, 404))
def delete_collection(name: str, q):
    svc = services()
    with svc.db.session() as s:
        coll = get_collection(s, name)
        coll_id = coll.id
        counts = repo.image_counts(s, coll_id)
        run_ids = list(s.scalars(select(IngestRun.id).where(IngestRun.collection_id == coll_id)))
        repo.delete_collection(s, coll)
    svc.indexes.forget(coll_id)
    shutil.rmtree(svc.indexes.path_for(coll_id, "any").parent, ignore_errors=True)
    for run_id in run_ids:
        remove_quietly(run_folder(svc.settings, run_id))
    return {"deleted": name, "images": counts.get("ok", 0) + counts.get("failed", 0)}


@bp.get("/collections/<name>/images")
@bp.input(S.ImagesQuery, location="query", arg_name="q")
@bp.output(S.ImagePage, description="One page of images, ordered by id, with the total count.", links=links.LISTED_IMAGES)
@bp.doc(summary="List a collection's images", tags=["images"], responses=errors(400, 404))
def list_images(name: str, q: S.ImagesQuery):
    page, per_page, label, status = q.page, q.per_page, q.label, q.status
    meta_filters = dict(q.meta or {})
    with services().db.session() as s:
        coll = get_collection(s, name)
        stmt = select(Image).where(Image.collection_id == coll.id)
        if label is not None:
            stmt = stmt.where(Image.label == label)
        if status is not None:
            stmt = stmt.where(Image.status == status)
        for mkey, value in meta_filters.items():
            stmt = stmt.where(Image.meta[mkey].as_string() == value)
        total = s.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = s.scalars(stmt.order_by(Image.id).offset((page - 1) * per_page).limit(per_page)).all()
        items = [image_dict(img, coll.name) for img in rows]
    return {"collection": name, "page": page, "per_page": per_page, "total": total,
            "pages": max(1, math.ceil(total / per_page)), "filters": {"label": label, "status": status, "meta": meta_filters},
            "images": items}


@bp.post("/collections/<name>/labels")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.Labels, location="json", arg_name="body")
@bp.output(S.LabelsResult, description="The images now carry the label.")
@bp.doc(summary="Label a group of images", tags=["images"], security=WRITE_SECURITY,
        description="Saves a named group (e.g. a lasso selection on the map) as the images' label.",
        responses=errors(400, 401, 403, 404))
def set_labels(name: str, q, body: S.Labels):
    label = body.label.strip() if body.label is not None else None
    wanted = sorted(set(body.image_ids))
    with services().db.session() as s:
        coll = get_collection(s, name)
        found: set[int] = set()
        for start in range(0, len(wanted), 5000):
            chunk = wanted[start:start + 5000]
            found.update(s.scalars(select(Image.id).where(Image.collection_id == coll.id, Image.id.in_(chunk))))
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"{len(missing)} of the image ids are not in collection {name!r}", field="image_ids",
                           details={"missing": missing[:100]})
        for start in range(0, len(wanted), 5000):
            s.execute(update(Image).where(Image.id.in_(wanted[start:start + 5000])).values(label=label))
    return {"collection": name, "label": label, "updated": len(wanted)}


# ---- images --------------------------------------------------------------------------------

@bp.get("/images/<int:image_id>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.ImageDetail, description="The image's metadata.")
@bp.doc(summary="Get an image", tags=["images"], responses=errors(400, 404))
def get_image(image_id: int, q):
    with services().db.session() as s:
        img = repo.get_image(s, image_id)
        coll = s.get(Collection, img.collection_id)
        out = image_dict(img, coll.name)
        out["backbones"] = sorted(s.scalars(select(Embedding.space).where(Embedding.image_id == image_id)))
        out["similar_url"] = url_for("api.similar", image_id=image_id)
    return out


@bp.delete("/images/<int:image_id>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.ImageDeleted, description="Deleted (with its vectors).")
@bp.doc(summary="Delete an image", tags=["images"], security=WRITE_SECURITY, responses=errors(400, 401, 403, 404))
def delete_image(image_id: int, q):
    from simsearch.index.faiss_index import HNSW_THRESHOLD

    svc = services()
    with svc.db.session() as s:
        img = repo.get_image(s, image_id)
        coll_id = img.collection_id
        spaces = sorted(s.scalars(select(Embedding.space).where(Embedding.image_id == image_id)))
        s.delete(img)
    # Results never show a deleted image (hits are looked up in the database), so a large index
    # can be brought up to date in the background; small ones are rebuilt now.
    for space in spaces:
        cached = svc.indexes.cached(coll_id, space)
        if cached is not None and cached.ntotal >= HNSW_THRESHOLD:
            current_app.extensions["simsearch_tasks"].submit(svc.sync_index, coll_id, space)
        else:
            svc.sync_index(coll_id, space)
    return {"deleted": image_id}


@bp.get("/images/<int:image_id>/thumbnail")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.doc(summary="An image's thumbnail", tags=["images"], responses={
    200: {"description": "JPEG thumbnail (cacheable; ETag is the content hash).", "content": {"image/jpeg": {"schema": BINARY}}},
    304: {"description": "Not modified (If-None-Match matched)."}, **errors(400, 404)})
def thumbnail(image_id: int, q):
    with services().db.session() as s:
        img = repo.get_image(s, image_id)
        thumb = s.get(Thumbnail, img.thumbnail_hash) if img.thumbnail_hash else None
        if thumb is None:
            raise NotFound(f"image {image_id} has no thumbnail ({img.error or 'not decoded'})", field="image_id")
        data, mime, etag = thumb.data, thumb.mime_type, thumb.content_hash
    resp = Response(data, mimetype=mime)
    resp.set_etag(etag)
    resp.cache_control.public = True
    resp.cache_control.max_age = 7 * 24 * 3600
    return resp.make_conditional(request)


@bp.get("/images/<int:image_id>/similar")
@bp.input(S.SimilarQuery, location="query", arg_name="q")
@bp.output(S.SimilarResult, description="The most similar images of its collection (itself excluded), best first.")
@bp.doc(summary="Images similar to an ingested image", tags=["search"], responses=errors(400, 404))
def similar(image_id: int, q: S.SimilarQuery):
    from simsearch.search import similar_to

    k = q.k
    t0 = time.perf_counter()
    space, img, hits = similar_to(services(), image_id, space=known_backbone(q.backbone), k=k, label=q.label)
    return {"query": {"image_id": img.id, "path": img.source_path, "label": img.label,
                      "thumbnail_url": f"{request.script_root}/api/images/{img.id}/thumbnail"},
            "backbone": space, "k": k, "results": [hit_dict(h) for h in hits],
            "seconds": round(time.perf_counter() - t0, 4)}


def _raw_image_body() -> bool:
    """Whether the request body is the image itself (``Content-Type: image/...`` or
    ``application/octet-stream``) rather than a multipart form."""
    mimetype = request.mimetype
    return mimetype.startswith("image/") or mimetype == "application/octet-stream"


@bp.post("/collections/<name>/search")
@bp.input(S.SearchQuery, location="query", arg_name="q")
@bp.output(S.SearchResult, description="The most similar images, best first.")
@bp.doc(summary="Search by an uploaded image", tags=["search"], security=WRITE_SECURITY,
        description="Send the image as a multipart form field `image` (as browsers do; `k`, `backbone` and `label` "
                    "may be form fields or query parameters, form fields win), or as the whole request body with "
                    "`Content-Type: image/...` or `application/octet-stream` and the options in the query string "
                    "(no multipart parsing: the fastest form for scripts).",
        responses=errors(400, 401, 403, 404, 413, 503,
                         e400="Bad input, or the upload is not a usable image (not an image, truncated, too many pixels)."),
        extensions=bodies(**{"multipart/form-data": S.SearchUpload, "image/*": BINARY, "application/octet-stream": BINARY}))
def search(name: str, q: S.SearchQuery):
    """Search by an uploaded image: a multipart form with an ``image`` file field (what browsers
    send), or the image as the whole request body with the options in the query string (no
    multipart parsing: about 1 ms less per query, for scripts)."""
    from simsearch.search import search_image

    k, backbone, label = q.k, q.backbone, q.label
    if _raw_image_body():
        data = request.get_data(cache=False)
        filename = q.filename
        if not data:
            raise InvalidInput("the request body is empty: send the image file's bytes", field="image")
    elif request.mimetype != "multipart/form-data":
        raise InvalidInput("send the query image as a multipart/form-data file field named 'image', or as the "
                           "request body with Content-Type image/...", field="image")
    else:
        if "image" not in request.files:
            raise InvalidInput("send the query image as a multipart/form-data file field named 'image', or as the "
                               "request body with Content-Type image/...", field="image")
        form = validate(S.SearchUpload, form_data(S.SearchUpload) | {"image": request.files["image"]}, "form")
        data = form.image.read()
        filename = form.image.filename or None
        k = form.k or k
        backbone = form.backbone or backbone
        label = form.label or label
    known_backbone(backbone)
    t0 = time.perf_counter()
    space, hits = search_image(services(), name, data, filename or "uploaded image", space=backbone, k=k, label=label)
    return {"query": {"filename": filename, "bytes": len(data)}, "collection": name, "backbone": space, "k": k,
            "results": [hit_dict(h) for h in hits], "seconds": round(time.perf_counter() - t0, 4)}


# ---- analysis (simsearch.ops.analysis) -----------------------------------------------------

def _collection_space(name: str, backbone: str | None) -> tuple[int, str]:
    from simsearch.search import resolve_space

    with services().db.session() as s:
        coll_id = get_collection(s, name).id
    if backbone is not None:
        from simsearch.embed import parse_space

        parse_space(backbone)  # 400 for an unknown backbone, before 404 for one without vectors
    return coll_id, resolve_space(services(), coll_id, backbone)


@bp.get("/collections/<name>/clusters")
@bp.input(S.ClustersQuery, location="query", arg_name="q")
@bp.output(S.Clusters, description="Cluster assignment and summary.")
@bp.doc(summary="Clusters", tags=["analysis"], description=ANALYSIS, responses=errors(400, 404, 409))
def clusters(name: str, q: S.ClustersQuery):
    from simsearch.ops import analysis

    _, space = _collection_space(name, q.backbone)
    return jsonify(analysis.clusters(services(), name, space, q.k).to_dict())


def round_significant(values, digits: int = MAP_SIGNIFICANT_DIGITS) -> list:
    """Round an array to ``digits`` significant digits relative to its largest magnitude."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return []
    finite = np.abs(arr[np.isfinite(arr)])
    top = float(finite.max()) if finite.size else 0.0
    decimals = digits - 1 - (int(math.floor(math.log10(top))) if top > 0 else 0)
    out = np.round(arr, max(0, decimals))
    return [None if not math.isfinite(v) else (int(v) if decimals <= 0 else v) for v in out.tolist()]


def compact_map(result: dict) -> dict:
    """Arrays stay arrays; float arrays are rounded (``x``, ``y`` and any other list of floats)."""
    out = dict(result)
    for key, value in result.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, list) and value and all(isinstance(v, float) for v in value[:64]):
            out[key] = round_significant(value)
        elif isinstance(value, list):
            out[key] = value
    return out


@bp.get("/collections/<name>/map")
@bp.input(S.AnalysisQuery, location="query", arg_name="q")
@bp.output(S.Map, description="Parallel arrays; gzip-compressed when accepted.")
@bp.doc(summary="2-D map", tags=["analysis"], description=ANALYSIS, responses=errors(400, 404, 409))
def map_view(name: str, q: S.AnalysisQuery):
    from simsearch.ops import analysis

    _, space = _collection_space(name, q.backbone)
    return jsonify(compact_map(analysis.map_2d(services(), name, space).to_dict()))


@bp.get("/collections/<name>/evaluation")
@bp.input(S.AnalysisQuery, location="query", arg_name="q")
@bp.output(S.Evaluation, description="Retrieval precision and cluster agreement with the labels.")
@bp.doc(summary="Evaluation against labels", tags=["analysis"], description=ANALYSIS, responses=errors(400, 404, 409))
def evaluation(name: str, q: S.AnalysisQuery):
    from simsearch.ops import analysis

    _, space = _collection_space(name, q.backbone)
    return jsonify(analysis.evaluate(services(), name, space).to_dict())


@bp.get("/collections/<name>/comparison")
@bp.input(S.ComparisonQuery, location="query", arg_name="q")
@bp.output(S.Comparison, description="The evaluation of each backbone, side by side.")
@bp.doc(summary="Compare backbones", tags=["analysis"], description=ANALYSIS, responses=errors(400, 404, 409))
def comparison(name: str, q: S.ComparisonQuery):
    from simsearch.embed import parse_space

    raw = ",".join(q.backbones or [])
    with services().db.session() as s:
        coll_id = get_collection(s, name).id
        have = repo.spaces_of(s, coll_id)
    names = [b.strip() for b in raw.split(",") if b.strip()] if raw else have
    names = list(dict.fromkeys(names))
    if not names:  # the request is fine; the collection has nothing to compare yet
        raise Conflict(f"collection {name!r} has no vectors yet: ingest images first", field="backbones")
    for n in names:
        parse_space(n)  # 400 for unknown names; known ones without vectors are reported in their panel
    from simsearch.ops.comparison import compare

    return jsonify(compare(services(), name, names, with_maps=False).to_dict())


# ---- ingest jobs ---------------------------------------------------------------------------

def _spaces_from(values: list[str], pooling: str | None) -> list[str]:
    from simsearch.backbones import get_backbone
    from simsearch.embed import space_key

    names = [v.strip() for raw in values for v in str(raw).split(",") if v.strip()]
    if not names:
        names = [services().settings.default_backbone]
    spaces = []
    for n in dict.fromkeys(names):
        base, _, pool = n.partition("@")
        spaces.append(space_key(base, pool or pooling or "avg"))
        ok, reason = get_backbone(base).weights_status(services().settings.weights_dir)
        if not ok:
            raise WeightsUnavailable(f"{base}: {reason}", field="backbone")
    return list(dict.fromkeys(spaces))


def _labels_option(value) -> str | None:
    return "folders" if value == "folders" else None


def _label_option(value) -> str | None:
    return value.strip() if value else None


def _accepted(run_id: int, collection: str, total: int, ignored: list[str]):
    status_url = url_for("api.job", job_id=run_id)
    resp = jsonify({"job_id": run_id, "status": "queued", "status_url": status_url, "collection": collection,
                    "total": total, "ignored": ignored[:200], "runner": runner().kind})
    resp.status_code = 202
    resp.headers["Location"] = status_url
    return resp


def _server_path_ingest(name: str):
    from simsearch.ingest import files_from_folder

    body = json_model(S.ServerPathIngest)
    root_cfg = current_app.config.get("SIMSEARCH_ALLOW_SERVER_PATHS")
    if not root_cfg:
        raise Forbidden("ingest from a server-side folder is disabled; the administrator can allow it with "
                        "SIMSEARCH_ALLOW_SERVER_PATHS=<allowed root folder>", field="server_path")
    raw = body.server_path
    root = Path(root_cfg).expanduser().resolve()
    given = Path(raw.strip()).expanduser()
    target = (given if given.is_absolute() else root / given).resolve()
    if not target.is_relative_to(root):
        raise Forbidden(f"server_path must be inside the allowed folder {root}", field="server_path")
    if not target.exists():
        raise InvalidInput(f"server_path {raw!r}: no such file or folder", field="server_path")
    spaces = _spaces_from(_as_list(body.backbones) + _as_list(body.backbone), body.pooling)
    labels = _labels_option(body.labels)
    label = _label_option(body.label)
    batch_size = body.batch_size
    files, ignored = files_from_folder(target, labels=labels)
    kept = []
    for f in files:
        if f.path.resolve().is_relative_to(root):  # no symlinks out of the allowed folder
            kept.append({"path": str(f.path), "name": f.name, "label": f.label or label, "meta": f.meta})
        else:
            ignored.append(f"{f.name} (links outside the allowed folder)")
    if not kept:
        raise InvalidInput(f"server_path {raw!r}: no image files found", field="server_path",
                           details={"ignored": ignored[:100]})
    repo.validate_collection_name(name)
    staging = Staging(dir=new_staging_dir(uploads_dir(services().settings)), ignored=ignored)
    run_id = jobs_mod.create_run(services(), name, spaces, str(target), staging, absolute_files=kept, batch_size=batch_size)
    runner().submit(run_id, {"batch_size": batch_size})
    return _accepted(run_id, name, len(kept), ignored)


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@bp.post("/collections/<name>/ingest")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.JobAccepted, status_code=202, description="Queued; poll status_url.", links=links.QUEUED_JOB)
@bp.doc(summary="Add images (background job)", tags=["ingest"], security=WRITE_SECURITY,
        description="Upload image files or one zip archive (multipart), or name a folder on the server (JSON, only when "
                    "the administrator set SIMSEARCH_ALLOW_SERVER_PATHS). The collection is created if new. Files "
                    "already in the collection (same content) are skipped.",
        responses={**errors(400, 401, 403, 413, 503,
                            e400="Bad input, no images, or a refused archive (path traversal, symlinks, zip bomb).",
                            e403="Server paths are not enabled, the path is outside the allowed root, or CSRF failed."),
                   202: {"description": "Queued; poll status_url.", "headers": {
                       "Location": {"schema": {"type": "string"}, "description": "The job's status URL."}}}},
        extensions=bodies(**{"multipart/form-data": S.UploadIngest, "application/json": S.ServerPathIngest}))
def ingest(name: str, q):
    repo.validate_collection_name(name)
    if request.is_json:
        return _server_path_ingest(name)
    if request.mimetype != "multipart/form-data":
        raise InvalidInput("send image files as multipart/form-data (field 'files', repeatable, or one zip in 'archive'), "
                           "or JSON {\"server_path\": ...}", field="files")
    form = validate(S.UploadIngest, form_data(S.UploadIngest), "form")
    spaces = _spaces_from((form.backbone or []) + (form.backbones or []), form.pooling)
    labels = _labels_option(form.labels)
    label = _label_option(form.label)
    batch_size = form.batch_size
    files = form.files or []
    archives = [form.archive] if form.archive is not None else []
    if files and archives:
        raise InvalidInput("send either image files (field 'files') or one zip archive (field 'archive'), not both", field="archive")
    if not files and not archives:
        raise InvalidInput("no files: send images in the multipart field 'files' (repeatable) or a zip in 'archive'", field="files")
    dest = new_staging_dir(uploads_dir(services().settings))
    try:
        if archives:
            staging = extract_zip(archives[0].stream, dest, ZipLimits.from_config(current_app.config), labels=labels, label=label)
            source = f"upload: {archives[0].filename or 'archive.zip'}"
        else:
            staging = stage_files(files, dest, labels=labels, label=label)
            source = f"upload: {len(files)} file(s)"
        if not staging.files:
            raise InvalidInput("the upload has no image files (looked for .jpg .jpeg .png .gif .bmp .tif .tiff .webp)",
                               field="archive" if archives else "files", details={"ignored": staging.ignored[:100]})
        run_id = jobs_mod.create_run(services(), name, spaces, source, staging, batch_size=batch_size)
    except BaseException:
        remove_quietly(dest)
        raise
    runner().submit(run_id, {"batch_size": batch_size})
    return _accepted(run_id, name, len(staging.files), staging.ignored)


@bp.get("/jobs/<int:job_id>")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.Job, description="Progress, rate, ETA and per-file errors.")
@bp.doc(summary="Ingest job status", tags=["ingest"], responses=errors(400, 404))
def job(job_id: int, q):
    with services().db.session() as s:
        run = s.get(IngestRun, job_id)
        if run is None:
            raise NotFound(f"no ingest job with id {job_id}", field="job_id")
        coll = s.get(Collection, run.collection_id)
        return jobs_mod.job_dict(run, coll.name if coll else None)


@bp.get("/jobs")
@bp.input(S.JobsQuery, location="query", arg_name="q")
@bp.output(S.JobList, description="Most recent first.", links=links.LISTED_JOBS)
@bp.doc(summary="List ingest jobs", tags=["ingest"], responses=errors(400, 404))
def list_jobs(q: S.JobsQuery):
    limit, name = q.limit, q.collection
    with services().db.session() as s:
        stmt = select(IngestRun, Collection.name).join(Collection, Collection.id == IngestRun.collection_id)
        if name is not None:
            stmt = stmt.where(IngestRun.collection_id == get_collection(s, name).id)
        rows = s.execute(stmt.order_by(IngestRun.id.desc()).limit(limit)).all()
        return {"jobs": [jobs_mod.job_dict(run, cname) for run, cname in rows]}
