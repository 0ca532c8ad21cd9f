"""``/api/collections/<name>/duplicates``: groups of exact, near and similar images; their export;
keeping one of each group (``POST .../duplicates/resolve``).

Like the analysis endpoints (:mod:`.analysis`), the pair search never runs inside the request:
200 with a page of groups when the collection's pairs are cached for its current vectors, else
202 with the background job finding them. Tiers, thresholds and pages are applied per request
to the cached pairs (cheap), so moving the similarity slider never starts a job. Resolving acts
on the groups as they are listed now (409 when the pairs are not computed for the current
vectors: list the groups first). Paths are shown as everywhere in the API; files on disk are
never touched through the API.
"""

from __future__ import annotations

from flask import Response

from simsearch.errors import Conflict
from simsearch.ops import duplicate_actions as actions
from simsearch.ops import duplicates as dup
from simsearch.ops.analysis_tasks import AnalysisTask
from simsearch.ops.search import collection_space
from simsearch.web import schemas as S
from simsearch.web.api.blueprint import bp
from simsearch.web.api.analysis import ACCEPTED, answer
from simsearch.web.api.common import ctx, image_json
from simsearch.web.contract import WRITE_SECURITY, errors
from simsearch.web.paths import shown_path

# The export's two formats, for the API docs: one group of two images (three files), as the export writes it.
DUPLICATES_CSV = (",".join(actions.CSV_COLUMNS) + "\n"
                  "1,2,3,17,cats/cat.17.jpg,yes,2,48213,2026-03-02T10:14:07,500,375,cats,0.9931\n"
                  "1,2,3,17,backup/cat.17.jpg,no,2,48213,2026-03-02T10:14:07,500,375,cats,0.9931\n"
                  "1,2,3,54,cats/cat.17-small.jpg,yes,1,9120,2026-03-05T08:01:44,250,188,cats,0.9931\n")
DUPLICATES_JSON = {"collection": "pets", "backbone": "efficientnet_lite0", "tier": "near", "threshold": 0.96,
                   "total_groups": 1, "groups": [{"group": 1, "size": 2, "files": 3, "max_similarity": 0.9931, "images": [
                       {"id": 17, "label": "cats", "width": 500, "height": 375, "file_count": 2,
                        "files": [{"path": "cats/cat.17.jpg", "size": 48213, "mtime": "2026-03-02T10:14:07"},
                                  {"path": "backup/cat.17.jpg", "size": 48213, "mtime": "2026-03-02T10:14:07"}]},
                       {"id": 54, "label": "cats", "width": 250, "height": 188, "file_count": 1,
                        "files": [{"path": "cats/cat.17-small.jpg", "size": 9120, "mtime": "2026-03-05T08:01:44"}]}]}]}

DESCRIPTION = (
    "Three tiers, each including the ones above it. **exact**: identical bytes (files of one image: ingest stores "
    "their bytes once and keeps every path) and identical pixels in files with other bytes (metadata rewritten or "
    "stripped). **near**: the same photo "
    f"resized, re-compressed, cropped by a few percent or flipped: cosine similarity >= {dup.NEAR_THRESHOLD} "
    "(calibrated by benchmarks/duplicates_calibration.py), or `threshold`. **similar**: look-alikes at or above "
    f"`threshold` (default {dup.SIMILAR_DEFAULT}). Groups are connected components of the pairs at or above the "
    "threshold (A~B and B~C group A, B, C), largest first; each image lists every file with its bytes. The pairs are "
    "computed once per set of vectors: 200 when they are cached, else 202 with the background job finding them: "
    "poll status_url until done, then ask again.")


def _path_view(path: str, source: str | None) -> str:
    return shown_path(path, source)


@bp.get("/collections/<name>/duplicates")
@bp.input(S.DuplicatesQuery, location="query", arg_name="q")
@bp.output(S.Duplicates, description="One page of the tier's groups.")
@bp.doc(summary="Duplicate groups", tags=["analysis"], description=DESCRIPTION,
        responses={**ACCEPTED, **errors(400, 404, 409)})
def duplicates(name: str, q: S.DuplicatesQuery):
    _, space = collection_space(ctx(), name, q.backbone)

    def shape(pairs: dup.PairSet) -> dict:
        page = dup.groups(ctx(), pairs, tier=q.tier, threshold=q.threshold, page=q.page, per_page=q.per_page,
                          path_view=_path_view)
        return page.with_images(S.Duplicates, image_json).to_dict()

    return answer(AnalysisTask("duplicates", name, {"backbone": space}), shape)


@bp.get("/collections/<name>/duplicates/export")
@bp.input(S.DuplicatesExportQuery, location="query", arg_name="q")
@bp.doc(summary="Export duplicate groups", tags=["analysis"],
        description="Every group of a tier with every path, as a download: CSV (a row per file) or JSON (the "
                    "listing's shape, every group on one page). 202 while the pairs are being computed, as for the "
                    "listing.",
        responses={200: {"description": "The groups as a file (Content-Disposition: attachment).",
                         "content": {"text/csv": {"schema": {"type": "string"}, "example": DUPLICATES_CSV},
                                     "application/json": {"schema": {"type": "object"}, "example": DUPLICATES_JSON}}},
                   **ACCEPTED, **errors(400, 404, 409)})
def duplicates_export(name: str, q: S.DuplicatesExportQuery):
    _, space = collection_space(ctx(), name, q.backbone)

    def shape(pairs: dup.PairSet) -> Response:
        text = actions.export(ctx(), pairs, tier=q.tier, threshold=q.threshold, fmt=q.format, path_view=_path_view)
        resp = Response(text, mimetype="text/csv" if q.format == "csv" else "application/json")
        resp.headers["Content-Disposition"] = f'attachment; filename="{name}-duplicates-{q.tier}.{q.format}"'
        return resp

    return answer(AnalysisTask("duplicates", name, {"backbone": space}), shape)


@bp.post("/collections/<name>/duplicates/resolve")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.DuplicatesResolve, location="json", arg_name="body")
@bp.output(S.DuplicatesPlan, description="The plan (without digest: nothing changed), or what was done.")
@bp.doc(summary="Keep one of each duplicate group", tags=["analysis"], security=WRITE_SECURITY,
        description="Keep one file of each group (the `keep` rule, among the files matching `pattern` when given) and "
                    "remove the rest from the collection: other files of the kept image are dropped as records (the "
                    "image stays), the group's other images are deleted with their vectors (the indexes follow). "
                    "Without `digest`: a preview, nothing changes. With the preview's `digest`: the plan is carried "
                    "out, only if it is unchanged (409 otherwise). Acts on "
                    "the groups as listed now: 409 when they are not computed for the current images (GET "
                    ".../duplicates first). Files on disk are never touched (the CLI's --delete-files does that).",
        responses=errors(400, 401, 403, 404, 409))
def duplicates_resolve(name: str, q, body: S.DuplicatesResolve):
    _, space = collection_space(ctx(), name, body.backbone)
    pairs = dup.lookup_pairs(ctx(), name, space)
    if pairs is None:
        raise Conflict("the duplicates of the collection's current images are not computed: list them first "
                       f"(GET /api/collections/{name}/duplicates), then ask again", field="collection")
    return actions.resolve(ctx(), pairs, tier=body.tier, threshold=body.threshold, keep=body.keep, pattern=body.pattern,
                       groups=body.groups, apply=body.digest is not None, digest=body.digest, path_view=_path_view)
