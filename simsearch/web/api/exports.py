"""``/api/collections/<name>/selection``: export a selection of images (CSV, JSON, COCO);
``/api/collections/<name>/clusters/suggestions``: names for a cluster from the backbone's ImageNet
classifier."""

from __future__ import annotations

from flask import Response

from simsearch.ops import cluster_suggestions, exports
from simsearch.web import schemas as S
from simsearch.web.api.blueprint import bp
from simsearch.web.api.common import ctx
from simsearch.web.contract import WRITE_SECURITY, errors
from simsearch.web.paths import shown_path

CSV_EXAMPLE = "id,path,label,first,group,width,height,size,mtime\n12,cats/cat.1.jpg,cats,yes,,500,375,31337,2026-12-01T09:30:00Z\n"
COCO_EXAMPLE = {"info": {"description": "simsearch export of 1 images of collection pets (selection)", "version": "0.1.0",
                         "date_created": "2026-12-06T19:00:00Z"}, "licenses": [],
                "images": [{"id": 12, "file_name": "cats/cat.1.jpg", "width": 500, "height": 375,
                            "simsearch_paths": ["cats/cat.1.jpg"], "simsearch_group": None}],
                "categories": [{"id": 1, "name": "cats", "supercategory": "label"}],
                "annotations": [{"id": 1, "image_id": 12, "category_id": 1, "bbox": [0, 0, 500, 375], "area": 187500,
                                 "iscrowd": 0}]}


@bp.post("/collections/<name>/selection")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.input(S.SelectionExport, location="json", arg_name="body",
          example={"image_ids": [12, 7, 31], "format": "coco"})
@bp.doc(summary="Export a selection of images", tags=["images"], security=WRITE_SECURITY,
        description="The given images (a lasso on the map, a result list: `image_ids`, in order), images in numbered "
                    "groups (duplicate groups: `groups`) or one cluster's (`cluster`), each with every path, its label and its group, as a download: CSV, "
                    "JSON or a COCO labels file (docs/exports.md). Paths are shown as elsewhere in the API. A POST (the "
                    "list can be long), so it takes the API key like other POSTs when keys are set.",
        responses={200: {"description": "The selection as a file (Content-Disposition: attachment).",
                         "content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE},
                                     "application/json": {"schema": {"oneOf": [
                                         {"type": "array", "items": {"type": "object"}, "description": "format=json"},
                                         {"type": "object", "description": "format=coco"}]},
                                         "example": COCO_EXAMPLE}}},
                   **errors(400, 401, 403, 404, 409)})
def export_selection(name: str, q, body: S.SelectionExport):
    cluster = body.cluster.model_dump() if body.cluster is not None else None
    groups = [g.model_dump() for g in body.groups] if body.groups is not None else None
    out = exports.export(ctx(), name, image_ids=body.image_ids, groups=groups, cluster=cluster, fmt=body.format,
                         path_view=shown_path)
    resp = Response(out.text, mimetype=out.mime)
    resp.headers["Content-Disposition"] = f'attachment; filename="{out.filename}"'
    return resp


@bp.get("/collections/<name>/clusters/suggestions")
@bp.input(S.ClusterSuggestionsQuery, location="query", arg_name="q")
@bp.output(S.ClusterSuggestions, description="Names for the cluster, most images first (none, with a note, for a "
                                               "backbone without an ImageNet classifier).")
@bp.doc(summary="Suggested cluster names", tags=["analysis"],
        description="The ImageNet classes the backbone's own classifier gives most of the cluster's images (each image "
                    "votes for its top class), for the clusters as last computed by GET .../clusters with the same "
                    "backbone and k (409 when there are none for the current images, or `version` is not theirs). "
                    "Accept one with POST .../clusters/name.",
        responses=errors(400, 404, 409, 503))
def cluster_name_suggestions(name: str, q: S.ClusterSuggestionsQuery):
    return cluster_suggestions.suggest(ctx(), name, q.backbone, q.k, q.cluster, version=q.version)
