"""Response bodies. Fields without a default are required; extra keys are allowed (additions are
backwards compatible), but every key the API sends is listed here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simsearch.index import kinds

__all__ = ["Error", "ErrorDetail", "Health", "Backbone", "BackboneList", "BackboneSpace", "Collection", "CollectionList",
           "CollectionDetail", "LabelCount", "CollectionDeleted", "Image", "ImageDetail", "ImagePage", "ImageFilters", "ImagesRemoved",
           "ImageDeleted", "Hit", "SimilarQueryImage", "SimilarResult", "SearchQueryFile", "SearchResult", "LabelsResult",
           "Job", "JobError", "JobList", "JobAccepted", "AnalysisAccepted", "JobCancelledOut", "JobRetried"]

Timestamp = str  # ISO 8601 in UTC, e.g. 2026-01-31T12:00:00Z


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `not_found`, `invalid_input`, `bad_image`.")
    message: str = Field(description="What went wrong, for people (names the field or file and why).")
    field: str | None = Field(None, description="The request field at fault, when there is one.")
    details: Any = Field(None, description="Extra structured information (e.g. every problem, the refused zip entry).")


class Error(BaseModel):
    """Every error: one shape."""

    error: ErrorDetail


def example(value: dict) -> ConfigDict:
    """``model_config = example({...})``: the model's example in the OpenAPI document (a response
    that holds the model shows it; :mod:`simsearch.web.examples`)."""
    return ConfigDict(json_schema_extra={"examples": [value]})


HIT = {"image_id": 17, "score": 0.8731, "percentile": 88.0, "path": "cats/cat.17.jpg", "label": "cats", "width": 500,
       "height": 375, "file_count": 1, "thumbnail_url": "/api/images/17/thumbnail"}
HIT2 = {**HIT, "image_id": 4, "score": 0.8412, "percentile": 71.5, "path": "cats/cat.4.jpg", "width": 320, "height": 240,
        "thumbnail_url": "/api/images/4/thumbnail"}


class Health(BaseModel):
    model_config = example({"status": "ok", "version": "0.9.0", "database": "postgresql", "jobs": "rq",
                            "checks": {"database": "ok", "job_queue": "ok"}})

    status: Literal["ok"]
    version: str = Field(description="The server's version.", examples=["0.9.0"])
    database: str = Field(description="The database dialect (`sqlite`, `postgresql`).", examples=["postgresql"])
    jobs: Literal["thread", "rq"] = Field(description="Where ingest jobs run: in-process threads or RQ workers.")
    checks: dict[str, str] = Field(description="Each dependency's state: `ok`, `in-process`, `unavailable`, ...")


class Backbone(BaseModel):
    name: str
    input_size: int
    dim: int = Field(description="Length of the embedding vector.")
    family: str
    weights_available: bool
    weights_note: str | None = Field(description="Why the weights are not available, or how they are had.")
    loaded: bool = Field(description="The model is loaded in this process.")
    default: bool = Field(description="The server's default backbone for ingest.")


class BackboneList(BaseModel):
    backbones: list[Backbone]


def _index_kinds() -> str:
    """``flat (exact), ivf_pq_refine, ivf_sq8 or hnsw_sq8.``: the registered kinds."""
    approximate = [k for k in kinds.names() if kinds.is_approximate(k)]
    return f"{kinds.exact().name} (exact), {', '.join(approximate[:-1])} or {approximate[-1]}."


class IndexInfo(BaseModel):
    """What the index policy chose for one (collection, backbone) index and what it measured when
    it last built, tuned or checked it (see the README's "Index policy and recall")."""

    kind: str = Field(description=_index_kinds())

    recall: float | None = Field(description="Recall@10 against exact search on sampled stored vectors, at `params`.")
    target_recall: float = Field(description="The recall the parameters are tuned to reach (SIMSEARCH_TARGET_RECALL).")
    params: dict[str, int | float] = Field(description="Tuned search parameters (nprobe, k_factor, efSearch) and structure (nlist, M).")
    memory_bytes: int | None = Field(description="Size of the index (its file; about what it takes in memory).")
    build_seconds: float | None = Field(description="Duration of the last full build, tuning included.")
    built_at: Timestamp | None = Field(description="When the index was last written or checked.")
    vectors: int = Field(description="Vectors searchable in the index.")
    masked: int = Field(description="Deleted vectors still in the index, left out of searches until it is compacted.")
    recall_checked_at_vectors: int | None = Field(description="Vectors in the index when the recall was measured.")
    generation: int
    building: str | None = Field(None, description="The step of a background rebuild (searches use this index meanwhile).")


class BackboneSpace(BaseModel):
    vectors_in_db: int
    vectors_in_index: int | None = Field(description="Vectors in this process's open index (null: not opened yet).")
    index: IndexInfo | None = Field(None, description="The index policy's choice and measurements (null: no index built yet).")


class Collection(BaseModel):
    name: str
    id: int
    description: str | None
    created_at: Timestamp | None
    images_ok: int
    images_failed: int
    backbones: dict[str, BackboneSpace] = Field(description="Vector counts per backbone (embedding space).")


class CollectionList(BaseModel):
    collections: list[Collection]


class LabelCount(BaseModel):
    label: str | None
    count: int


class JobError(BaseModel):
    file: str
    reason: str


class JobShards(BaseModel):
    total: int
    queued: int
    running: int
    done: int
    failed: int
    attempts: int = Field(description="Shard starts so far (above total: some were started again after a worker died).")


class Job(BaseModel):
    """An ingest job, an analysis job (clusters, map, evaluation, comparison, duplicates) started by a 202,
    a tuning (tune: its options, and its report once done, in params), or a background rebuild of a
    large index (index)."""

    id: int
    kind: Literal["ingest", "shard", "reembed", "reembed_shard", "features", "features_shard", "clusters", "map", "evaluation", "comparison", "duplicates", "index", "tune"]
    title: str = Field(description="What the job does, in words (an ingest that only adds another backbone's "
                                   "vectors is an embedding pass).")
    parent_id: int | None = Field(None, description="A shard: the job (ingest, re-embedding or local features) it is a part of.")
    cancelled: bool = Field(False, description="Failed because it was cancelled (`POST /api/jobs/{id}/cancel`).")
    retry_refused: str | None = Field(None, description="A failed, cancelled or interrupted job that "
                                      "`POST /api/jobs/{id}/retry` cannot start again: why, and what to do instead "
                                      "(null: it can be retried, or has not ended badly).")
    params: dict[str, Any] | None = Field(description="An analysis job's parameters (null for ingest); a tuning's "
                                          "options and, once done, its report.")
    result_url: str | None = Field(None, description="An analysis job: where its result is served (200 once done).")
    status: Literal["queued", "running", "done", "failed", "interrupted"] = Field(
        description="interrupted: a `simsearch ingest` command that stopped mid-way (its work is kept).")
    collection: str | None
    backbones: list[str]
    source: str | None
    total: int
    processed: int
    failed: int
    added: int
    skipped: int
    duplicates: int = Field(0, description="Files with the bytes of an image the collection has under another path: "
                                           "kept as that image's paths (not new images).")
    rate: float = Field(description="Images processed per second.")
    eta_seconds: float | None
    errors: list[JobError] = Field(description="Per-file errors (the first ones).")
    errors_total: int
    created_at: Timestamp | None
    started_at: Timestamp | None
    updated_at: Timestamp | None
    finished_at: Timestamp | None
    message: str | None
    stale: bool = Field(description="Running, but no progress for 10 minutes: its process probably stopped.")
    shards: JobShards | None = Field(None, description="A large queued ingest, a re-embedding or a local features job, split into shards "
                                     "that any worker takes: how many are in each state (the counters above are their "
                                     "sums).")
    children: list[dict[str, Any]] | None = Field(None, description="One job's view (`/api/jobs/{id}`) of a sharded "
                                                  "ingest, re-embedding or local features job: its shards, each in the "
                                                  "shape of a Job (kind `shard`, `reembed_shard` or `features_shard`).")

    model_config = example({
        "id": 42, "kind": "ingest", "params": None, "result_url": None, "status": "running", "collection": "pets",
        "backbones": ["efficientnet_lite0"], "source": "upload", "total": 1200, "processed": 480, "failed": 2, "added": 470,
        "skipped": 8, "duplicates": 0, "rate": 31.5, "eta_seconds": 22.9,
        "errors": [{"file": "cats/broken.jpg", "reason": "not an image: cannot identify the format"}], "errors_total": 2,
        "created_at": "2026-12-06T18:40:02Z", "started_at": "2026-12-06T18:40:03Z", "updated_at": "2026-12-06T18:40:18Z",
        "finished_at": None, "message": "embedding 480 of 1200", "stale": False, "shards": None,
        "title": "Adding images (efficientnet_lite0)", "parent_id": None, "cancelled": False, "retry_refused": None})


class AnalysisAccepted(BaseModel):
    """An analysis being computed in the background: poll `status_url`, then ask again."""

    model_config = ConfigDict(extra="forbid")

    job_id: int
    status: Literal["queued", "running"]
    status_url: str


class CollectionDetail(Collection):
    labels: list[LabelCount] = Field(description="Labels of the collection's images, most common first.")
    recent_jobs: list[Job]


class CollectionDeleted(BaseModel):
    deleted: str = Field(description="The collection's name.")
    images: int = Field(description="How many images were deleted with it.")


class Image(BaseModel):
    id: int
    collection: str | None
    path: str = Field(description="Where the image came from (file name or path as ingested).")
    label: str | None
    width: int | None
    height: int | None
    status: Literal["ok", "failed"]
    error: str | None = Field(description="Why the image failed to ingest.")
    meta: dict[str, Any] = Field(description="Metadata from the ingest (e.g. CSV columns).")
    created_at: Timestamp | None
    thumbnail_url: str | None
    file_count: int = Field(description="Files with this image's bytes (byte-identical copies): `path` is the first.")
    size: int | None = Field(None, description="The file's size in bytes (null: not recorded).")


class ImageFileInfo(BaseModel):
    path: str = Field(description="The file's path as ingested (shown like `path`).")
    size: int | None = Field(description="Bytes (null: recorded before sizes were).")
    mtime: Timestamp | None = Field(description="The file's modification time when it was read (null: unknown).")


class ImageDetail(Image):
    files: list[ImageFileInfo] = Field(description="Every file with this image's bytes, the first (`path`) first.")
    backbones: list[str] = Field(description="Backbones (embedding spaces) with a vector for this image.")
    similar_url: str
    file_url: str = Field(description="The original file (GET: 404 for imported vectors, 410 when the file is gone).")


class ImageFilters(BaseModel):
    label: str | None
    status: Literal["ok", "failed"] | None
    meta: dict[str, str]
    labelled: bool | None = None
    path: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    added_after: Timestamp | None = None
    added_before: Timestamp | None = None
    run: int | None = None


class ImagesRemoved(BaseModel):
    collection: str
    removed: int = Field(description="How many images were removed (with their vectors; their files are not touched).")
    image_ids: list[int]


class ImagePage(BaseModel):
    collection: str
    page: int
    per_page: int
    total: int
    pages: int
    sort: str = Field("id", description="The order (the `sort` parameter).")
    filters: ImageFilters = Field(description="The filters applied (those not given are left out or null).")
    images: list[Image]


class ImageDeleted(BaseModel):
    deleted: int = Field(description="The image's id.")


class Hit(BaseModel):
    model_config = example(HIT)

    image_id: int
    score: float = Field(description="Cosine similarity.")
    percentile: float | None = Field(None, description="The score as a percentile (0-100) of this collection's "
                                     "nearest-neighbour similarities in the space searched: comparable across spaces "
                                     "(50: a typical top-10 neighbour; null: too few vectors).")
    path: str = Field(description="The image's first file (see `file_count`).")
    label: str | None
    width: int | None
    height: int | None
    file_count: int = Field(description="Files with this image's bytes (byte-identical copies; the image's page "
                                        "lists them all).")
    thumbnail_url: str


class SimilarQueryImage(BaseModel):
    model_config = example({"image_id": 12, "path": "cats/cat.12.jpg", "label": "cats", "thumbnail_url": "/api/images/12/thumbnail"})

    image_id: int
    path: str
    label: str | None
    thumbnail_url: str


class SimilarResult(BaseModel):
    model_config = example({"query": {"image_id": 12, "path": "cats/cat.12.jpg", "label": "cats",
                                      "thumbnail_url": "/api/images/12/thumbnail"},
                            "backbone": "efficientnet_lite0", "k": 2, "results": [HIT, HIT2], "seconds": 0.011})

    query: SimilarQueryImage
    backbone: str
    k: int
    results: list[Hit] = Field(description="Best first; the query image itself is excluded.")
    seconds: float


class SearchQueryFile(BaseModel):
    model_config = example({"filename": "cat.jpg", "bytes": 48213})

    filename: str | None
    bytes: int


class SearchResult(BaseModel):
    model_config = example({"query": {"filename": "cat.jpg", "bytes": 48213}, "collection": "pets",
                            "backbone": "efficientnet_lite0", "k": 2, "results": [HIT, HIT2], "seconds": 0.093})

    query: SearchQueryFile
    collection: str
    backbone: str
    k: int
    results: list[Hit] = Field(description="Best first.")
    seconds: float


class LabelsResult(BaseModel):
    collection: str
    label: str | None
    updated: int


class JobList(BaseModel):
    jobs: list[Job] = Field(description="Most recent first (ingest and analysis jobs).")


class JobAccepted(BaseModel):
    job_id: int
    status: Literal["queued"]
    status_url: str
    collection: str
    total: int = Field(description="Image files staged for the job.")
    ignored: list[str] = Field(description="Files that are not images, or were refused (the first 200).")
    runner: Literal["thread", "rq"]


class JobCancelledOut(BaseModel):
    job_id: int
    status: Literal["failed"]
    cancelled: list[int] = Field(description="The jobs cancelled: this one and its unfinished shards.")


class JobRetried(BaseModel):
    job_id: int = Field(description="The job to follow: the same one queued again, or a new one.")
    status: Literal["queued", "running"]
    status_url: str
    retry_of: int
