"""The OpenAPI 3.1 description of the API (``GET /api/openapi.json``) and a self-contained HTML
page rendering it (``GET /api/docs``, no external scripts or styles)."""

from __future__ import annotations

import copy

from flask import Blueprint, current_app, jsonify, render_template_string

from simsearch import __version__

bp = Blueprint("docs", __name__)

JSON = "application/json"


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def ok(description: str, schema: dict, content_type: str = JSON, headers: dict | None = None) -> dict:
    out = {"description": description, "content": {content_type: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def err(description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": ref("Error")}}}


def param(name: str, where: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema, "description": description}


COLLECTION = param("name", "path", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"}, "Collection name.")
IMAGE_ID = param("image_id", "path", {"type": "integer", "minimum": 1}, "Image id.")
BACKBONE = param("backbone", "query", {"type": "string"},
                 "Embedding space (backbone, optionally `@max`); default: the collection's only one or the server default.")
K = param("k", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}, "Number of results.")
LABEL = param("label", "query", {"type": "string"}, "Only return images with this label.")

E400 = err("Bad input: the message says which field and why (`field` names it).")
E401 = err("API keys are configured and the request has none, or a wrong one.")
E403 = err("Refused: missing or wrong CSRF token on a browser request, or not allowed here.")
E404 = err("No such collection, image, job or vectors for that backbone.")
E409 = err("Conflict with the current state (e.g. the name is taken).")
E413 = err("The request body is larger than the server's limit (MAX_CONTENT_LENGTH).")
E503 = err("A dependency is unavailable (model weights, the job queue, the database).")
WRITE_SECURITY = [{"bearerAuth": []}, {"apiKeyHeader": []}, {}]

ANY_OBJECT = {"type": "object", "additionalProperties": True}
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code, e.g. `not_found`, `invalid_input`, `bad_image`."},
                "message": {"type": "string", "description": "What went wrong, for people."},
                "field": {"type": "string", "description": "The request field at fault, when there is one."},
                "details": {"description": "Extra structured information (e.g. the refused zip entry)."},
            },
        }},
    },
    "BackboneSpace": {
        "type": "object",
        "required": ["vectors_in_db"],
        "properties": {"vectors_in_db": {"type": "integer"},
                       "vectors_in_index": {**NULLABLE_INT, "description": "Vectors in this process's open index (null: not opened yet)."}},
    },
    "Collection": {
        "type": "object",
        "required": ["name", "id", "images_ok", "images_failed", "backbones"],
        "properties": {
            "name": {"type": "string"}, "id": {"type": "integer"}, "description": NULLABLE_STRING,
            "created_at": NULLABLE_STRING, "images_ok": {"type": "integer"}, "images_failed": {"type": "integer"},
            "backbones": {"type": "object", "additionalProperties": ref("BackboneSpace")},
        },
    },
    "CollectionDetail": {
        "allOf": [ref("Collection"), {"type": "object", "required": ["labels", "recent_jobs"], "properties": {
            "labels": {"type": "array", "items": {"type": "object", "required": ["label", "count"],
                                                  "properties": {"label": NULLABLE_STRING, "count": {"type": "integer"}}}},
            "recent_jobs": {"type": "array", "items": ref("Job")},
        }}],
    },
    "NewCollection": {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"},
                       "description": {"type": "string", "maxLength": 10000}},
    },
    "Image": {
        "type": "object",
        "required": ["id", "collection", "path", "label", "status", "meta", "thumbnail_url"],
        "properties": {
            "id": {"type": "integer"}, "collection": NULLABLE_STRING, "path": {"type": "string"}, "label": NULLABLE_STRING,
            "width": NULLABLE_INT, "height": NULLABLE_INT, "status": {"type": "string", "enum": ["ok", "failed"]},
            "error": NULLABLE_STRING, "meta": ANY_OBJECT, "created_at": NULLABLE_STRING, "thumbnail_url": NULLABLE_STRING,
            "backbones": {"type": "array", "items": {"type": "string"}}, "similar_url": {"type": "string"},
        },
    },
    "ImagePage": {
        "type": "object",
        "required": ["collection", "page", "per_page", "total", "pages", "images"],
        "properties": {"collection": {"type": "string"}, "page": {"type": "integer"}, "per_page": {"type": "integer"},
                       "total": {"type": "integer"}, "pages": {"type": "integer"}, "filters": ANY_OBJECT,
                       "images": {"type": "array", "items": ref("Image")}},
    },
    "Hit": {
        "type": "object",
        "required": ["image_id", "score", "path", "label", "thumbnail_url"],
        "properties": {"image_id": {"type": "integer"}, "score": {"type": "number", "description": "Cosine similarity."},
                       "path": {"type": "string"}, "label": NULLABLE_STRING, "width": NULLABLE_INT, "height": NULLABLE_INT,
                       "thumbnail_url": {"type": "string"}},
    },
    "SimilarResult": {
        "type": "object", "required": ["query", "backbone", "results"],
        "properties": {"query": ANY_OBJECT, "backbone": {"type": "string"}, "k": {"type": "integer"},
                       "results": {"type": "array", "items": ref("Hit")}, "seconds": {"type": "number"}},
    },
    "SearchResult": {
        "type": "object", "required": ["query", "collection", "backbone", "results"],
        "properties": {"query": ANY_OBJECT, "collection": {"type": "string"}, "backbone": {"type": "string"},
                       "k": {"type": "integer"}, "results": {"type": "array", "items": ref("Hit")}, "seconds": {"type": "number"}},
    },
    "Labels": {
        "type": "object", "required": ["image_ids", "label"],
        "properties": {"image_ids": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 100000},
                       "label": {**NULLABLE_STRING, "maxLength": 200, "description": "The group name; null removes the label."}},
    },
    "LabelsResult": {
        "type": "object", "required": ["collection", "label", "updated"],
        "properties": {"collection": {"type": "string"}, "label": NULLABLE_STRING, "updated": {"type": "integer"}},
    },
    "Job": {
        "type": "object",
        "required": ["id", "status", "collection", "total", "processed", "failed", "added", "skipped", "rate",
                     "eta_seconds", "errors", "started_at", "finished_at", "message"],
        "properties": {
            "id": {"type": "integer"}, "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "collection": NULLABLE_STRING, "backbones": {"type": "array", "items": {"type": "string"}},
            "source": {"type": "string"}, "total": {"type": "integer"}, "processed": {"type": "integer"},
            "failed": {"type": "integer"}, "added": {"type": "integer"}, "skipped": {"type": "integer"},
            "rate": {"type": "number", "description": "Images processed per second."},
            "eta_seconds": {"type": ["number", "null"]},
            "errors": {"type": "array", "items": {"type": "object", "required": ["file", "reason"],
                                                  "properties": {"file": {"type": "string"}, "reason": {"type": "string"}}}},
            "errors_total": {"type": "integer"}, "created_at": NULLABLE_STRING, "started_at": NULLABLE_STRING,
            "updated_at": NULLABLE_STRING, "finished_at": NULLABLE_STRING, "message": NULLABLE_STRING,
            "stale": {"type": "boolean", "description": "Running, but no progress for 10 minutes: its process probably stopped."},
            "kind": {"type": "string", "enum": ["ingest", "clusters", "map", "evaluation", "comparison"]},
            "params": {"type": ["object", "null"], "description": "An analysis job's parameters."},
            "result_url": {"type": "string", "description": "An analysis job: where its result is served (200 once done)."},
        },
    },
    "AnalysisAccepted": {
        "type": "object", "required": ["job_id", "status", "status_url"], "additionalProperties": False,
        "properties": {"job_id": {"type": "integer"}, "status": {"type": "string", "enum": ["queued", "running"]},
                       "status_url": {"type": "string"}},
    },
    "JobAccepted": {
        "type": "object", "required": ["job_id", "status", "status_url"],
        "properties": {"job_id": {"type": "integer"}, "status": {"type": "string", "enum": ["queued"]},
                       "status_url": {"type": "string"}, "collection": {"type": "string"}, "total": {"type": "integer"},
                       "ignored": {"type": "array", "items": {"type": "string"}}, "runner": {"type": "string", "enum": ["thread", "rq"]}},
    },
    "ServerPathIngest": {
        "type": "object", "required": ["server_path"],
        "properties": {"server_path": {"type": "string", "description": "Folder inside the administrator's allowed root."},
                       "backbones": {"type": "array", "items": {"type": "string"}}, "backbone": {"type": "string"},
                       "pooling": {"type": "string", "enum": ["avg", "max"]}, "labels": {"type": "string", "enum": ["folders"]},
                       "label": {"type": "string"}, "batch_size": {"type": "integer", "minimum": 1, "maximum": 256}},
    },
    "UploadIngest": {
        "type": "object",
        "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "description": "Image files (repeat the field)."},
            "archive": {"type": "string", "format": "binary", "description": "One .zip of images (instead of files)."},
            "backbone": {"type": "string", "description": "Backbone(s), comma-separated or repeated; default: the server default."},
            "pooling": {"type": "string", "enum": ["avg", "max"]},
            "labels": {"type": "string", "enum": ["folders"], "description": "Label each image by its folder in the archive/upload."},
            "label": {"type": "string", "description": "One label for every image (folders win when labels=folders)."},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 256},
            "csrf_token": {"type": "string", "description": "Browser sessions only."},
        },
    },
    "SearchUpload": {
        "type": "object", "required": ["image"],
        "properties": {"image": {"type": "string", "format": "binary"}, "k": {"type": "integer", "minimum": 1, "maximum": 1000},
                       "backbone": {"type": "string"}, "label": {"type": "string"}, "csrf_token": {"type": "string"}},
    },
    "Backbone": {
        "type": "object", "required": ["name", "input_size", "dim", "family", "weights_available"],
        "properties": {"name": {"type": "string"}, "input_size": {"type": "integer"}, "dim": {"type": "integer"},
                       "family": {"type": "string"}, "weights_available": {"type": "boolean"}, "weights_note": NULLABLE_STRING,
                       "loaded": {"type": "boolean"}, "default": {"type": "boolean"}},
    },
    "Health": {
        "type": "object", "required": ["status", "version", "database", "jobs"],
        "properties": {"status": {"type": "string", "enum": ["ok"]}, "version": {"type": "string"},
                       "database": {"type": "string"}, "jobs": {"type": "string", "enum": ["thread", "rq"]}},
    },
    "Clusters": {
        "type": "object", "required": ["collection", "backbone"], "additionalProperties": True,
        "properties": {"collection": {"type": "string"}, "backbone": {"type": "string"}},
        "description": "Clusters of the collection (k-means; k chosen by silhouette when k=auto): see simsearch.ops.analysis_results.ClusterResult.",
    },
    "Map": {
        "type": "object", "required": ["collection", "backbone", "ids", "x", "y", "labels"], "additionalProperties": True,
        "description": "2-D map (t-SNE): parallel arrays, one entry per image; coordinates rounded to 4 significant digits.",
        "properties": {"collection": {"type": "string"}, "backbone": {"type": "string"}, "method": {"type": "string"},
                       "ids": {"type": "array", "items": {"type": "integer"}},
                       "x": {"type": "array", "items": {"type": ["number", "null"]}},
                       "y": {"type": "array", "items": {"type": ["number", "null"]}},
                       "labels": {"type": "array", "items": NULLABLE_STRING},
                       "clusters": {"type": "array", "items": NULLABLE_INT}},
    },
    "Evaluation": {
        "type": "object", "required": ["collection", "backbone"], "additionalProperties": True,
        "properties": {"collection": {"type": "string"}, "backbone": {"type": "string"}},
        "description": "Retrieval and clustering quality against the labels: see simsearch.ops.analysis_results.Evaluation.",
    },
    "Comparison": {
        "type": "object", "required": ["collection"], "additionalProperties": True,
        "properties": {"collection": {"type": "string"}},
        "description": "Side-by-side evaluation of several backbones: see simsearch.ops.analysis_results.Comparison.",
    },
}


def _op(summary: str, responses: dict, *, params=(), body=None, description: str | None = None, write: bool = False,
        tags=()) -> dict:
    op = {"summary": summary, "operationId": None, "responses": responses}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = list(params)
    if body:
        op["requestBody"] = body
    if write:
        op["security"] = WRITE_SECURITY
    if tags:
        op["tags"] = list(tags)
    return op


def _paths() -> dict:
    analysis = ("Never computed inside the request: 200 with the result when it is cached for the collection's current "
                "vectors (and labels, for scores), else 202 with the background job computing it (the one already "
                "running for the same parameters, or a new one): poll status_url until done, then ask again.")
    accepted = ok("Being computed; poll status_url, then ask again.", ref("AnalysisAccepted"),
                  headers={"Location": {"schema": {"type": "string"}, "description": "The job's status URL."}})
    return {
        "/api/health": {"get": _op("Health check", {"200": ok("Database (and job queue) reachable.", ref("Health")),
                                                   "500": err("Database unreachable."), "503": E503}, tags=["service"])},
        "/api/backbones": {"get": _op("List backbones", {"200": ok("Backbones and whether their weights are available.", {
            "type": "object", "required": ["backbones"], "properties": {"backbones": {"type": "array", "items": ref("Backbone")}}})},
            tags=["service"])},
        "/api/collections": {
            "get": _op("List collections", {"200": ok("Collections with image and vector counts.", {
                "type": "object", "required": ["collections"],
                "properties": {"collections": {"type": "array", "items": ref("Collection")}}})}, tags=["collections"]),
            "post": _op("Create a collection", {"201": ok("Created.", ref("Collection")), "400": E400, "401": E401,
                                                "403": E403, "409": E409},
                        body={"required": True, "content": {JSON: {"schema": ref("NewCollection")}}}, write=True,
                        tags=["collections"]),
        },
        "/api/collections/{name}": {
            "get": _op("Get a collection", {"200": ok("The collection, its labels and recent ingest jobs.", ref("CollectionDetail")),
                                            "404": E404}, params=[COLLECTION], tags=["collections"]),
            "delete": _op("Delete a collection", {"200": ok("Deleted, with its images, vectors, index files and staged uploads.", {
                "type": "object", "required": ["deleted", "images"],
                "properties": {"deleted": {"type": "string"}, "images": {"type": "integer"}}}),
                "401": E401, "403": E403, "404": E404}, params=[COLLECTION], write=True, tags=["collections"]),
        },
        "/api/collections/{name}/images": {"get": _op("List a collection's images", {
            "200": ok("One page of images, ordered by id, with the total count.", ref("ImagePage")), "400": E400, "404": E404},
            params=[COLLECTION, LABEL,
                    param("status", "query", {"type": "string", "enum": ["ok", "failed"]}, "Only images with this status."),
                    param("page", "query", {"type": "integer", "minimum": 1, "default": 1}, "Page number (from 1)."),
                    param("per_page", "query", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Images per page."),
                    {"name": "meta", "in": "query", "required": False, "style": "deepObject", "explode": True,
                     "schema": {"type": "object", "additionalProperties": {"type": "string"}},
                     "description": "Metadata filters as `meta[<key>]=<value>` or `meta.<key>=<value>` (e.g. `meta.photographer=Ann`); all must match."}],
            tags=["images"])},
        "/api/collections/{name}/labels": {"post": _op("Label a group of images", {
            "200": ok("The images now carry the label.", ref("LabelsResult")), "400": E400, "401": E401, "403": E403,
            "404": E404}, params=[COLLECTION], body={"required": True, "content": {JSON: {"schema": ref("Labels")}}},
            description="Saves a named group (e.g. a lasso selection on the map) as the images' label.", write=True,
            tags=["images"])},
        "/api/collections/{name}/search": {"post": _op("Search by an uploaded image", {
            "200": ok("The most similar images, best first.", ref("SearchResult")),
            "400": err("Bad input, or the upload is not a usable image (not an image, truncated, too many pixels)."),
            "401": E401, "403": E403, "404": E404, "413": E413, "503": E503},
            params=[COLLECTION, K, BACKBONE, LABEL,
                    param("filename", "query", {"type": "string", "maxLength": 255},
                          "With a raw image body: the file name to report in errors and in `query.filename`.")],
            body={"required": True, "content": {
                "multipart/form-data": {"schema": ref("SearchUpload")},
                "image/*": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            description="Send the image as a multipart form field `image` (as browsers do; `k`, `backbone` and `label` "
                        "may be form fields or query parameters, form fields win), or as the whole request body with "
                        "`Content-Type: image/...` or `application/octet-stream` and the options in the query string "
                        "(no multipart parsing: the fastest form for scripts).",
            write=True, tags=["search"])},
        "/api/collections/{name}/ingest": {"post": _op("Add images (background job)", {
            "202": ok("Queued; poll status_url.", ref("JobAccepted"),
                      headers={"Location": {"schema": {"type": "string"}, "description": "The job's status URL."}}),
            "400": err("Bad input, no images, or a refused archive (path traversal, symlinks, zip bomb)."),
            "401": E401, "403": err("Server paths are not enabled, the path is outside the allowed root, or CSRF failed."),
            "413": E413, "503": E503},
            params=[COLLECTION], body={"required": True, "content": {
                "multipart/form-data": {"schema": ref("UploadIngest")},
                JSON: {"schema": ref("ServerPathIngest")}}},
            description="Upload image files or one zip archive (multipart), or name a folder on the server (JSON, only when "
                        "the administrator set SIMSEARCH_ALLOW_SERVER_PATHS). The collection is created if new. Files "
                        "already in the collection (same content) are skipped.", write=True, tags=["ingest"])},
        "/api/jobs": {"get": _op("List jobs (ingest and analysis)", {"200": ok("Most recent first.", {
            "type": "object", "required": ["jobs"], "properties": {"jobs": {"type": "array", "items": ref("Job")}}}),
            "400": E400, "404": E404},
            params=[param("collection", "query", {"type": "string"}, "Only this collection's jobs."),
                    param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 20}, "How many.")],
            tags=["ingest"])},
        "/api/jobs/{job_id}": {"get": _op("Job status", {"200": ok("Progress (ingest: files, rate, ETA, per-file errors; analysis: steps).", ref("Job")),
                                                               "404": E404},
                                          params=[param("job_id", "path", {"type": "integer"}, "Job id (as returned by ingest).")],
                                          tags=["ingest"])},
        "/api/images/{image_id}": {
            "get": _op("Get an image", {"200": ok("The image's metadata.", ref("Image")), "404": E404}, params=[IMAGE_ID],
                       tags=["images"]),
            "delete": _op("Delete an image", {"200": ok("Deleted (with its vectors).", {
                "type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "integer"}}}),
                "401": E401, "403": E403, "404": E404}, params=[IMAGE_ID], write=True, tags=["images"]),
        },
        "/api/images/{image_id}/thumbnail": {"get": _op("An image's thumbnail", {
            "200": ok("JPEG thumbnail (cacheable; ETag is the content hash).", {"type": "string", "format": "binary"},
                      content_type="image/jpeg"),
            "304": {"description": "Not modified (If-None-Match matched)."}, "404": E404}, params=[IMAGE_ID], tags=["images"])},
        "/api/images/{image_id}/similar": {"get": _op("Images similar to an ingested image", {
            "200": ok("The most similar images of its collection (itself excluded), best first.", ref("SimilarResult")),
            "400": E400, "404": E404}, params=[IMAGE_ID, K, BACKBONE, LABEL], tags=["search"])},
        "/api/collections/{name}/clusters": {"get": _op("Clusters", {"200": ok("Cluster assignment and summary.", ref("Clusters")),
                                                                     "202": accepted, "400": E400, "404": E404}, description=analysis,
            params=[COLLECTION, BACKBONE, param("k", "query", {"oneOf": [{"type": "string", "enum": ["auto"]},
                                                                         {"type": "integer", "minimum": 2, "maximum": 200}]},
                                                "Number of clusters, or `auto` (silhouette sweep).")], tags=["analysis"])},
        "/api/collections/{name}/map": {"get": _op("2-D map", {"200": ok("Parallel arrays; gzip-compressed when accepted.", ref("Map")),
                                                              "202": accepted, "400": E400, "404": E404},
                                                   description=analysis, params=[COLLECTION, BACKBONE], tags=["analysis"])},
        "/api/collections/{name}/evaluation": {"get": _op("Evaluation against labels", {
            "200": ok("Retrieval precision and cluster agreement with the labels.", ref("Evaluation")), "202": accepted, "400": E400, "404": E404},
            description=analysis, params=[COLLECTION, BACKBONE], tags=["analysis"])},
        "/api/collections/{name}/comparison": {"get": _op("Compare backbones", {
            "200": ok("The evaluation of each backbone, side by side.", ref("Comparison")), "202": accepted, "400": E400, "404": E404},
            description=analysis,
            params=[COLLECTION, param("backbones", "query", {"type": "string"},
                                      "Comma-separated backbones (at least two); default: all of the collection's.")],
            tags=["analysis"])},
        "/api/openapi.json": {"get": _op("This document", {"200": ok("OpenAPI 3.1 document.", ANY_OBJECT)}, tags=["service"])},
        "/api/docs": {"get": _op("API documentation page", {"200": ok("HTML rendering of this document.", {"type": "string"},
                                                                      content_type="text/html")}, tags=["service"])},
    }


def build_spec() -> dict:
    paths = _paths()
    for path, ops in paths.items():
        for method, op in ops.items():
            op["operationId"] = method + "".join(
                part.strip("{}").replace(".", "_").replace("-", "_").title().replace("_", "")
                for part in path.split("/")[2:]) or method
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "simsearch API",
            "version": __version__,
            "description": (
                "Image similarity search over your own collections. Every error has one shape: "
                "`{\"error\": {\"code\", \"message\", \"field\"?, \"details\"?}}`. When the server has API keys "
                "(SIMSEARCH_API_KEYS), every write (POST/PUT/PATCH/DELETE) needs one, as `Authorization: Bearer KEY` "
                "or `X-API-Key: KEY`; browser sessions use /login and send the page's CSRF token in `X-CSRF-Token`."),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in ("service", "collections", "images", "search", "ingest", "analysis")],
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An API key from SIMSEARCH_API_KEYS."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


_SPEC = None


def spec() -> dict:
    global _SPEC
    if _SPEC is None:
        _SPEC = build_spec()
    return _SPEC


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(spec())


_DOCS = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ s.info.title }} {{ s.info.version }}</title>
<style>
body{font-family:system-ui,-apple-system,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{margin-bottom:.2rem} nav a{margin-right:.8rem} code,pre{font-family:ui-monospace,Menlo,monospace;font-size:.9em}
code{background:#f2f2f4;padding:.05rem .3rem;border-radius:3px}
section.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.2rem;font-weight:700;text-transform:uppercase;font-family:ui-monospace,monospace}
.get{color:#0a6}.post{color:#06c}.delete{color:#c22}.put,.patch{color:#a60}
table{border-collapse:collapse;width:100%;margin:.4rem 0}td,th{border-top:1px solid #eee;padding:.25rem .4rem;text-align:left;vertical-align:top}
details pre{background:#f7f7f9;padding:.6rem;overflow:auto;max-height:24rem}.lock{font-size:.8em;color:#a60}
</style></head><body>
<h1>{{ s.info.title }}</h1><p>version {{ s.info.version }} &middot; <a href="openapi.json">openapi.json</a></p>
<p>{{ s.info.description }}</p>
<nav>{% for t in s.tags %}<a href="#tag-{{ t.name }}">{{ t.name }}</a>{% endfor %}</nav>
{% for t in s.tags %}<h2 id="tag-{{ t.name }}">{{ t.name }}</h2>
{% for path, ops in s.paths.items() %}{% for method, op in ops.items() if t.name in op.get('tags', []) %}
<section class="op" id="{{ op.operationId }}"><div><span class="m {{ method }}">{{ method }}</span> <code>{{ path }}</code>
 &mdash; {{ op.summary }}{% if op.security %} <span class="lock">(write: API key or browser session + CSRF token)</span>{% endif %}</div>
{% if op.description %}<p>{{ op.description }}</p>{% endif %}
{% if op.parameters %}<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>
{% for p in op.parameters %}<tr><td><code>{{ p.name }}</code>{% if p.required %} *{% endif %}</td><td>{{ p.in }}</td>
<td>{{ p.schema.type or 'see schema' }}{% if p.schema.enum %} ({{ p.schema.enum|join(', ') }}){% endif %}{% if p.schema.default is defined %}, default {{ p.schema.default }}{% endif %}</td>
<td>{{ p.description }}</td></tr>{% endfor %}</table>{% endif %}
{% if op.requestBody %}<p>Request body: {% for ct, c in op.requestBody.content.items() %}<code>{{ ct }}</code> ({{ schema_name(c.schema) }}){% if not loop.last %} or {% endif %}{% endfor %}</p>{% endif %}
<table><tr><th>status</th><th>meaning</th><th>body</th></tr>{% for code, r in op.responses.items() %}
<tr><td>{{ code }}</td><td>{{ r.description }}</td><td>{% for ct, c in (r.content or {}).items() %}<code>{{ ct }}</code> {{ schema_name(c.schema) }}{% endfor %}</td></tr>
{% endfor %}</table></section>{% endfor %}{% endfor %}{% endfor %}
<h2>Schemas</h2>{% for name, sch in s.components.schemas.items() %}
<details id="schema-{{ name }}"><summary><code>{{ name }}</code>{% if sch.description %} &mdash; {{ sch.description }}{% endif %}</summary>
<pre>{{ dumps(sch) }}</pre></details>{% endfor %}
</body></html>"""


def _schema_name(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    return schema.get("type", "object") if isinstance(schema.get("type"), str) else "object"


@bp.get("/docs")
def docs():
    import json

    html = render_template_string(_DOCS, s=spec(), schema_name=_schema_name, dumps=lambda o: json.dumps(o, indent=2))
    return current_app.response_class(html, mimetype="text/html")
