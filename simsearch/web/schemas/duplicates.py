"""The duplicate finder's contract: ``GET /api/collections/<name>/duplicates`` (and its export),
``POST .../duplicates/resolve`` (keep one of each group; see :mod:`simsearch.ops.duplicates` for
the tiers and how their thresholds were calibrated)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from simsearch import limits as L
from simsearch.web.schemas.requests import AnalysisQuery, Blank, Body

__all__ = ["DuplicatesQuery", "Duplicates", "DuplicatesExportQuery", "DuplicatesResolve", "DuplicatesPlan"]

Tier = Literal["exact", "near", "similar"]
TIER_HELP = ("`exact`: identical bytes (one image, several files) or identical pixels in different files; `near`: the "
             "same photo resized, re-compressed, cropped or flipped; `similar`: look-alikes at or above `threshold`.")


class DuplicatesQuery(AnalysisQuery):
    tier: Tier = Field("near", description=TIER_HELP)
    threshold: Annotated[L.DuplicatesThreshold | None, Blank] = Field(
        None, description=f"Cosine similarity to group at, {L.DUPLICATES_THRESHOLD_MIN}..1 (near and similar tiers; "
                          "default: the calibrated one; the exact tier ignores it).")
    page: L.Page = 1
    per_page: L.PerPage = L.PER_PAGE_DEFAULT


class DuplicateFile(BaseModel):
    path: str = Field(description="A file with the image's bytes, its path shown as elsewhere in the API.")
    size: int | None = Field(description="Bytes (null: recorded before sizes were).")
    mtime: str | None = Field(description="Its modification time when ingested (ISO 8601, UTC; null: unknown).")


class DuplicateImage(BaseModel):
    id: int
    path: str = Field(description="Its first file.")
    label: str | None
    width: int | None
    height: int | None
    thumbnail_url: str | None
    file_count: int = Field(description="Files with its bytes (byte-identical copies).")
    files: list[DuplicateFile] = Field(description="Every file with its bytes, the first first.")


class DuplicatePair(BaseModel):
    a: int = Field(description="Image id.")
    b: int = Field(description="Image id.")
    similarity: float = Field(description="Cosine similarity of the two images' vectors.")
    identical: bool = Field(description="Identical pixels (the exact tier's test).")


class DuplicateGroup(BaseModel):
    group: int = Field(description="Rank of the group (1 = the largest, then the most alike).")
    size: int = Field(description="Images in the group.")
    files: int = Field(description="Files of its images (an image with byte-identical copies has several).")
    identical_files: bool = Field(description="Some image of the group has byte-identical files.")
    max_similarity: float = Field(description="The strongest pair in the group.")
    min_similarity: float = Field(description="The weakest pair that joined the group (at or above the threshold).")
    images: list[DuplicateImage]
    pairs: list[DuplicatePair] = Field(description="The group's strongest pairs (at most 50).")
    pairs_total: int


class TierThresholds(BaseModel):
    exact_min_cosine: float = Field(description="Exact pairs have vectors at least this alike (then identical pixels).")
    near: float = Field(description="The near tier's calibrated threshold.")
    similar_default: float
    minimum: float = Field(description="The lowest threshold accepted.")


class TierCount(BaseModel):
    groups: int
    images: int
    files: int | None = Field(None, description="Exact tier: the files of its images (identical bytes count each).")


class Duplicates(BaseModel):
    """One page of a tier's duplicate groups, largest first."""

    collection: str
    backbone: str
    tier: Tier
    threshold: float | None = Field(description="The cosine similarity grouped at (null for exact).")
    meaning: str = Field(description="What the tier at this threshold means, in words.",
                         examples=["The same photo after resizing, JPEG re-compression, a crop of a few percent or a "
                                   "mirror flip."])
    thresholds: TierThresholds
    n_images: int = Field(description="Images with vectors in this space.")
    total_groups: int
    grouped_images: int = Field(description="Images in some group of this tier.")
    tiers: dict[str, TierCount] = Field(description="Groups and images of every tier at its default threshold.")
    page: int
    per_page: int
    pages: int
    groups: list[DuplicateGroup]
    cached: bool = Field(description="The pairs came from the analysis cache (the vectors did not change).")
    seconds: float | None = Field(description="Time the pair search took when it was computed.")


class DuplicatesExportQuery(AnalysisQuery):
    tier: Tier = Field("exact", description=TIER_HELP)
    threshold: Annotated[L.DuplicatesThreshold | None, Blank] = Field(None, description="As for the listing.")
    format: Literal["csv", "json"] = Field("csv", description="`csv`: a row per file (group, image, path, first path "
                                                               "or not, size, mtime, ...); `json`: the groups as "
                                                               "listed, every group on one page.")


class DuplicatesResolve(Body):
    backbone: L.Space | None = Field(None, description="As for the listing.")
    tier: Tier = Field("exact", description=TIER_HELP)
    threshold: L.DuplicatesThreshold | None = Field(None, description="As for the listing (near and similar).")
    keep: Literal["oldest", "most-pixels"] = Field(
        "oldest", description="Which file of each group is kept: the oldest file (modification time), or a file of the "
                              "largest image (`most-pixels`). Ties: the oldest, then the first stored.")
    pattern: Annotated[str, Field(min_length=1, max_length=1000)] | None = Field(
        None, description="Only a file whose path (as shown) matches this glob can be kept, e.g. `*/originals/*` "
                          "(`*` also matches `/`); `keep` chooses among them. A group where none does is left alone.")
    groups: Annotated[list[Annotated[int, Field(ge=1), L.Whole]], Field(min_length=1, max_length=10000)] | None = Field(
        None, description="Group numbers (as listed at this tier and threshold) to act on; default: every group. "
                          "409 when one no longer exists.")
    digest: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        None, description="Absent: a preview, nothing changes. The preview's `digest`: carry the plan out, only if it "
                          "is still the same (409 otherwise).")


class PlanFile(BaseModel):
    image_id: int
    path: str


class PlanImage(BaseModel):
    image_id: int
    paths: list[str] = Field(description="Every file of the image (all go with it).")


class PlanGroup(BaseModel):
    group: int
    keep: PlanFile | None = Field(description="The file kept (null: the group is left alone, see `skipped`).")
    drop_files: list[PlanFile] = Field(description="Other files of the kept image: their records are dropped "
                                                   "(the image stays).")
    delete_images: list[PlanImage] = Field(description="The group's other images: deleted from the collection with "
                                                       "their vectors.")
    skipped: str | None = Field(description="Why the group is left alone.")


class PlanSummary(BaseModel):
    groups: int
    groups_acted: int
    groups_skipped: int
    files_dropped: int
    images_deleted: int
    files_deleted_on_disk: int = Field(description="Always 0 through the API: files on disk are never touched here.")


class DuplicatesPlan(BaseModel):
    """What keeping one of each group does (a preview), or did (applied)."""

    collection: str
    backbone: str
    tier: Tier
    threshold: float | None
    keep: str = Field(examples=["oldest"])
    pattern: str | None
    digest: str = Field(description="Identifies this plan: send it back to carry the plan out (only if unchanged).",
                        examples=["9b1e0c4d27a35f86"])
    applied: bool
    summary: PlanSummary
    groups: list[PlanGroup]
    disk: list[dict] = Field(description="Files deleted on disk (the CLI's --delete-files; always empty here).")
