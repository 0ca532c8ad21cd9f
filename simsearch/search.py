"""Nearest-neighbour queries: by an image file or bytes, or by an image already in a collection.

Query vectors of ingested images come from the database (the source of truth), never from the
index; results are ranked by cosine similarity (inner product of L2-normalised vectors).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from simsearch import derived, limits, provenance
from simsearch.analysis import regions as R
from simsearch.analysis.near_duplicates import HASH_MAX, hash_distance
from simsearch.analysis.regions import REGIONS_DEFAULT as REGION_PROPOSALS  # docs/region-search.md
from simsearch.analysis.regions import check_regions, fuse_max, parse_box
from simsearch.errors import Conflict, InvalidInput, NotFound
from simsearch.images import THUMBNAIL_SIDE, decode_image, phash, resize_for_model
from simsearch.images.decode import is_large, release_memory
from simsearch.space_defaults import resolve_space
from simsearch.spaces import is_backbone_space
from simsearch.store import hot, repo

MAX_K = limits.SEARCH_K_MAX
# search_image_staged answers with the whole image's hits at once when its first hit is a close copy:
# cosine >= CLOSE_COPY_SCORE, CLOSE_COPY_GAP above the second, perceptual hashes (simsearch.images.phash)
# at most HASH_MAX bits apart (the near-duplicate finder's, simsearch.analysis.near_duplicates;
# docs/near-duplicates.md).
# Development set (benchmarks/in_context.py --seed 2026): copies 0.833-0.995 (58 of 60 pass the scores),
# wall photos <= 0.736, flowers <= 0.885 (gap <= 0.156: none pass); the hashes were added when a held-out
# seed-7 wall photo passed the scores (0.859: its background another photo of a stored landmark).
CLOSE_COPY_SCORE = 0.85
CLOSE_COPY_GAP = 0.10


@dataclass
class Hit:
    image_id: int
    score: float
    path: str
    label: str | None
    width: int | None
    height: int | None
    file_count: int = 1  # files with its bytes (``path`` is the first)

    def to_dict(self) -> dict:
        return {"image_id": self.image_id, "score": round(self.score, 6), "path": self.path, "label": self.label,
                "width": self.width, "height": self.height, "file_count": self.file_count}


def validate_k(k) -> int:
    return limits.check(limits.SearchK, k, "k")


def _hits(ctx, scores: np.ndarray, ids: np.ndarray, exclude: int | None, k: int) -> list[Hit]:
    pairs = [(int(i), float(sc)) for i, sc in zip(ids, scores) if i >= 0 and i != exclude][:k]
    rows = hot.hit_rows(ctx.db, [i for i, _ in pairs])
    return [Hit(i, sc, *rows[i]) for i, sc in pairs if i in rows]


def _allowed(ctx, collection_id: int, label: str | None) -> np.ndarray | None:
    if label is None:
        return None
    return np.asarray(hot.label_ids(ctx.db, collection_id, label), dtype=np.int64)


@dataclass
class _Target:
    """What a query needs besides its vector: the collection, the checked space, the open index
    and the label filter (``None``: no filter)."""
    collection_id: int
    space: str
    index: object
    allowed: np.ndarray | None


def _target(ctx, collection_id: int, space: str, label: str | None, **index_kw) -> _Target:
    return _Target(collection_id, space, ctx.index(collection_id, space, **index_kw),
                   _allowed(ctx, collection_id, label))


def _search(ctx, target: _Target, query: np.ndarray, k: int, exclude: int | None = None) -> list[Hit]:
    if target.allowed is not None and len(target.allowed) == 0:
        return []
    scores, ids = target.index.search(query, k + (1 if exclude is not None else 0), allowed_ids=target.allowed)
    return _hits(ctx, scores[0], ids[0], exclude, k)


def search_vector(ctx, collection_id: int, space: str, query: np.ndarray, k: int, *,
                  exclude: int | None = None, label: str | None = None) -> list[Hit]:
    k = validate_k(k)
    return _search(ctx, _target(ctx, collection_id, space, label), query, k, exclude)


def embed_bytes(ctx, space: str, data: bytes, source: str) -> tuple[np.ndarray, float]:
    """Decode and embed one image, whole (decoded exactly as at ingest); returns (vector, model seconds)."""
    q = embed_query(ctx, space, data, source, regions=0)
    return q.vectors[0], q.seconds


@dataclass
class QueryVectors:
    """A query image's vectors: the whole image (or the box asked for) first, then the object
    proposals found in it; ``margins``: what each one's cosines lose in the fusion; ``boxes``:
    each vector's region of the uploaded image (normalised; None: the whole image)."""
    vectors: np.ndarray
    margins: list[float]
    boxes: list[tuple[float, float, float, float] | None]
    seconds: float


def _draft_side(input_size: int, box) -> int:
    """The short side to decode a JPEG at: the model's input, or enough for the box's crop to fill
    the input (at most 4 times the input: a box of a quarter of the image or more)."""
    if box is None:
        return input_size
    return int(min(4 * input_size, np.ceil(input_size / max(min(box[2] - box[0], box[3] - box[1]), 0.25))))


def _decoded(ctx, emb, data: bytes, source: str, box, shared=None):
    """The uploaded image decoded as a search decodes it (a PIL image), cropped to ``box``;
    ``shared(draft side)``: the upload decoded so already, or None."""
    settings = ctx.settings
    side = _draft_side(emb.input_size, box)
    img = shared(side) if shared is not None else None
    if img is None:
        img = decode_image(data, source=source, max_pixels=settings.max_pixels, draft_size=side,
                           draft_long=THUMBNAIL_SIDE, max_decoded_pixels=min(settings.search_max_pixels, settings.max_pixels))
    im = img.image if isinstance(img.image, PILImage.Image) else PILImage.fromarray(img.image)
    if box is not None:
        im = im.crop(R.pixel_box(box, im.width, im.height))
    if is_large(img):
        del img
        release_memory()
    return im


def _proposals(im, regions: int) -> list:
    """Up to ``regions`` object proposals of ``im`` (normalised boxes, cropped inside)."""
    if not regions:
        return []

    def shrunk(side: int) -> PILImage.Image:
        f = side / max(im.width, im.height)
        return im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), PILImage.BILINEAR)

    gray = np.asarray(shrunk(R.PROPOSAL_GRID).convert("L"), np.float32)
    rgb = np.asarray(shrunk(R.CONTRAST_SIDE).convert("RGB"))
    return [R.inset(b) for b, _ in R.rectangle_proposals(gray, regions, rgb=rgb)]


def _outer(box, b):
    """A region of the box's crop -> a region of the uploaded image."""
    if box is None:
        return b
    bw, bh = box[2] - box[0], box[3] - box[1]
    return (box[0] + b[0] * bw, box[1] + b[1] * bh, box[0] + b[2] * bw, box[1] + b[3] * bh)


def embed_query(ctx, space: str, data: bytes, source: str, *, box=None, regions: int = REGION_PROPOSALS) -> QueryVectors:
    """Decode an uploaded image and embed what a search by it uses: the whole image, or the crop
    of ``box`` (normalised ``(x0, y0, x1, y1)``); with ``regions``, also up to
    :data:`REGION_PROPOSALS` object proposals inside it (rectangles on strong straight edges whose
    colours differ from their surroundings: :func:`simsearch.analysis.regions.rectangle_proposals`),
    all in one batch. Without a box and regions this is exactly :func:`embed_bytes`. ``regions``:
    how many proposals (0: none)."""
    emb = ctx.embedder(space)
    regions = R.check_regions(regions)
    im = _decoded(ctx, emb, data, source, box)
    found = _proposals(im, regions)
    t0 = time.perf_counter()
    vecs = emb.embed_regions(im, found)
    seconds = time.perf_counter() - t0
    return QueryVectors(vecs, [0.0] + [R.REGION_MARGIN] * len(found),
                        [box] + [_outer(box, b) for b in found], seconds)


def _search_fused(ctx, target: _Target, q: QueryVectors, k: int) -> list[Hit]:
    """Search with every vector of ``q`` and fuse (:func:`simsearch.analysis.regions.fuse_max`)."""
    if len(q.vectors) == 1:
        return _search(ctx, target, q.vectors[0], k)
    if target.allowed is not None and len(target.allowed) == 0:
        return []
    scores, ids = target.index.search(q.vectors, k, allowed_ids=target.allowed)
    fused_ids, fused, _ = fuse_max(list(zip(scores, ids)), q.margins, k)
    return _hits(ctx, fused, fused_ids, None, k)


def _scored(ctx, target: _Target, q: QueryVectors, ids: list[int]) -> list[Hit]:
    """The hits of these ids (those in the index and allowed), with their fused scores, best first."""
    allowed = np.unique(np.asarray(ids, np.int64))
    if target.allowed is not None:
        allowed = np.intersect1d(allowed, target.allowed)
    if len(allowed) == 0:
        return []
    scores, got = target.index.search(q.vectors, len(allowed), allowed_ids=allowed)
    fused_ids, fused, _ = fuse_max(list(zip(scores, got)), q.margins, len(allowed))
    return _hits(ctx, fused, fused_ids, None, len(allowed))


def _lookup(ctx, collection: str, space: str | None, label: str | None) -> _Target:
    """The target of a query by name. In the common case (the collection has vectors of the space
    asked for, else of the default one) that is one database round trip, which also reads the
    index generation that ``ctx.index`` would otherwise query itself."""
    wanted = space if space is not None else ctx.settings.default_backbone
    found = hot.search_target(ctx.db, collection, wanted)
    if found is None:
        with ctx.db.session() as s:
            coll = repo.get_collection(s, collection)  # raises NotFound, naming the known collections
        found = hot.SearchTarget(coll.id, False, None)  # created in between: the general path below
    if found.has_vectors and not (space is None and found.default_space not in (None, wanted)):
        return _target(ctx, found.collection_id, wanted, label, state_generation=found.index_generation)
    return _target(ctx, found.collection_id, resolve_space(ctx, found.collection_id, space), label)


def search_image(ctx, collection: str, data: bytes, source: str, *, space: str | None = None, k: int = 10,
                 label: str | None = None, box=None, regions: int = REGION_PROPOSALS,
                 also=None) -> tuple[str, list[Hit]]:
    """Embed an image file's bytes and search a collection with it. An unknown collection or
    space is reported before a bad image.

    ``box``: search by that region of the image only (normalised ``(x0, y0, x1, y1)``, or the
    text ``'x0,y0,x1,y1'``); ``regions``: also search by that many object proposals found in the
    image (or the box) and fuse the scores (the default, one: a photo of an artefact in its
    surroundings finds the artefact; a close copy keeps its rank); 0: the whole image only. In a
    derived space the query is the whole image, as before (a box there is refused). ``also``:
    image ids (candidates from elsewhere: local features) whose hits, with the scores the query
    gives them, follow the top ``k`` when they are not in it (in a derived space: ignored)."""
    k = validate_k(k)
    regions = check_regions(regions)
    if box is not None:
        box = parse_box(box)
    target = _lookup(ctx, collection, space, label)
    d = _derived(ctx, target)
    if d is None:
        provenance.check_query(ctx, target.collection_id, target.space)  # the stored vectors' model, or 409
        q = embed_query(ctx, target.space, data, source, box=box, regions=regions)
        hits = _search_fused(ctx, target, q, k)
        return target.space, hits + _scored(ctx, target, q, [i for i in (also or ()) if i not in {h.image_id for h in hits}])
    if box is not None:
        raise InvalidInput(f"search by a region works in a backbone's space; {target.space!r} is a derived space "
                           "(choose a backbone with the backbone parameter)", field="box")
    vec = query_vector(ctx, d, target, vector_of_upload(ctx, d, data, source)[0])
    return target.space, _search(ctx, target, vec, k)


def close_copy(scores, distance=None) -> bool:
    """Whether the first of ``scores`` (cosines, best first) is a close copy of the query: at least
    :data:`CLOSE_COPY_SCORE`, :data:`CLOSE_COPY_GAP` above the next (or alone), and ``distance()``
    (called only then: the bits between the perceptual hashes, None if unknown) <=
    :data:`simsearch.analysis.near_duplicates.HASH_MAX`."""
    s = [float(x) for x in scores[:2]]
    if not s or s[0] < CLOSE_COPY_SCORE or (len(s) > 1 and s[0] - s[1] < CLOSE_COPY_GAP):
        return False
    if distance is None:
        return True
    bits = distance()
    return bits is not None and bits <= HASH_MAX


def _hash_distance(ctx, im, image_id: int) -> int | None:
    """The bits between the perceptual hashes of the query's picture ``im`` and those stored for
    ``image_id`` (None: none stored)."""
    stored = phash.from_bytes(hot.stored_hashes(ctx.db, image_id, phash.METHOD))
    if stored is None:
        return None
    return int(hash_distance(phash.image_hashes(im.convert("RGB"))[None], stored[None])[0])


def search_image_staged(ctx, collection: str, data: bytes, source: str, verified, *, clear=None, decoded=None,
                        copy=None, space: str | None = None, k: int = 10, label: str | None = None, box=None,
                        regions: int = REGION_PROPOSALS) -> tuple[str, list[Hit]] | None:
    """:func:`search_image` with candidates found elsewhere (local features, verified): the whole
    image is embedded and searched first; then ``clear`` (a Future another thread answers) says
    whether the candidates are enough (a clear winner). When they are not, the search is fused with
    up to ``regions`` object proposals, else the proposals are skipped (the verified images will
    come first); the answer is awaited before the proposals are found (finding or embedding them
    meanwhile was measured and not kept: docs/region-search.md). Then ``verified()`` (it may
    block too): the verified image ids, best first. ``decoded``: called with the JPEG draft side the
    model's input needs, it may give the upload already decoded so (a DecodedImage; None: decode
    it here). ``copy``: called (no arguments) when the whole image's first hit is a :func:`close_copy`
    (the scores, and the perceptual hashes of the query and of the hit):
    then the whole image's hits are the answer, at once (``clear`` and ``verified`` are not waited
    for). Returns the space and the hits, followed by those of the verified images outside the
    top ``k`` (with the scores the query gives them); None in a derived space (the caller falls
    back to :func:`search_image`)."""
    k = validate_k(k)
    regions = check_regions(regions)
    if box is not None:
        box = parse_box(box)
    target = _lookup(ctx, collection, space, label)
    if _derived(ctx, target) is not None:
        return None
    provenance.check_query(ctx, target.collection_id, target.space)
    emb = ctx.embedder(target.space)
    im = _decoded(ctx, emb, data, source, box, shared=decoded)
    t0 = time.perf_counter()
    q = QueryVectors(emb.embed_regions(im, []), [0.0], [box], 0.0)
    q.seconds = time.perf_counter() - t0
    hits = _search_fused(ctx, target, q, max(k, 2))  # the second hit's score tells a close copy
    if copy is not None and close_copy([h.score for h in hits], lambda: _hash_distance(ctx, im, hits[0].image_id)):
        copy()
        return target.space, hits[:k]
    hits = hits[:k]
    enough = bool(clear.result()) if clear is not None else False
    found = [] if enough else _proposals(im, regions)
    if found:
        t0 = time.perf_counter()
        crops = [resize_for_model(im.crop(R.pixel_box(b, im.width, im.height)), emb.input_size) for b in found]
        vecs = np.vstack([q.vectors, emb.embed(np.stack(crops))])  # as embed_regions feeds them
        q = QueryVectors(vecs, [0.0] + [R.REGION_MARGIN] * len(found), [box] + [_outer(box, b) for b in found],
                         q.seconds + time.perf_counter() - t0)
        hits = _search_fused(ctx, target, q, k)
    ids = list(verified())
    have = {h.image_id for h in hits}
    return target.space, hits + _scored(ctx, target, q, [i for i in ids if i not in have])


def _derived(ctx, target: _Target):
    """The derived space searched (:mod:`simsearch.derived`), or None for a backbone's or
    imported vectors' space."""
    if is_backbone_space(target.space):
        return None
    return derived.get(ctx, target.collection_id, target.space)


def vector_of_upload(ctx, d: derived.Derived, data: bytes, source: str) -> tuple[np.ndarray, float]:
    """The query vector of an image file's bytes in a derived space: embedded with each base
    backbone, transformed; and the model seconds."""
    parts, seconds = [], 0.0
    for base in d.bases:
        if not is_backbone_space(base):
            raise Conflict(f"the derived space {d.name!r} is made from imported vectors ({base}): simsearch cannot "
                           "embed an image in it; search by an image's id instead", field="backbone")
        provenance.check_query(ctx, d.collection_id, base)
        vec, secs = embed_bytes(ctx, base, data, source)
        parts.append(vec[None])
        seconds += secs
    return d.transform(parts)[0], seconds


def query_vector(ctx, d, target: _Target, vec: np.ndarray) -> np.ndarray:
    """A derived space's query vector after its re-ranking (alpha-QE), the same for both paths."""
    return derived.expand_query(ctx, d, target.index, vec) if d.qe else vec


def similar_to(ctx, image_id: int, *, collection: str | None = None, space: str | None = None, k: int = 10,
               label: str | None = None) -> tuple[str, hot.SimilarSource, list[Hit]]:
    """The images most like an ingested one (itself excluded). The common case (the image has a
    vector of the space asked for, else of the default one) reads the image, its vector and the
    index generation in one round trip; anything else takes the general path, for its errors."""
    k = validate_k(k)
    wanted = space if space is not None else ctx.settings.default_backbone
    src = hot.similar_source(ctx.db, image_id, wanted)
    if (src is None or src.status != "ok" or src.vector is None
            or (collection is not None and src.collection != collection)
            or (space is None and src.default_space not in (None, wanted))):
        src, wanted = _similar_source_checked(ctx, image_id, collection, space)
    target = _target(ctx, src.collection_id, wanted, label, state_generation=src.index_generation)
    vec = repo.bytes_to_vector(src.vector)
    d = _derived(ctx, target)
    if d is not None:  # the transform of its base vectors, as for an upload (stored vectors may be DBA-augmented)
        base = derived.vector_of_image(ctx, d, image_id)
        vec = query_vector(ctx, d, target, vec if base is None else base)
    return wanted, src, _search(ctx, target, vec, k, exclude=image_id)


def _similar_source_checked(ctx, image_id: int, collection: str | None, space: str | None) -> tuple[hot.SimilarSource, str]:
    """The general path of :func:`similar_to`: each check with its own error."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id if collection else None
        img = repo.get_image(s, image_id, coll_id)
        if img.status != "ok":
            raise Conflict(f"image {image_id} failed to ingest ({img.error}); it has no vector", field="image_id")
    space = resolve_space(ctx, img.collection_id, space)
    src = hot.similar_source(ctx.db, image_id, space)
    if src is None or src.vector is None:
        raise NotFound(f"image {image_id} has no {space} vector", field="image_id")
    return src, space
