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
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from sqlalchemy import func, select, text, update
from werkzeug.datastructures import CombinedMultiDict

from simsearch import __version__
from simsearch.errors import Conflict, InvalidInput, NotFound, SimsearchError, WeightsUnavailable
from simsearch.store import repo
from simsearch.store.models import Collection, Embedding, Image, IngestRun, Thumbnail
from simsearch.web import jobs as jobs_mod
from simsearch.web.errors import Forbidden
from simsearch.web.payloads import (
    Staging,
    ZipLimits,
    extract_zip,
    int_arg,
    json_body,
    new_staging_dir,
    remove_quietly,
    stage_files,
    str_arg,
)
from simsearch.worker import run_folder, uploads_dir

bp = Blueprint("api", __name__)

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
MAX_LABEL_IDS = 100_000
META_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}$")
MAP_SIGNIFICANT_DIGITS = 4


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


def backbone_arg(source=None) -> str | None:
    """The ``backbone`` parameter, checked: 400 for a name that is no backbone at all (a known
    backbone without vectors in the collection is a 404, from the search)."""
    from simsearch.embed import parse_space

    value = str_arg("backbone", source)
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
def health():
    """200 when every dependency answers; else 503 naming the first one down, with every
    dependency's state in ``details.checks`` (``ok``, ``unavailable``, ``schema_outdated``)."""
    from simsearch.store.db import unavailable

    svc = services()
    checks = {"database": "ok", "job_queue": "ok" if runner().kind == "rq" else "in-process"}
    failures = []
    try:
        svc.ensure_schema()
        with svc.db.session() as s:
            s.execute(text("SELECT 1"))
    except SimsearchError as exc:
        checks["database"] = "unavailable" if exc.code == "database_unavailable" else exc.code
        failures.append(exc)
    except Exception as exc:
        err = unavailable(exc)
        if err is None:
            raise
        checks["database"] = "unavailable"
        failures.append(err)
    if runner().kind == "rq":
        try:
            runner().ping()
        except Exception as exc:
            checks["job_queue"] = "unavailable"
            failures.append(jobs_mod.QueueUnavailable(f"the job queue (Redis) is unavailable: {type(exc).__name__}"))
    out = {"status": "ok", "version": __version__, "database": svc.db.dialect, "jobs": runner().kind, "checks": checks}
    if failures:
        first = failures[0]
        down = ", ".join(k for k, v in checks.items() if v not in ("ok", "in-process"))
        raise type(first)(f"{first.message} (down: {down})", details=dict(out, status="unavailable"))
    return out


@bp.get("/backbones")
def backbones():
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
def list_collections():
    with services().db.session() as s:
        rows = [collection_summary(s, c) for c in s.scalars(select(Collection).order_by(Collection.name))]
    return {"collections": rows}


@bp.post("/collections")
def create_collection():
    body = json_body()
    name = body.get("name")
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 10_000):
        raise InvalidInput("description must be a string of at most 10,000 characters", field="description")
    repo.validate_collection_name(name)
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
def get_collection_view(name: str):
    with services().db.session() as s:
        coll = get_collection(s, name)
        out = collection_summary(s, coll)
        labels = s.execute(select(Image.label, func.count()).where(Image.collection_id == coll.id, Image.status == "ok")
                           .group_by(Image.label).order_by(func.count().desc(), Image.label)).all()
        out["labels"] = [{"label": lab, "count": n} for lab, n in labels]
        out["recent_jobs"] = [jobs_mod.job_dict(r, coll.name) for r in repo.latest_runs(s, coll.id, 5)]
    return out


@bp.delete("/collections/<name>")
def delete_collection(name: str):
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
def list_images(name: str):
    page = int_arg("page", 1, minimum=1, maximum=10_000_000)
    per_page = int_arg("per_page", DEFAULT_PER_PAGE, minimum=1, maximum=MAX_PER_PAGE)
    label = str_arg("label")
    status = str_arg("status")
    if status not in (None, "ok", "failed"):
        raise InvalidInput(f"status must be 'ok' or 'failed', not {status!r}", field="status")
    with services().db.session() as s:
        coll = get_collection(s, name)
        q = select(Image).where(Image.collection_id == coll.id)
        if label is not None:
            q = q.where(Image.label == label)
        if status is not None:
            q = q.where(Image.status == status)
        meta_filters = {}
        for key, value in request.args.items(multi=True):
            if key.startswith("meta."):
                mkey = key[5:]
            elif key.startswith("meta[") and key.endswith("]"):  # OpenAPI deepObject style
                mkey = key[5:-1]
            else:
                continue
            if not META_KEY.match(mkey):
                raise InvalidInput(f"bad metadata key {mkey!r}: use letters, digits, '_', '-', '.', ' '", field=key)
            meta_filters[mkey] = value
            q = q.where(Image.meta[mkey].as_string() == value)
        total = s.scalar(select(func.count()).select_from(q.subquery()))
        rows = s.scalars(q.order_by(Image.id).offset((page - 1) * per_page).limit(per_page)).all()
        items = [image_dict(img, coll.name) for img in rows]
    return {"collection": name, "page": page, "per_page": per_page, "total": total,
            "pages": max(1, math.ceil(total / per_page)), "filters": {"label": label, "status": status, "meta": meta_filters},
            "images": items}


@bp.post("/collections/<name>/labels")
def set_labels(name: str):
    body = json_body()
    ids = body.get("image_ids")
    if not isinstance(ids, list) or not ids:
        raise InvalidInput("image_ids must be a non-empty list of image ids", field="image_ids")
    if len(ids) > MAX_LABEL_IDS:
        raise InvalidInput(f"at most {MAX_LABEL_IDS} image ids at once", field="image_ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InvalidInput("image_ids must all be whole numbers", field="image_ids")
    if "label" not in body:
        raise InvalidInput("give the label to set ('label': null removes it)", field="label")
    label = body["label"]
    if label is not None:
        if not isinstance(label, str) or not label.strip() or len(label.strip()) > 200:
            raise InvalidInput("label must be a non-empty string of at most 200 characters, or null", field="label")
        label = label.strip()
    wanted = sorted(set(ids))
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
def get_image(image_id: int):
    with services().db.session() as s:
        img = repo.get_image(s, image_id)
        coll = s.get(Collection, img.collection_id)
        out = image_dict(img, coll.name)
        out["backbones"] = sorted(s.scalars(select(Embedding.space).where(Embedding.image_id == image_id)))
        out["similar_url"] = url_for("api.similar", image_id=image_id)
    return out


@bp.delete("/images/<int:image_id>")
def delete_image(image_id: int):
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
def thumbnail(image_id: int):
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
def similar(image_id: int):
    from simsearch.search import similar_to

    k = int_arg("k", 10)
    t0 = time.perf_counter()
    space, img, hits = similar_to(services(), image_id, space=backbone_arg(), k=k, label=str_arg("label"))
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
def search(name: str):
    """Search by an uploaded image: a multipart form with an ``image`` file field (what browsers
    send), or the image as the whole request body with the options in the query string (no
    multipart parsing: about 1 ms less per query, for scripts)."""
    from simsearch.search import search_image

    if _raw_image_body():
        params = request.args
        data = request.get_data(cache=False)
        filename = str_arg("filename", params, max_length=255)
        if not data:
            raise InvalidInput("the request body is empty: send the image file's bytes", field="image")
    else:
        form = request.form
        upload = request.files.get("image")
        if upload is None:
            raise InvalidInput("send the query image as a multipart/form-data file field named 'image', or as the "
                               "request body with Content-Type image/...", field="image")
        params = CombinedMultiDict([form, request.args])
        data = upload.read()
        filename = upload.filename or None
    k = int_arg("k", 10, source=params)
    backbone = backbone_arg(params)
    label = str_arg("label", params)
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


def _cluster_k():
    raw = (request.args.get("k") or "auto").strip().lower()
    if raw == "auto":
        return "auto"
    k = int_arg("k", minimum=2, maximum=200)
    return k


@bp.get("/collections/<name>/clusters")
def clusters(name: str):
    k = _cluster_k()
    _, space = _collection_space(name, str_arg("backbone"))
    from simsearch.ops import analysis

    return jsonify(analysis.clusters(services(), name, space, k).to_dict())


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
def map_view(name: str):
    _, space = _collection_space(name, str_arg("backbone"))
    from simsearch.ops import analysis

    return jsonify(compact_map(analysis.map_2d(services(), name, space).to_dict()))


@bp.get("/collections/<name>/evaluation")
def evaluation(name: str):
    _, space = _collection_space(name, str_arg("backbone"))
    from simsearch.ops import analysis

    return jsonify(analysis.evaluate(services(), name, space).to_dict())


@bp.get("/collections/<name>/comparison")
def comparison(name: str):
    from simsearch.embed import parse_space

    raw = str_arg("backbones", max_length=2000)
    with services().db.session() as s:
        coll_id = get_collection(s, name).id
        have = repo.spaces_of(s, coll_id)
    names = [b.strip() for b in raw.split(",") if b.strip()] if raw else have
    names = list(dict.fromkeys(names))
    if not names:
        raise InvalidInput("name the backbones to compare (backbones=a,b); this collection has: "
                           + (", ".join(have) or "none"), field="backbones")
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
    if value in (None, "", "none"):
        return None
    if value != "folders":
        raise InvalidInput(f"labels must be 'folders' (label each image by its folder), not {value!r}", field="labels")
    return "folders"


def _label_option(value) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value.strip()) > 200 or not value.strip():
        raise InvalidInput("label must be a non-empty string of at most 200 characters", field="label")
    return value.strip()


def _batch_option(value) -> int | None:
    if value in (None, ""):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"batch_size must be a whole number, not {value!r}", field="batch_size") from None
    if not 1 <= n <= 256:
        raise InvalidInput("batch_size must be between 1 and 256", field="batch_size")
    return n


def _accepted(run_id: int, collection: str, total: int, ignored: list[str]):
    status_url = url_for("api.job", job_id=run_id)
    resp = jsonify({"job_id": run_id, "status": "queued", "status_url": status_url, "collection": collection,
                    "total": total, "ignored": ignored[:200], "runner": runner().kind})
    resp.status_code = 202
    resp.headers["Location"] = status_url
    return resp


def _server_path_ingest(name: str):
    from simsearch.ingest import files_from_folder

    body = json_body()
    root_cfg = services().settings.allow_server_paths
    if not root_cfg:
        raise Forbidden("ingest from a server-side folder is disabled; the administrator can allow it with "
                        "SIMSEARCH_ALLOW_SERVER_PATHS=<allowed root folder>", field="server_path")
    raw = body.get("server_path")
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise InvalidInput("server_path must be a folder path (a string)", field="server_path")
    root = Path(root_cfg).expanduser().resolve()
    given = Path(raw.strip()).expanduser()
    target = (given if given.is_absolute() else root / given).resolve()
    if not target.is_relative_to(root):
        raise Forbidden(f"server_path must be inside the allowed folder {root}", field="server_path")
    if not target.exists():
        raise InvalidInput(f"server_path {raw!r}: no such file or folder", field="server_path")
    spaces = _spaces_from(_as_list(body.get("backbones")) + _as_list(body.get("backbone")), body.get("pooling"))
    labels = _labels_option(body.get("labels"))
    label = _label_option(body.get("label"))
    batch_size = _batch_option(body.get("batch_size"))
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
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise InvalidInput("backbones must be a list of names", field="backbones")
        return value
    if isinstance(value, str):
        return [value]
    raise InvalidInput("backbones must be a name or a list of names", field="backbones")


@bp.post("/collections/<name>/ingest")
def ingest(name: str):
    repo.validate_collection_name(name)
    if request.is_json:
        return _server_path_ingest(name)
    if request.mimetype != "multipart/form-data":
        raise InvalidInput("send image files as multipart/form-data (field 'files', repeatable, or one zip in 'archive'), "
                           "or JSON {\"server_path\": ...}", field="files")
    form = request.form
    spaces = _spaces_from(form.getlist("backbone") + form.getlist("backbones"), form.get("pooling"))
    labels = _labels_option(form.get("labels"))
    label = _label_option(form.get("label"))
    batch_size = _batch_option(form.get("batch_size"))
    files = [f for f in request.files.getlist("files") if f.filename or f.content_length]
    archives = [f for f in request.files.getlist("archive") if f.filename or f.content_length]
    if files and archives:
        raise InvalidInput("send either image files (field 'files') or one zip archive (field 'archive'), not both", field="archive")
    if len(archives) > 1:
        raise InvalidInput("send one zip archive at a time", field="archive")
    if not files and not archives:
        raise InvalidInput("no files: send images in the multipart field 'files' (repeatable) or a zip in 'archive'", field="files")
    dest = new_staging_dir(uploads_dir(services().settings))
    try:
        if archives:
            staging = extract_zip(archives[0].stream, dest, ZipLimits.from_settings(services().settings), labels=labels, label=label)
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
def job(job_id: int):
    with services().db.session() as s:
        run = s.get(IngestRun, job_id)
        if run is None:
            raise NotFound(f"no ingest job with id {job_id}", field="job_id")
        coll = s.get(Collection, run.collection_id)
        return jobs_mod.job_dict(run, coll.name if coll else None)


@bp.get("/jobs")
def list_jobs():
    limit = int_arg("limit", 20, minimum=1, maximum=200)
    name = str_arg("collection")
    with services().db.session() as s:
        q = select(IngestRun, Collection.name).join(Collection, Collection.id == IngestRun.collection_id)
        if name is not None:
            q = q.where(IngestRun.collection_id == get_collection(s, name).id)
        rows = s.execute(q.order_by(IngestRun.id.desc()).limit(limit)).all()
        return {"jobs": [jobs_mod.job_dict(run, cname) for run, cname in rows]}
