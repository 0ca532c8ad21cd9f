"""Request parameters and bodies. Every query model forbids unknown parameters (400 naming them);
the limits are :mod:`simsearch.limits`'s, shared with the CLI."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from apiflask.fields import UploadFile
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from simsearch import limits as L
from simsearch.analysis.regions import REGIONS_DEFAULT, REGIONS_MAX
from simsearch.ops import image_filters as F
from simsearch.ops.atlas import TILE_PATTERN
from simsearch.ops.sampling import CAP as SAMPLE_CAP

__all__ = ["Query", "NoQuery", "ImagesQuery", "SimilarQuery", "SearchQuery", "ClustersQuery", "AnalysisQuery",
           "ComparisonQuery", "JobsQuery", "NewCollection", "CollectionRename", "ImagePatch", "Labels", "ClusterName",
           "ClusterLabel", "ServerPathIngest", "UploadIngest", "SearchUpload", "PATH_PARAMETERS", "AtlasQuery",
           "ImageIds", "EmbedBackbone", "CollectionDeleteQuery"]

Blank = L.AllowBlank()  # in query strings and forms, `x=` means x is not given
SpaceParam = Annotated[L.Space | None, Blank]  # a backbone's space or imported vectors'
LabelFilter = Annotated[Annotated[str, Field(max_length=L.LABEL_MAX, pattern=L.NO_NUL, examples=["cats"])] | None, Blank]
ServerPath = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[^\x00]*\S[^\x00]*$",
                                  description="A folder inside the administrator's allowed root (absolute, or relative to it).",
                                  examples=["photos/2026"])]
LabelsOption = Literal["folders", "none"]
CsrfToken = Annotated[Annotated[str, Field(max_length=200)] | None, Blank]
META_FILTERS = {
    "type": "object", "patternProperties": {L.META_KEY_PATTERN: {"type": "string", "maxLength": 1000, "pattern": L.NO_NUL}},
    "additionalProperties": False, "x-style": "deepObject",
    "description": "Metadata filters as `meta[<key>]=<value>` or `meta.<key>=<value>` (e.g. `meta.photographer=Ann`); "
                   "all must match."}
COMMA_SEPARATED = {"x-style": "form", "x-explode": False}
BoxParam = Annotated[Annotated[str, Field(max_length=200, pattern=L.NO_NUL, examples=["0.25,0.1,0.75,0.6"],
                                          description="Search by this region of the query image only: `x0,y0,x1,y1`, "
                                                      "fractions of its width and height (0 = left/top, 1 = right/bottom).")]
                     | None, Blank]
RegionsParam = Annotated[Annotated[int, Field(ge=0, le=REGIONS_MAX), L.Whole] | None, Blank,
                         Field(description=f"How many objects found in the query image (framed pictures, pages, screens: "
                                           f"rectangles on strong straight edges) to search by besides the whole image, "
                                           f"fusing the scores; default {REGIONS_DEFAULT}, 0: the whole image (or box) only.")]
VerifyParam = Annotated[bool | None, Blank,
                        Field(description="Re-rank the top results by geometric verification (local features matched "
                                          "under one homography: the very picture first, docs/region-search.md); "
                                          "default false (the ranking of the vectors alone): verification costs "
                                          "about 7x a plain query's time on a 2-core CPU.")]
LocalParam = Annotated[bool | None, Blank,
                       Field(description="Also take candidates by the query's local features (each SIFT keypoint votes "
                                         "for the collection image holding its nearest stored descriptor) and verify "
                                         "them geometrically: finds a picture photographed on a wall whose global "
                                         "vector ranks it far down (docs/region-search.md). Needs stored local "
                                         "features (SIFT) of the collection's images.")]

# Path parameters (URL converters give strings and digits; these add the documented limits).
ATLAS_TILE = Annotated[str, Field(pattern=TILE_PATTERN, examples=["2-1-3"],
                                  description="Map tile `z-x-y`: a cell of the 2^z x 2^z grid (z = 0..8) over the binary map's "
                                              "quantised coordinates (x = qx >> (16 - z), y = qy >> (16 - z)).")]
PATH_PARAMETERS = {"name": L.CollectionName, "image_id": L.Id, "job_id": L.Id, "space": L.Space, "tile": ATLAS_TILE}


class Query(BaseModel):
    """Query parameters: unknown ones are refused."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    comma_separated: ClassVar[frozenset[str]] = frozenset()  # list fields also given as `a,b`


class NoQuery(Query):
    """No query parameters."""


class CollectionDeleteQuery(Query):
    force: Annotated[bool, Blank] = Field(False, description="Delete even while one of its jobs is queued or running: "
                                                             "the jobs are cancelled first (without it: 409).")


BrowseSort = Literal[tuple(F.SORT_CHOICES)]
SizeParam = Annotated[Annotated[int, Field(ge=0, le=F.SIZE_MAX), L.Whole] | None, Blank]
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2}))?$")


def _rfc3339(value):
    """Only what the schema's formats say (pydantic alone would also take numbers, or a time
    without its offset)."""
    if isinstance(value, str) and not RFC3339.match(value):
        raise ValueError("must be a date (2026-01-31) or a date and time with its offset (2026-01-31T12:00:00Z)")
    return value


# a date (its whole day) or a date and time
WhenParam = Annotated[date | datetime | None, BeforeValidator(_rfc3339), Blank]


class ImagesQuery(Query):
    label: LabelFilter = None
    labelled: Annotated[bool | None, Blank] = Field(None, description="true: only labelled images; false: only unlabelled ones.")
    path: Annotated[Annotated[str, Field(max_length=F.PATH_TEXT_MAX, pattern=L.NO_NUL)] | None, Blank] = Field(
        None, description="Only images with this text (any case) in one of their file paths, as responses show them.",
        examples=["cats/"])
    min_size: SizeParam = Field(None, description="Only images whose file has at least this many bytes.")
    max_size: SizeParam = Field(None, description="Only images whose file has at most this many bytes.")
    added_after: WhenParam = Field(None, description="Only images added at or after this date (a date: from its start, UTC) or date and time (with its offset).")
    added_before: WhenParam = Field(None, description="Only images added at or before this date (a date: to its end, UTC) or date and time (with its offset).")
    run: Annotated[Annotated[int, Field(ge=1, le=L.ID_MAX), L.Whole] | None, Blank] = Field(
        None, description="Only images read by this ingest job (its id; a sharded job's shards count as the job).")
    sort: Annotated[BrowseSort | None, Blank] = Field(
        None, description="`id` (default), `added`, `path`, `size` (bytes), `pixels`, `label`; `-` first for descending "
                          "(`-added`: newest first). Ties go by id.")
    status: Literal["ok", "failed"] | None = Field(None, description="Only images with this status.")
    page: L.Page = 1
    per_page: L.PerPage = L.PER_PAGE_DEFAULT
    meta: Annotated[dict[Annotated[str, Field(pattern=L.META_KEY_PATTERN)],
                         Annotated[str, Field(max_length=1000, pattern=L.NO_NUL)]] | None,
                    WithJsonSchema(META_FILTERS)] = None


class AnalysisQuery(Query):
    backbone: SpaceParam = Field(None, description="Backbone (embedding space), or the name of imported vectors; "
                                                    "default: the collection's only one.")


class SimilarQuery(AnalysisQuery):
    k: L.SearchK = 10
    label: LabelFilter = None


class SearchQuery(SimilarQuery):
    filename: Annotated[L.Filename | None, Blank] = Field(None, description="With a raw image body: the file name to report in errors "
                                                         "and in `query.filename`.")
    box: BoxParam = None
    regions: RegionsParam = None
    verify: VerifyParam = None
    local: LocalParam = None


class ClustersQuery(AnalysisQuery):
    k: L.ClusterK = "auto"


class ComparisonQuery(Query):
    comma_separated = frozenset({"backbones"})
    backbones: list[L.Space] | None = Field(None, description="Comma-separated backbones, or spaces of derived or imported "
                                                          "vectors; default: all of the collection's.",
                                            json_schema_extra=COMMA_SEPARATED)
    sample: Annotated[int, Field(ge=20), L.Whole] | Literal["all"] = Field(
        SAMPLE_CAP, description="Evaluate a seeded sample of at most this many images by label (stratified, "
                                "or whole labels when there are many; the result's `sample` says which); `all`: every image.")


class AtlasQuery(Query):
    v: Annotated[Annotated[str, Field(pattern=r"^[0-9a-f]{20}$", examples=["5f0c9e2ab1d34c7e8a60"])] | None, Blank] = Field(
        None, description="The map's `generation` (from the binary map's header): the atlas is then immutable and cached "
                          "for good; 409 when the map has changed since.")


class JobsQuery(Query):
    collection: Annotated[L.CollectionName | None, Blank] = Field(None, description="Only this collection's jobs.")
    limit: L.JobsLimit = L.JOBS_LIMIT_DEFAULT


class Body(BaseModel):
    """A JSON request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


class NewCollection(Body):
    name: L.CollectionName
    description: L.Description | None = None


class CollectionRename(Body):
    name: L.CollectionName = Field(description="The collection's new name (409 when taken).")


class Labels(Body):
    # any whole number: ids no image can have (beyond the id column's range) are reported missing (404)
    image_ids: list[Annotated[int, L.Whole]] = Field(min_length=1, max_length=L.LABEL_IDS_MAX,
                                                     description="The images to label.")
    label: L.Label | None = Field(description="The group name (trimmed); null removes the label.")


class ImageIds(Body):
    image_ids: list[Annotated[int, L.Whole]] = Field(min_length=1, max_length=L.LABEL_IDS_MAX,
                                                     description="The images (e.g. a selection in the browse grid).")


class EmbedBackbone(Body):
    backbone: L.Backbone = Field(description="The backbone (optionally `@max`) to embed the collection's images with.")


class ImagePatch(Body):
    """Either field or both (an empty body changes nothing: 400)."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re", json_schema_extra={"minProperties": 1})
    # no "default" in the schema: a JSON null is refused (a name cannot be removed), and OpenAPI
    # validators reject a default that its own schema refuses
    name: L.ImageName = Field(None, description="A new file name (in the same folder).",
                              json_schema_extra=lambda schema: schema.pop("default", None))
    label: L.Label | None = Field(None, description="The image's label (trimmed); null removes it.")


class ClusterRef(Body):
    backbone: L.Space | None = Field(None, description="As for GET .../clusters.")
    k: L.ClusterK = "auto"
    cluster: Annotated[int, Field(ge=0, le=L.CLUSTER_K_MAX - 1), L.Whole] = Field(
        description="The cluster's number (0..k-1).")
    version: Annotated[str, Field(max_length=64, pattern=r"^[0-9a-f]+$")] | None = Field(
        None, description="The `version` of the clusters shown: 409 when they changed since.")


class ClusterName(ClusterRef):
    name: L.Label | None = Field(description="The cluster's name (trimmed); null removes it.")


class ClusterLabel(ClusterRef):
    label: L.Label = Field(description="The label every image of the cluster gets (trimmed).")


class ServerPathIngest(Body):
    server_path: ServerPath
    backbones: list[L.Backbone] | None = Field(None, description="Backbone(s); default: the server default.")
    backbone: L.Backbone | None = None
    pooling: L.Pooling | None = None
    labels: LabelsOption | None = Field(None, description="`folders`: label each image by its folder.")
    label: L.Label | None = Field(None, description="One label for every image (folders win when labels=folders).")
    batch_size: L.BatchSize | None = None


class Form(BaseModel):
    """A multipart form: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    comma_separated: ClassVar[frozenset[str]] = frozenset()


class UploadIngest(Form):
    comma_separated = frozenset({"backbone", "backbones"})
    files: list[UploadFile] | None = Field(None, description="Image files (repeat the field).")
    archive: UploadFile | None = Field(None, description="One .zip of images (instead of files).")
    backbone: list[L.Backbone] | None = Field(None, description="Backbone(s), repeated (or comma-separated); "
                                                                "default: the server default.")
    backbones: list[L.Backbone] | None = None
    pooling: Annotated[L.Pooling | None, Blank] = None
    labels: Annotated[LabelsOption | None, Blank] = Field(None, description="`folders`: label each image by its folder "
                                                                            "in the upload: the folder part of the "
                                                                            "file's multipart name (`daisy/1.jpg`, as a "
                                                                            "browser's folder upload sends it). Names "
                                                                            "are sanitised: `..`, `.` and leading `/` "
                                                                            "are dropped.")
    label: Annotated[L.Label | None, Blank] = Field(None, description="One label for every image (folders win when "
                                                                      "labels=folders).")
    batch_size: L.BatchSize | None = None
    csrf_token: CsrfToken = None


class SearchUpload(Form):
    image: UploadFile = Field(description="The query image.", examples=["cat.jpg"])
    k: L.SearchK | None = None
    backbone: SpaceParam = None
    label: LabelFilter = None
    box: BoxParam = None
    regions: RegionsParam = None
    verify: VerifyParam = None
    local: LocalParam = None
    csrf_token: CsrfToken = None
