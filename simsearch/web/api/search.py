"""``POST /api/collections/<name>/search``: search by an uploaded image; ``.../search/examples``: by
several positive and negative examples (ids or uploads)."""

from __future__ import annotations

from flask import request

from simsearch.errors import InvalidInput
from simsearch.ops import examples as ops_examples
from simsearch.ops import search as ops_search
from simsearch.web import schemas as S
from simsearch.web.api.blueprint import bp
from simsearch.web.api.common import ctx, hits_json
from simsearch.web.contract import BINARY, WRITE_SECURITY, bodies, errors, form_data, json_model, validate

NO_IMAGE = ("send the query image as a multipart/form-data file field named 'image', or as the request body with "
            "Content-Type image/...")


def _raw_image_body() -> bool:
    """Whether the request body is the image itself (``Content-Type: image/...`` or
    ``application/octet-stream``) rather than a multipart form."""
    mimetype = request.mimetype
    return mimetype.startswith("image/") or mimetype == "application/octet-stream"


@bp.post("/collections/<name>/search")
@bp.input(S.SearchQuery, location="query", arg_name="q")
@bp.output(S.SearchResult, description="The most similar images, best first.")
@bp.doc(summary="Search by an uploaded image", tags=["search"], security=WRITE_SECURITY,
        description="Send the image as a multipart form field `image` (as browsers do; `k`, `backbone`, `label`, `box`, "
                    "`regions`, `verify` and `local` "
                    "may be form fields or query parameters, form fields win), or as the whole request body with "
                    "`Content-Type: image/...` or `application/octet-stream` and the options in the query string "
                    "(no multipart parsing: the fastest form for scripts). A server with API keys and "
                    "SIMSEARCH_PUBLIC_SEARCH set answers clients without a key too, at most "
                    "SIMSEARCH_PUBLIC_SEARCH_PER_MINUTE searches a minute per address (429 past it). By default the "
                    "search also looks for the object in the photo (a picture on a wall, a page on a desk: "
                    "docs/region-search.md); `verify=true` also re-ranks the top results by geometric verification "
                    "(slower); `box` searches by one region of the image.",
        responses=errors(400, 401, 403, 404, 409, 413, 429, 503,
                         e400="Bad input, or the upload is not a usable image (not an image, truncated, too many pixels).",
                         e409="The space searched holds imported vectors: no model here can embed the image in it."),
        extensions=bodies(**{"multipart/form-data": S.SearchUpload, "image/*": BINARY, "application/octet-stream": BINARY}))
def search(name: str, q: S.SearchQuery):
    """Search by an uploaded image: a multipart form with an ``image`` file field (what browsers
    send), or the image as the whole request body with the options in the query string (no
    multipart parsing: about 1 ms less per query, for scripts)."""
    k, backbone, label, box, regions, verify, local = q.k, q.backbone, q.label, q.box, q.regions, q.verify, q.local
    if _raw_image_body():
        data = request.get_data(cache=False)
        filename = q.filename
        if not data:
            raise InvalidInput("the request body is empty: send the image file's bytes", field="image")
    elif request.mimetype != "multipart/form-data" or "image" not in request.files:
        raise InvalidInput(NO_IMAGE, field="image")
    else:
        form = validate(S.SearchUpload, form_data(S.SearchUpload) | {"image": request.files["image"]}, "form")
        data = form.image.read()
        filename = form.image.filename or None
        k, backbone, label = form.k or k, form.backbone or backbone, form.label or label
        box = form.box or box
        regions = form.regions if form.regions is not None else regions
        verify = form.verify if form.verify is not None else verify
        local = form.local if form.local is not None else local
    out = ops_search.by_upload(ctx(), name, data, filename, backbone=backbone, k=k, label=label, box=box,
                               regions=True if regions is None else regions,  # True: the default number
                               verify=False if verify is None else verify,
                               **({} if local is None else {"local": local}))  # by_upload's default
    out["results"] = hits_json(out["results"])
    return out


@bp.post("/collections/<name>/search/examples")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.ExamplesResult, description="The images most like the positive examples and least like the negative "
                                         "ones, best first.")
@bp.doc(summary="Search with several examples (more like these, less like those)", tags=["search"],
        security=WRITE_SECURITY,
        description="Positive examples (`like`) and negative ones (`unlike`): image ids of the collection as JSON, or "
                    "a multipart form that may also carry image files (`like_image`, `unlike_image`, repeatable). "
                    "Every example is taken in one space: `backbone`, else the collection's default. The results are "
                    "ranked by `score`: the cosine similarity to the positives' average, pushed down for an image "
                    "more like a negative example than like the positives (`penalty`); `threshold` (a score) and "
                    "`min_percentile` (the readable score) leave out weaker results. The examples themselves are "
                    "left out. How it is computed, and what it was measured to do: docs/search-examples.md.",
        responses=errors(400, 401, 403, 404, 409, 413, 429, 503,
                         e400="Bad input: an unknown id, an image of another collection or without a vector in the "
                              "space searched, no positive example, a file that is not an image (`field` names it).",
                         e409="The space searched holds imported vectors: uploaded examples cannot be embedded in it."),
        extensions=bodies(**{"application/json": S.ExamplesSearch, "multipart/form-data": S.ExamplesUpload}))
def search_examples(name: str, q):
    """JSON (ids only) or a multipart form (ids and files): parse, call the op, serialise."""
    if request.is_json:
        body = json_model(S.ExamplesSearch)
        options = body.model_dump(exclude={"like", "unlike"})
        like, unlike, like_files, unlike_files = body.like, body.unlike, [], []
    elif request.mimetype == "multipart/form-data":
        form = validate(S.ExamplesUpload, form_data(S.ExamplesUpload), "form")
        options = {key: value for key, value in form.model_dump(
            include={"k", "backbone", "label", "threshold", "min_percentile", "unlike_weight"}).items() if value is not None}
        like, unlike = form.like or [], form.unlike or []
        like_files = [ops_examples.Upload(f.read(), f.filename or None) for f in form.like_image or []]
        unlike_files = [ops_examples.Upload(f.read(), f.filename or None) for f in form.unlike_image or []]
    else:
        raise InvalidInput("send JSON {\"like\": [ids], \"unlike\": [ids], ...}, or a multipart form with like/unlike "
                           "ids and like_image/unlike_image files", field="like")
    out = ops_examples.search(ctx(), name, like=like, unlike=unlike, like_files=like_files, unlike_files=unlike_files,
                              **options)
    out["results"] = hits_json(out["results"])
    return out
