"""The duplicate finder's contract: ``GET /api/collections/<name>/duplicates`` (see
:mod:`simsearch.ops.duplicates` for the tiers and how their thresholds were calibrated)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from simsearch import limits as L
from simsearch.web.schemas.requests import AnalysisQuery, Blank

__all__ = ["DuplicatesQuery", "Duplicates"]


class DuplicatesQuery(AnalysisQuery):
    tier: Literal["exact", "near", "similar"] = Field(
        "near", description="`exact`: identical pixels in different files; `near`: the same photo resized, "
                            "re-compressed, cropped or flipped; `similar`: look-alikes at or above `threshold`.")
    threshold: Annotated[L.DuplicatesThreshold | None, Blank] = Field(
        None, description=f"Cosine similarity to group at, {L.DUPLICATES_THRESHOLD_MIN}..1 (near and similar tiers; "
                          "default: the calibrated one; the exact tier ignores it).")
    page: L.Page = 1
    per_page: L.PerPage = L.PER_PAGE_DEFAULT


class DuplicateImage(BaseModel):
    id: int
    path: str
    label: str | None
    width: int | None
    height: int | None
    thumbnail_url: str | None


class DuplicatePair(BaseModel):
    a: int = Field(description="Image id.")
    b: int = Field(description="Image id.")
    similarity: float = Field(description="Cosine similarity of the two images' vectors.")
    identical: bool = Field(description="Identical pixels (the exact tier's test).")


class DuplicateGroup(BaseModel):
    group: int = Field(description="Rank of the group (1 = the largest, then the most alike).")
    size: int
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


class Duplicates(BaseModel):
    """One page of a tier's duplicate groups, largest first."""

    collection: str
    backbone: str
    tier: Literal["exact", "near", "similar"]
    threshold: float | None = Field(description="The cosine similarity grouped at (null for exact).")
    meaning: str = Field(description="What the tier at this threshold means, in words.")
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
