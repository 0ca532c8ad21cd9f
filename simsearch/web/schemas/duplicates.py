"""The duplicate finder's contract: ``GET /api/collections/<name>/duplicates`` (and its export),
``POST .../duplicates/resolve`` (keep one of each group; see :mod:`simsearch.ops.duplicates` for
the tiers and how their thresholds were calibrated).

The responses are the operations' results, declared once in :mod:`simsearch.ops.duplicate_results`
(``Duplicates`` only shows each image's thumbnail URL instead of whether it has one)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from simsearch import limits as L
from simsearch.ops import duplicate_results as results
from simsearch.ops.duplicate_results import DuplicatesPage, DuplicatesPlan, GroupImage, Tier
from simsearch.web.schemas.requests import AnalysisQuery, Blank, Body

__all__ = ["DuplicatesQuery", "Duplicates", "DuplicatesExportQuery", "DuplicatesResolve", "DuplicatesPlan"]

TIER_HELP = ("`exact`: identical bytes (one image, several files) or identical pixels in different files; `near`: the "
             "same photo resized, re-compressed, cropped or flipped; `similar`: look-alikes at or above `threshold`.")


class DuplicatesQuery(AnalysisQuery):
    tier: Tier = Field("near", description=TIER_HELP)
    threshold: Annotated[L.DuplicatesThreshold | None, Blank] = Field(
        None, description=f"Cosine similarity to group at, {L.DUPLICATES_THRESHOLD_MIN}..1 (near and similar tiers; "
                          "default: the calibrated one; the exact tier ignores it).")
    page: L.Page = 1
    per_page: L.PerPage = L.PER_PAGE_DEFAULT


class DuplicateImage(GroupImage):
    """An image of a group as the API shows it: the URL of its thumbnail instead of whether it has one."""

    thumbnail_url: str | None


class DuplicateGroup(results.DuplicateGroup[DuplicateImage]):
    """A group of a tier: its images and its strongest pairs."""


class Duplicates(DuplicatesPage[DuplicateImage]):
    """One page of a tier's duplicate groups, largest first."""

    groups: list[DuplicateGroup]


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
