"""Similarity search as the API, UI and CLI offer it: by an image's bytes, or by an ingested image."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from simsearch import spaces
from simsearch.ops import calibration
from simsearch.ops.backbones import check_space
from simsearch.ops import verify as V
from simsearch.space_defaults import resolve_space
from simsearch.store import repo
from simsearch.analysis.regions import check_regions, parse_box
from simsearch.search import search_image, search_image_staged, similar_to, validate_k

# The default search with local candidates runs in stages (:func:`_staged`); False: as one pass
# (the query's SIFT, then the fused search, then verification), for comparison.
STAGED = True


def by_upload(ctx, collection: str, data: bytes, filename: str | None, *, backbone: str | None = None, k: int = 10,
              label: str | None = None, box=None, regions: int | bool = True, verify=False, local=None) -> dict:
    """Embed an image file's bytes and search ``collection`` with it. ``results``: hit dicts.
    ``box``: a region of the image (``'x0,y0,x1,y1'``, fractions); ``regions``: how many objects
    found in it to search by too (True: the default number, False or 0: none; see
    :func:`simsearch.search.search_image`); ``verify``: re-rank the top results by geometric
    verification (:mod:`simsearch.ops.verify`); ``local``: also take candidates by the query's
    local features (the collection's descriptor index) and verify them (None: where images' local
    features are stored, :func:`simsearch.ops.verify.local_default`; without them the index is empty)."""
    if backbone is not None:
        spaces.check(backbone, imported=True)  # 400 for a name that is no space (a backbone without vectors is a 404)
        _imported_here(ctx, collection, backbone)
    regions = check_regions(regions)  # a 400 naming the field before anything is looked up
    verify = V.check_verify(verify)
    local = None if local is None else V.check_verify(local, "local")
    if box is not None:
        box = parse_box(box)
    t0 = time.perf_counter()
    k = validate_k(k)
    wide = max(k, V.CANDIDATES) if verify else k  # the candidates to verify
    source = filename or "uploaded image"
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
    if local is None:
        local = V.local_default(ctx, coll_id)
    staged = _staged(ctx, coll_id, collection, data, source, backbone=backbone, k=k, label=label, box=box,
                     regions=regions) if local and not verify and STAGED else None
    if staged is not None:
        space, hits = staged
    else:
        query = V.query_features(ctx, data, source, box) if verify or local else None
        also = V.local_candidates(ctx, coll_id, query) if local else []
        space, hits = search_image(ctx, collection, data, source, space=backbone, k=wide, label=label, box=box,
                                   regions=regions, also=also)
        if verify or local:
            hits = V.verified_hits(ctx, query, hits[:wide], k, fused=verify, local=also, extra=hits[wide:])
    return {"query": {"filename": filename, "bytes": len(data)}, "collection": collection, "backbone": space, "k": k,
            "results": calibration.annotate(ctx, coll_id, space, [h.to_dict() for h in hits]),
            "seconds": round(time.perf_counter() - t0, 4)}


def _staged(ctx, coll_id: int, collection: str, data: bytes, source: str, **kw):
    """The default search with local candidates (``local=true, verify=false``), in stages: the local
    path (the query's SIFT, the descriptor index, the candidates' verification:
    :func:`simsearch.ops.verify.local_verified`) runs on a helper thread while the whole image is
    embedded and searched; the verified candidates come first (by inliers). When the first by votes
    is a clear winner (:func:`simsearch.ops.verify.clear_winner`) the object proposal's forward is
    skipped (or, when the answer comes after the whole image's search, its result unused), else the
    search is fused with the proposal as without local candidates
    (:func:`simsearch.search.search_image_staged`); a closer look
    (:func:`simsearch.ops.verify.closer_look`) runs after that answer, beside the proposal's
    forward. The helper's decode of the upload is the model's input too where they decode alike.
    When the whole image's first hit is a close copy (:func:`simsearch.search.close_copy`) its hits
    are the answer at once and the helper is told to stop at its next stage. None in a derived space."""
    clear, shared, stop = Future(), Future(), threading.Event()
    pending = V.run_beside(_local_path, ctx, coll_id, data, source, kw.get("box"), clear, shared, stop)

    def decoded(side: int):  # the helper's decode of the upload, when the model's input takes the same
        return shared.result() if kw.get("box") is None and side == V.DECODE_SIDE else None

    try:
        found = search_image_staged(ctx, collection, data, source, lambda: list(pending.result()[0]),
                                    clear=clear, decoded=decoded, copy=stop.set, space=kw["backbone"], k=kw["k"],
                                    label=kw["label"], box=kw["box"], regions=kw["regions"])
    except BaseException:
        stop.set()
        pending.cancel()
        raise
    if found is None:
        stop.set()
        return None
    space, hits = found
    if stop.is_set():  # a close copy: the whole image's hits, the local path abandoned
        return space, hits
    inliers = pending.result()[0]
    good = sorted((h for h in hits if h.image_id in inliers), key=lambda h: -inliers[h.image_id])
    return space, (good + [h for h in hits[:kw["k"]] if h.image_id not in inliers])[:kw["k"]]


def _local_path(ctx, coll_id: int, data: bytes, source: str, box, clear: Future, shared: Future,
                stop: threading.Event | None = None):
    """:func:`simsearch.ops.verify.local_verified` on a helper thread, answering ``clear`` (whether the
    first by votes is a clear winner) and ``shared`` (the decoded upload) as soon as it knows them;
    an error answers both (the search waiting on them raises it). ``stop``: set when the search no
    longer needs the answer (the helper stops at its next stage)."""
    try:
        return V.local_verified(ctx, coll_id, data, source, box, decoded=shared.set_result, on_clear=clear.set_result,
                                stop=stop)
    except BaseException as exc:
        for f in (shared, clear):
            if not f.done():
                f.set_exception(exc)
        raise


def _imported_here(ctx, collection: str, space: str) -> None:
    """Searching by an image in a space that is no backbone's: the collection's imported vectors
    (then :func:`simsearch.search.search_image` explains the 409), else an unknown backbone (400)."""
    if spaces.is_backbone_space(space):
        return
    with ctx.db.session() as s:
        have = repo.spaces_of(s, repo.get_collection(s, collection).id)
    if space not in have:
        spaces.parse(space)  # raises: unknown backbone, naming the choices


def by_image(ctx, image_id: int, *, collection: str | None = None, backbone: str | None = None, k: int = 10,
             label: str | None = None) -> dict:
    """The images most similar to an ingested one (itself excluded)."""
    if backbone is not None:
        spaces.check(backbone, imported=True)
    t0 = time.perf_counter()
    space, img, hits = similar_to(ctx, image_id, collection=collection, space=backbone, k=k, label=label)
    return {"query": {"image_id": img.image_id, "path": img.path, "label": img.label}, "backbone": space, "k": k,
            "results": calibration.annotate(ctx, img.collection_id, space, [h.to_dict() for h in hits]),
            "seconds": round(time.perf_counter() - t0, 4)}


def collection_space(ctx, name: str, backbone: str | None) -> tuple[int, str]:
    """The collection's id and the space to work in: ``backbone`` (checked: 400 for a name that
    is no backbone nor a valid name of imported vectors, before 404 for one without vectors), or
    the collection's default."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, name).id
    if backbone is not None:
        spaces.check(backbone, imported=True)
    return coll_id, resolve_space(ctx, coll_id, backbone)
