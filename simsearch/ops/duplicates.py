"""The duplicate finder: groups of a collection's images in three tiers (no Flask).

- **exact**: files with the same bytes, and the same pixels in files with other bytes (metadata
  rewritten or stripped, a lossless re-save). Ingest stores an image once per collection per
  content hash and keeps every file with its bytes as one of its files (``image_files``): an image
  with several files is a group of byte-identical files (read from ``images.file_count``, no
  vectors needed). A pair of images is exact when its vectors agree (cosine >=
  :data:`EXACT_MIN_COSINE`) and its stored thumbnails decode to identical pixels (a thumbnail's
  pixels are a deterministic function of the image's decoded pixels; its bytes are not quite:
  Pillow copies a JPEG comment into it).
- **near**: the same photo transformed (resized, re-compressed, slightly cropped, flipped):
  cosine >= :data:`NEAR_THRESHOLD`, calibrated on transformed copies.
- **similar**: other photos of similar content: cosine >= a threshold of the user's choosing
  (default :data:`SIMILAR_DEFAULT`, at least :data:`simsearch.limits.DUPLICATES_THRESHOLD_MIN`).

Each tier includes the pairs of the tiers above it. How: the collection's vectors of one space
(the default: the space the thresholds were calibrated in) are searched against the collection's
own FAISS index in blocks, each image's :data:`NEIGHBOURS` nearest (never an N x N matrix); the
pairs at or above the lowest accepted threshold are re-scored exactly, checked for identity, and
kept in the result cache (:mod:`simsearch.store.results`) while the vectors are unchanged. A
request then only groups the cached pairs (union-find, :mod:`simsearch.analysis.duplicates`) at
its tier's threshold and reads the images of the page it shows (every path of each).

Acting on groups (:func:`resolve`): preview, then apply "keep one, remove the rest" with a keep
rule; :func:`export`: every group with every path as CSV or JSON.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from datetime import timezone

import numpy as np
from sqlalchemy import select

from simsearch import limits
from simsearch.errors import Conflict, InvalidInput
from simsearch.ops import vectors as vecs
from simsearch.store import repo, results
from simsearch.store.models import Embedding, Image, ImageFile, IngestRun, Thumbnail
from simsearch.store.results import ResultKey

# ---- the thresholds: cosine similarity of L2-normalised efficientnet_lite0 vectors ----------------
# Calibrated by benchmarks/duplicates_calibration.py (its JSON and the README's "Duplicates" have every
# figure): 60 photos of ../shared/datasets (30 cats-dogs, 30 flowers) with 16 copies each, among all
# 700 photos, ingested with the real pipeline (fp32).
# NEAR_THRESHOLD: the benchmark's rule, the highest F1 of (original, near copy) pairs against
# (photo, its most similar other photo) pairs. At 0.855: 99% of moderate copies found (resize 50%,
# JPEG q30-90, 5% crops, flips: each 97-100%), 73% of harsh ones (25% size 78%, 10% crops 88%,
# combinations 85-90%, 25% size + q30 8%); 4.6% of the 700 photos have another photo at or above it
# (the top ones are real duplicates and bursts in the data sets: dog.74 = dog.180).
NEAR_THRESHOLD = 0.855
# SIMILAR_DEFAULT: a choice, described by measurement: at 0.80, 15% of the photos have a look-alike
# (another photo at or above it); 64% of those share their label.
SIMILAR_DEFAULT = 0.80
# Exact: vectors this close (identical pixels give identical vectors up to float rounding), then
# the thumbnails' pixels decide. Benchmark: 120 of 120 metadata-only copies found, no other pair.
EXACT_MIN_COSINE = 0.9999
# The figures the UI quotes (from the same run).
CALIBRATION = {"photos": 700, "copies": 960, "near_recall_moderate": 0.99, "near_recall_harsh": 0.73,
               "near_distinct_share": 0.046, "similar_distinct_share": 0.15, "similar_same_label": 0.64}

TIERS = ("exact", "near", "similar")
NEIGHBOURS = 16  # each image's nearest others searched for pairs
BLOCK = 1024  # query rows per index search
FLOOR = limits.DUPLICATES_THRESHOLD_MIN  # pairs below it are never kept
FORMAT = "v1"  # part of the cache key: bump when the stored pairs change shape
PAIRS_SHOWN = 50  # pairs listed per group (the strongest)

MEANING = {
    "exact": "Same pixels: files with identical bytes (one image, several paths), and files whose bytes differ but "
             "whose pixels do not (the metadata was rewritten or stripped, or the image was re-saved losslessly: "
             "the vectors and the thumbnails' pixels are identical). Keeping one loses nothing.",
    "near": "The same photo, transformed: resized, re-compressed as JPEG, cropped by a few percent, flipped. "
            "Cosine similarity at or above the threshold.",
    "similar": "Different photos that look alike (the same scene, a burst, the same kind of subject): cosine "
               "similarity at or above a threshold you choose. Not duplicates: look before deleting.",
}


def parse_tier(tier) -> str:
    if tier not in TIERS:
        raise InvalidInput(f"tier must be one of {', '.join(TIERS)}, not {tier!r}", field="tier")
    return tier


def tier_threshold(tier: str, threshold) -> float:
    """The threshold a tier groups at: the given one (near and similar; checked even for exact,
    which ignores it: identical pixels are identical at any threshold), else the tier's default."""
    parse_tier(tier)
    if threshold is not None:
        threshold = float(limits.check(limits.DuplicatesThreshold, threshold, "threshold"))
    if tier == "exact":
        return EXACT_MIN_COSINE
    if threshold is None:
        return NEAR_THRESHOLD if tier == "near" else SIMILAR_DEFAULT
    return threshold


def thresholds() -> dict:
    return {"exact_min_cosine": EXACT_MIN_COSINE, "near": NEAR_THRESHOLD, "similar_default": SIMILAR_DEFAULT,
            "minimum": FLOOR}


def calibration_text() -> dict:
    """The calibration's figures in words, for the near and similar thresholds."""
    c = CALIBRATION
    return {
        "near_text": (f"at {NEAR_THRESHOLD:g}, {c['near_recall_moderate']:.0%} of the copies resized to 50%, re-compressed "
                      f"at JPEG quality 30-90, cropped 5% a side or flipped were found, {c['near_recall_harsh']:.0%} of "
                      f"harsher ones (25% size, 10% crops, several changes at once), and {c['near_distinct_share']:.1%} of "
                      f"{c['photos']} distinct photos had another photo above it (the most alike of them were real "
                      f"duplicates and bursts)."),
        "similar_text": (f"At the default {SIMILAR_DEFAULT:g}, {c['similar_distinct_share']:.0%} of the benchmark's "
                         f"photos had a look-alike, and {c['similar_same_label']:.0%} of those shared their label "
                         f"(cat or dog, flower species)."),
    }


def describe(tier: str, threshold: float) -> str:
    """What a tier at a threshold means, in words (the UI and the CLI show it)."""
    if tier == "near" and threshold == NEAR_THRESHOLD:
        return MEANING["near"] + " Calibrated: " + calibration_text()["near_text"]
    return MEANING[tier]


# ---- the pairs (computed once per set of vectors, cached) --------------------------------------------


def _key(vs: vecs.VectorSet) -> ResultKey:
    return ResultKey(vs.collection_id, vs.space, "duplicates", f"k={NEIGHBOURS};floor={FLOOR};{FORMAT}", vs.fingerprint)


class PairSet:
    """The candidate pairs of a collection's vectors: image ids ``a < b``, cosine ``score`` and
    ``exact`` (identical pixels), with the set's ``info`` (images, seconds, index kind)."""

    def __init__(self, collection: str, space: str, info: dict, arrays: dict, cached: bool,
                 collection_id: int | None = None):
        self.collection, self.space, self.info, self.cached = collection, space, info, cached
        self.collection_id = collection_id
        self.a = np.asarray(arrays.get("a", np.zeros(0)), dtype=np.int64)
        self.b = np.asarray(arrays.get("b", np.zeros(0)), dtype=np.int64)
        self.score = np.asarray(arrays.get("score", np.zeros(0)), dtype=np.float32)
        self.exact = np.asarray(arrays.get("exact", np.zeros(0)), dtype=bool)


def lookup_pairs(ctx, collection: str, space: str | None) -> PairSet | None:
    """The cached pairs of the collection's current vectors, or None (cheap: never reads vectors)."""
    vs = vecs.peek(ctx, collection, space)
    hit = results.get(ctx.db, _key(vs))
    return None if hit is None else PairSet(collection, vs.space, hit.info, hit.arrays, True, vs.collection_id)


def pairs(ctx, collection: str, space: str | None, progress=None) -> PairSet:
    """The pairs of the collection's vectors: cached, or computed and stored (seconds to minutes)."""
    from simsearch.analysis.duplicates import candidate_pairs

    vs = vecs.peek(ctx, collection, space)
    hit = results.get(ctx.db, _key(vs))
    if hit is not None:
        return PairSet(collection, vs.space, hit.info, hit.arrays, True, vs.collection_id)
    say = progress or (lambda message, done, total: None)
    say("reading the vectors", 0, 3)
    vs = vecs.load(ctx, collection, vs.space)
    t0 = time.perf_counter()
    index = ctx.index(vs.collection_id, vs.space)

    def search(queries: np.ndarray, k: int):
        scores, ids = index.search(queries, k)
        at = np.minimum(np.searchsorted(vs.ids, ids), max(len(vs.ids) - 1, 0))
        rows = np.where((ids >= 0) & (vs.ids[at] == ids), at, -1) if len(vs.ids) else np.full(ids.shape, -1)
        return scores, rows

    def searched(done: int, total: int) -> None:
        say(f"searching each image's {NEIGHBOURS} nearest ({done} of {total})", 1, 3)

    i, j, s = candidate_pairs(vs.x, search, k=NEIGHBOURS, floor=FLOOR, block=BLOCK, progress=searched)
    a, b = vs.ids[i], vs.ids[j]
    vs.x = None  # (the vectors are not needed any more: free them before the thumbnails are read)
    say("checking identical images", 2, 3)
    exact = _identical(ctx, a, b, s)
    info = {"n_images": len(vs), "pairs": int(len(a)), "neighbours": NEIGHBOURS, "floor": FLOOR,
            "index_kind": getattr(index, "kind", None), "seconds": round(time.perf_counter() - t0, 3)}
    arrays = {"a": a, "b": b, "score": s.astype(np.float32), "exact": exact}
    results.put(ctx.db, _key(vs), info, arrays)
    say("done", 3, 3)
    return PairSet(collection, vs.space, info, arrays, False, vs.collection_id)


def _pixels_digest(thumbnail: bytes) -> str | None:
    """The digest of a stored thumbnail's decoded pixels (its bytes may also carry the source's JPEG
    comment, which Pillow writes along: not part of the picture)."""
    import io

    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(thumbnail)) as im:
            im.load()
            return hashlib.sha256(f"{im.mode}{im.size}".encode() + im.tobytes()).hexdigest()
    except Exception:  # an unreadable thumbnail: nothing to compare
        return None


def _identical(ctx, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Which pairs have identical pixels as far as the store can tell: vectors at least
    :data:`EXACT_MIN_COSINE` alike and thumbnails of identical pixels."""
    out = np.zeros(len(a), dtype=bool)
    close = np.flatnonzero(s >= np.float32(EXACT_MIN_COSINE))
    if not len(close):
        return out
    ids = sorted({int(x) for x in np.concatenate([a[close], b[close]])})
    digest: dict[int, str] = {}
    with ctx.db.session() as sess:
        for chunk in repo.in_chunks(ids):
            for image_id, data in sess.execute(select(Image.id, Thumbnail.data)
                                               .join(Thumbnail, Thumbnail.content_hash == Image.thumbnail_hash)
                                               .where(Image.id.in_(chunk))):
                digest[image_id] = _pixels_digest(data)
    for p in close:
        da, db_ = digest.get(int(a[p])), digest.get(int(b[p]))
        out[p] = da is not None and da == db_
    return out


# ---- groups (per request, from the cached pairs and the files) ---------------------------------


@dataclass
class DupGroup:
    """One group of a tier: its images (ids, ascending), its strongest pairs (image id a, image id b,
    similarity, identical pixels), and, once known, how many files its images have."""

    images: list[int]
    pairs: list[tuple[int, int, float, bool]]
    pairs_total: int
    max_similarity: float
    min_similarity: float
    files: int = 0
    identical_files: bool = False  # some image of it has byte-identical files (several paths)


def _groups(ps: PairSet, tier: str, threshold: float):
    from simsearch.analysis.duplicates import groups_from_pairs

    ids = np.unique(np.concatenate([ps.a, ps.b])) if len(ps.a) else np.zeros(0, np.int64)
    i, j = np.searchsorted(ids, ps.a), np.searchsorted(ids, ps.b)
    mask = ps.exact if tier == "exact" else None
    bar = np.float32(-1.0) if tier == "exact" else threshold
    return groups_from_pairs(len(ids), i, j, ps.score, bar, mask=mask), ids


def _pair_groups(ps: PairSet, tier: str, threshold: float) -> list[DupGroup]:
    """The groups of images joined by the tier's pairs (the near and similar tiers; the exact
    tier's identical pixels), largest first."""
    found, ids = _groups(ps, tier, threshold)
    out = []
    for g in found:
        pairs = [(int(ids[x]), int(ids[y]), float(sc), bool(ps.exact[p]))
                 for x, y, sc, p in zip(g.pair_i[:PAIRS_SHOWN], g.pair_j[:PAIRS_SHOWN], g.pair_scores[:PAIRS_SHOWN],
                                        g.pair_index[:PAIRS_SHOWN])]
        out.append(DupGroup([int(ids[m]) for m in g.members], pairs, int(len(g.pair_i)), g.max_score, g.min_score))
    return out


def _collection_id(ctx, ps: PairSet) -> int:
    if ps.collection_id is None:
        with ctx.db.session() as s:
            ps.collection_id = repo.get_collection(s, ps.collection).id
    return ps.collection_id


def _file_counts(ctx, collection_id: int, ids=()) -> dict[int, int]:
    """image id -> files, for the collection's images with byte-identical copies (several files:
    the partial index on ``file_count > 1`` answers) and for ``ids``."""
    with ctx.db.session() as s:
        out = dict(s.execute(select(Image.id, Image.file_count)
                             .where(Image.collection_id == collection_id, Image.file_count > 1)).all())
        for chunk in repo.in_chunks(sorted(set(ids) - set(out))):
            out.update(s.execute(select(Image.id, Image.file_count).where(Image.id.in_(chunk))).all())
    return out


def _exact_groups(ctx, ps: PairSet) -> list[DupGroup]:
    """The exact tier: images with identical pixels (confirmed pairs), and images with
    byte-identical files (one image, several paths; ingest stores their bytes once), most files
    first. An image with copies that has identical-pixel siblings is in their group."""
    pixel = _pair_groups(ps, "exact", EXACT_MIN_COSINE)
    grouped = {i for g in pixel for i in g.images}
    counts = _file_counts(ctx, _collection_id(ctx, ps), grouped)
    out = pixel + [DupGroup([i], [], 0, 1.0, 1.0) for i in sorted(counts) if counts[i] > 1 and i not in grouped]
    for g in out:
        g.files = sum(counts.get(i, 1) for i in g.images)
        g.identical_files = any(counts.get(i, 1) > 1 for i in g.images)
    out.sort(key=lambda g: (-g.files, -len(g.images), g.images[0]))
    return out


def tier_groups(ctx, ps: PairSet, tier: str, threshold: float) -> list[DupGroup]:
    """Every group of a tier (at ``threshold``, see :func:`tier_threshold`), in the order pages show them."""
    if tier == "exact":
        return _exact_groups(ctx, ps)
    return _pair_groups(ps, tier, threshold)


def tier_counts(ps: PairSet, ctx=None) -> dict:
    """Groups, grouped images (and for exact, with ``ctx``, files) of each tier at its default threshold."""
    out = {}
    for tier in TIERS:
        if tier == "exact" and ctx is not None:
            groups = _exact_groups(ctx, ps)
            out[tier] = {"groups": len(groups), "images": sum(len(g.images) for g in groups),
                         "files": sum(g.files for g in groups)}
            continue
        groups, _ = _groups(ps, tier, tier_threshold(tier, None))
        out[tier] = {"groups": len(groups), "images": int(sum(g.size for g in groups))}
    return out


def check_page(page: int, per_page: int | None) -> None:
    limits.check(limits.Page, page, "page")
    if per_page is not None:
        limits.check(limits.PerPage, per_page, "per_page")


def _image_rows(ctx, ids) -> dict[int, dict]:
    """image id -> its row and every file of it (the first path first), as stored."""
    rows: dict[int, dict] = {}
    wanted = sorted({int(i) for i in ids})
    with ctx.db.session() as s:
        for chunk in repo.in_chunks(wanted):
            for r in s.execute(select(Image.id, Image.source_path, Image.label, Image.width, Image.height,
                                      Image.thumbnail_hash, Image.file_count, Image.content_hash, IngestRun.source)
                               .outerjoin(IngestRun, IngestRun.id == Image.ingest_run_id).where(Image.id.in_(chunk))):
                rows[r.id] = {"id": r.id, "path": r.source_path, "label": r.label, "width": r.width, "height": r.height,
                              "has_thumbnail": r.thumbnail_hash is not None, "file_count": r.file_count,
                              "content_hash": r.content_hash, "source": r.source, "files": []}
        for chunk in repo.in_chunks(list(rows)):
            for f in s.execute(select(ImageFile.id, ImageFile.image_id, ImageFile.path, ImageFile.size, ImageFile.mtime,
                                      ImageFile.created_at, IngestRun.source)
                               .outerjoin(IngestRun, IngestRun.id == ImageFile.ingest_run_id)
                               .where(ImageFile.image_id.in_(chunk)).order_by(ImageFile.id)):
                rows[f.image_id]["files"].append({"id": f.id, "path": f.path, "size": f.size, "mtime": _aware(f.mtime),
                                                  "created_at": _aware(f.created_at), "source": f.source})
    for r in rows.values():
        if not r["files"]:  # (an image stored before its files were: its first path is its file)
            r["files"] = [{"id": 0, "path": r["path"], "size": None, "mtime": None, "created_at": None,
                           "source": r["source"]}]
        r["files"].sort(key=lambda f: f["path"] != r["path"])  # the first path first
    return rows


def _aware(value):
    """A stored time in UTC (SQLite returns it without its zone)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _iso(value) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _shown(path_view, path: str, source: str | None) -> str:
    return path if path_view is None else path_view(path, source)


def _public_image(row: dict, path_view) -> dict:
    """An image of a group as responses show it: its first path, every file, their sizes and times."""
    return {"id": row["id"], "path": _shown(path_view, row["path"], row["source"]), "label": row["label"],
            "width": row["width"], "height": row["height"], "has_thumbnail": row["has_thumbnail"],
            "file_count": len(row["files"]),
            "files": [{"path": _shown(path_view, f["path"], f["source"]), "size": f["size"], "mtime": _iso(f["mtime"])}
                      for f in row["files"]]}


def groups(ctx, ps: PairSet, *, tier: str = "near", threshold=None, page: int = 1,
           per_page: int | None = limits.PER_PAGE_DEFAULT, path_view=None) -> dict:
    """One page of a tier's groups, largest first: each with its images (id, first path, every
    file, label, size, thumbnail) and its strongest pairs. ``per_page`` None: every group on one
    page. ``path_view(path, ingest source)``: how paths are shown (the API hides server paths)."""
    tier = parse_tier(tier)
    t = tier_threshold(tier, threshold)
    check_page(page, per_page)
    found = tier_groups(ctx, ps, tier, t)
    per_page = per_page or max(1, len(found))
    shown = found[(page - 1) * per_page: page * per_page]
    rows = _image_rows(ctx, {i for g in shown for i in g.images})
    out_groups = []
    for n, g in enumerate(shown, start=(page - 1) * per_page + 1):
        members = [_public_image(rows[i], path_view) for i in g.images if i in rows]  # (deleted since: left out)
        pair_rows = [{"a": a, "b": b, "similarity": round(sc, 6), "identical": ident} for a, b, sc, ident in g.pairs]
        files = sum(m["file_count"] for m in members)
        out_groups.append({"group": n, "size": len(members), "files": files,
                           "identical_files": any(m["file_count"] > 1 for m in members),
                           "max_similarity": round(g.max_similarity, 6), "min_similarity": round(g.min_similarity, 6),
                           "images": members, "pairs": pair_rows, "pairs_total": g.pairs_total})
    total = len(found)
    return {"collection": ps.collection, "backbone": ps.space, "tier": tier,
            "threshold": None if tier == "exact" else round(t, 6),
            "meaning": describe(tier, t), "thresholds": thresholds(),
            "n_images": int(ps.info.get("n_images", 0)), "total_groups": total,
            "grouped_images": int(sum(len(g.images) for g in found)), "tiers": tier_counts(ps, ctx),
            "page": page, "per_page": per_page, "pages": max(1, math.ceil(total / per_page)),
            "groups": out_groups, "cached": ps.cached, "seconds": ps.info.get("seconds")}


def find(ctx, collection: str, space: str | None = None, *, tier: str = "near", threshold=None, page: int = 1,
         per_page: int | None = limits.PER_PAGE_DEFAULT, progress=None) -> dict:
    """Pairs (cached or computed now) and one page of a tier's groups: the CLI's and the benchmark's call."""
    tier = parse_tier(tier)
    tier_threshold(tier, threshold)  # bad input fails before the computation
    check_page(page, per_page)
    return groups(ctx, pairs(ctx, collection, space, progress), tier=tier, threshold=threshold, page=page,
                  per_page=per_page)


# ---- acting on groups: keep one, remove the rest (preview, then apply) -----------------------------

KEEP_RULES = ("most-pixels", "oldest", "pattern")
PATTERN_MAX = 1000


def check_keep(keep, pattern) -> tuple[str, str | None]:
    """A keep rule: ``most-pixels`` (the largest image), ``oldest`` (the file with the earliest
    modification time) or ``pattern`` (a file whose path matches the glob ``pattern``; a group
    where none does is left alone). Ties: the oldest file, then the first stored."""
    if keep not in KEEP_RULES:
        raise InvalidInput(f"keep must be one of {', '.join(KEEP_RULES)}, not {keep!r}", field="keep")
    if keep == "pattern":
        if not isinstance(pattern, str) or not pattern.strip():
            raise InvalidInput("keep 'pattern' needs a pattern: a glob the kept file's path matches, e.g. '*/originals/*'",
                               field="pattern")
        if len(pattern) > PATTERN_MAX:
            raise InvalidInput(f"pattern must be at most {PATTERN_MAX} characters", field="pattern")
    elif pattern is not None:
        raise InvalidInput(f"a pattern goes with keep 'pattern' (not {keep!r})", field="pattern")
    return keep, pattern


def _rank(keep: str, pattern: str | None, path_view):
    """The sort key of (image row, file): the first is kept."""
    from fnmatch import fnmatchcase

    def oldest(f: dict):
        when = f["mtime"] or f["created_at"]
        return (f["mtime"] is None, when.timestamp() if when is not None else math.inf, f["id"])

    def key(row: dict, f: dict):
        if keep == "most-pixels":
            return (-((row["width"] or 0) * (row["height"] or 0)), *oldest(f))
        if keep == "pattern":
            return (not fnmatchcase(_shown(path_view, f["path"], f["source"]), pattern), *oldest(f))
        return oldest(f)

    return key


def _plan_groups(ctx, ps: PairSet, tier: str, t: float, keep: str, pattern: str | None, chosen, path_view):
    found = tier_groups(ctx, ps, tier, t)
    if chosen:
        bad = [n for n in chosen if not 1 <= n <= len(found)]
        if bad:
            raise InvalidInput(f"no group {bad[0]}: the {tier} tier has {len(found)} group{'' if len(found) == 1 else 's'}",
                               field="groups")
        numbered = [(n, found[n - 1]) for n in sorted(set(chosen))]
    else:
        numbered = list(enumerate(found, start=1))
    rows = _image_rows(ctx, {i for _, g in numbered for i in g.images})
    rank = _rank(keep, pattern, path_view)
    out = []
    for n, g in numbered:
        members = [rows[i] for i in g.images if i in rows]
        files = [(row, f) for row in members for f in row["files"]]
        entry = {"group": n, "keep": None, "drop_files": [], "delete_images": [], "skipped": None}
        if len(files) < 2:
            entry["skipped"] = "nothing to remove (its other images were deleted)"
        elif keep == "pattern" and rank(*min(files, key=lambda rf: rank(*rf)))[0]:
            entry["skipped"] = "no path in the group matches the pattern"
        else:
            row, kept = min(files, key=lambda rf: rank(*rf))
            entry["keep"] = (row, kept)
            entry["drop_files"] = [(row, f) for f in row["files"] if f is not kept]
            entry["delete_images"] = [other for other in members if other["id"] != row["id"]]
        out.append(entry)
    return out


def _plan_json(entries, path_view) -> list[dict]:
    def shown(f):
        return _shown(path_view, f["path"], f["source"])

    return [{"group": e["group"], "skipped": e["skipped"],
             "keep": None if e["keep"] is None else {"image_id": e["keep"][0]["id"], "path": shown(e["keep"][1])},
             "drop_files": [{"image_id": row["id"], "path": shown(f)} for row, f in e["drop_files"]],
             "delete_images": [{"image_id": row["id"], "paths": [shown(f) for f in row["files"]]}
                               for row in e["delete_images"]]} for e in entries]


def _digest(entries) -> str:
    """Identifies what a plan does (the ids and stored paths it keeps and removes)."""
    parts = []
    for e in entries:
        if e["keep"] is None:
            continue
        parts.append([e["keep"][0]["id"], e["keep"][1]["path"], sorted((r["id"], f["path"]) for r, f in e["drop_files"]),
                      sorted(r["id"] for r in e["delete_images"])])
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def resolve(ctx, ps: PairSet, *, tier: str, threshold=None, keep: str = "oldest", pattern: str | None = None,
            groups=None, apply: bool = False, digest: str | None = None, delete_files: bool = False,
            path_view=None) -> dict:
    """Keep one file of each group of a tier (chosen by the ``keep`` rule) and remove the rest
    from the collection: the kept image's other files are dropped as records (the image stays),
    the group's other images are deleted (with their vectors; the indexes follow). ``groups``:
    group numbers (1 = the first of the tier's order) to act on, default every group.

    Without ``apply``: a preview (nothing changes). With it: the plan is made again from what is
    stored now and carried out; with ``digest`` (the preview's), a plan that changed since is
    refused (409). Files on disk are never touched unless ``delete_files`` (then a removed path
    is deleted only when the kept file is on disk, no image's files include the path any more,
    and its bytes are still the ones ingested)."""
    tier = parse_tier(tier)
    t = tier_threshold(tier, threshold)
    keep, pattern = check_keep(keep, pattern)
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(n, int) and not isinstance(n, bool)
                                                                       for n in groups)):
        raise InvalidInput("groups must be a list of group numbers", field="groups")
    if delete_files and not apply:
        raise InvalidInput("deleting files on disk needs apply", field="delete_files")
    entries = _plan_groups(ctx, ps, tier, t, keep, pattern, groups, path_view)
    plan_digest = _digest(entries)
    acted = [e for e in entries if e["keep"] is not None]
    out = {"collection": ps.collection, "backbone": ps.space, "tier": tier,
           "threshold": None if tier == "exact" else round(t, 6), "keep": keep, "pattern": pattern,
           "digest": plan_digest, "applied": False,
           "summary": {"groups": len(entries), "groups_acted": len(acted), "groups_skipped": len(entries) - len(acted),
                       "files_dropped": sum(len(e["drop_files"]) for e in acted),
                       "images_deleted": sum(len(e["delete_images"]) for e in acted),
                       "files_deleted_on_disk": 0},
           "groups": _plan_json(entries, path_view), "disk": []}
    if not apply:
        return out
    if digest is not None and digest != plan_digest:
        raise Conflict("the duplicate groups changed since the preview (images added, deleted or re-grouped): "
                       "preview again", field="digest", details={"digest": plan_digest})
    _apply(ctx, _collection_id(ctx, ps), acted)
    out["applied"] = True
    if delete_files:
        out["disk"] = _delete_on_disk(ctx, acted)
        out["summary"]["files_deleted_on_disk"] = sum(1 for d in out["disk"] if d["deleted"])
        for d in out["disk"]:
            d["path"] = _shown(path_view, d["path"], d.pop("source"))
    else:
        out["disk"] = []
    return out


def _apply(ctx, collection_id: int, acted: list[dict]) -> None:
    """Drop the extra file records and delete the other images, in one transaction."""
    from sqlalchemy import delete as sql_delete

    from simsearch.jobs import kept_originals
    from simsearch.store import upsert

    drop: dict[int, tuple[dict, list[str]]] = {}
    for e in acted:
        row, kept = e["keep"]
        if e["drop_files"]:
            drop[row["id"]] = (kept, [f["path"] for _, f in e["drop_files"]])
    doomed = sorted({r["id"] for e in acted for r in e["delete_images"]})
    hashes = sorted({r["content_hash"] for e in acted for r in e["delete_images"]})
    with ctx.db.session() as s:
        for image_id in sorted(drop):  # (image rows in id order, as every writer of them)
            kept, paths = drop[image_id]
            gone = 0
            for chunk in range(0, len(paths), repo.IN_CHUNK):
                gone += s.execute(sql_delete(ImageFile).where(ImageFile.image_id == image_id,
                                                              ImageFile.path.in_(paths[chunk:chunk + repo.IN_CHUNK]))
                                  ).rowcount or 0
            upsert.add_file_count(s, image_id, -gone)
            img = s.get(Image, image_id)
            if img is not None and img.source_path != kept["path"]:
                img.source_path = kept["path"]  # the kept file becomes the first
        spaces: set[str] = set()
        for chunk in repo.in_chunks(doomed):
            spaces.update(s.scalars(select(Embedding.space).where(Embedding.image_id.in_(chunk)).distinct()))
            s.execute(sql_delete(Image).where(Image.collection_id == collection_id, Image.id.in_(chunk)))
    if doomed:
        ctx.indexes.images_deleted(collection_id, sorted(spaces))
        kept_originals.forget(ctx, hashes)


def _delete_on_disk(ctx, acted: list[dict]) -> list[dict]:
    """Delete the removed files from disk where that is safe; one entry per removed path."""
    import os
    from pathlib import Path

    from simsearch.images import content_hash

    removed: list[tuple[dict, dict, dict]] = []  # (kept file, the removed file's image row, the removed file)
    for e in acted:
        row, kept = e["keep"]
        removed += [(kept, row, f) for _, f in e["drop_files"]]
        removed += [(kept, other, f) for other in e["delete_images"] for f in other["files"]]
    with ctx.db.session() as s:
        still = set()
        for start in range(0, len(removed), repo.IN_CHUNK):
            paths = sorted({f["path"] for _, _, f in removed[start:start + repo.IN_CHUNK]})
            still.update(s.scalars(select(ImageFile.path).where(ImageFile.path.in_(paths))))
    out = []
    for kept, row, f in removed:
        path, why = Path(f["path"]), None
        if not path.is_absolute():
            why = "not a path on this machine"
        elif f["path"] in still:
            why = "another image's file (still in a collection)"
        elif not Path(kept["path"]).is_file():
            why = "the kept file is not on disk"
        elif not path.is_file():
            why = "not on disk"
        else:
            try:
                if content_hash(path.read_bytes()) != row["content_hash"]:
                    why = "its bytes changed since it was ingested"
            except OSError as exc:
                why = f"cannot read it ({exc.strerror or exc})"
        if why is None:
            try:
                os.remove(path)
            except OSError as exc:
                why = f"cannot delete it ({exc.strerror or exc})"
        out.append({"path": f["path"], "source": f["source"], "deleted": why is None, "reason": why})
    return out


# ---- export: every group with every path ---------------------------------------------------------

EXPORT_FORMATS = ("csv", "json")
CSV_COLUMNS = ("group", "group_images", "group_files", "image_id", "path", "first_path", "file_count", "size", "mtime",
               "width", "height", "label", "max_similarity")


def export(ctx, ps: PairSet, *, tier: str, threshold=None, fmt: str = "csv", path_view=None) -> str:
    """Every group of a tier with every path, as CSV (one row per file) or JSON (the listing's
    shape, every group on one page)."""
    import csv
    import io
    import json

    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"format must be csv or json, not {fmt!r}", field="format")
    result = groups(ctx, ps, tier=tier, threshold=threshold, page=1, per_page=None, path_view=path_view)
    if fmt == "json":
        for g in result["groups"]:
            for img in g["images"]:
                img.pop("has_thumbnail", None)
        return json.dumps(result, ensure_ascii=False, indent=1) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for g in result["groups"]:
        for img in g["images"]:
            for k, f in enumerate(img["files"]):
                w.writerow([g["group"], g["size"], g["files"], img["id"], f["path"], "yes" if k == 0 else "no",
                            img["file_count"], "" if f["size"] is None else f["size"], f["mtime"] or "",
                            img["width"] or "", img["height"] or "", img["label"] or "", g["max_similarity"]])
    return buf.getvalue()
