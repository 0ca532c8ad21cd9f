"""``GET /api/collections/<name>/duplicates``: groups of exact, near and similar images.

Like the analysis endpoints (:mod:`.analysis`), the pair search never runs inside the request:
200 with a page of groups when the collection's pairs are cached for its current vectors, else
202 with the background job finding them. Tiers, thresholds and pages are applied per request
to the cached pairs (cheap), so moving the similarity slider never starts a job.
"""

from __future__ import annotations

from simsearch.ops import duplicates as dup
from simsearch.ops.analysis_tasks import AnalysisTask
from simsearch.ops.search import collection_space
from simsearch.web import schemas as S
from simsearch.web.api import bp
from simsearch.web.api.analysis import ACCEPTED, answer
from simsearch.web.api.common import ctx, image_json, public_paths
from simsearch.web.contract import errors

DESCRIPTION = (
    "Three tiers, each including the ones above it. **exact**: identical pixels in files with other bytes "
    "(metadata rewritten or stripped; identical files are stored once at ingest). **near**: the same photo "
    f"resized, re-compressed, cropped by a few percent or flipped: cosine similarity >= {dup.NEAR_THRESHOLD} "
    "(calibrated by benchmarks/duplicates_calibration.py), or `threshold`. **similar**: look-alikes at or above "
    f"`threshold` (default {dup.SIMILAR_DEFAULT}). Groups are connected components of the pairs at or above the "
    "threshold (A~B and B~C group A, B, C), largest first. The pairs are computed once per set of vectors: 200 "
    "when they are cached, else 202 with the background job finding them: poll status_url until done, then ask again.")


@bp.get("/collections/<name>/duplicates")
@bp.input(S.DuplicatesQuery, location="query", arg_name="q")
@bp.output(S.Duplicates, description="One page of the tier's groups.")
@bp.doc(summary="Duplicate groups", tags=["analysis"], description=DESCRIPTION,
        responses={**ACCEPTED, **errors(400, 404, 409)})
def duplicates(name: str, q: S.DuplicatesQuery):
    _, space = collection_space(ctx(), name, q.backbone)

    def shape(pairs: dup.PairSet) -> dict:
        out = dup.groups(ctx(), pairs, tier=q.tier, threshold=q.threshold, page=q.page, per_page=q.per_page)
        for g in out["groups"]:
            g["images"] = [image_json(r) for r in public_paths(g["images"])]
        return out

    return answer(AnalysisTask("duplicates", name, {"backbone": space}), shape)
