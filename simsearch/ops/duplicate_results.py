"""Typed results of the duplicate finder (:mod:`simsearch.ops.duplicates`,
:mod:`simsearch.ops.duplicate_files`, :mod:`simsearch.ops.duplicate_actions`), declared once.

As for the analysis results (:mod:`simsearch.ops.analysis_results`): each result is a pydantic
model whose fields are the keys of its JSON, in the order users see them. The operations build
them, the CLI prints ``to_dict()`` with ``--json``, the export writes the page's JSON, and the
API's schemas (:mod:`simsearch.web.schemas.duplicates`) are these models; the API's page only
shows each image's thumbnail URL instead of whether it has one (:meth:`DuplicatesPage.with_images`).
"""

from __future__ import annotations

from typing import Callable, Generic, Literal, TypeVar

from pydantic import Field

from simsearch.ops.analysis_results import Result, SometimesAbsent

Tier = Literal["exact", "near", "similar"]

# ---- the files of an image and the images of a group ------------------------------------------


class DuplicateFile(Result):
    path: str = Field(description="A file with the image's bytes, its path shown as elsewhere in the API.")
    size: int | None = Field(description="Bytes (null: recorded before sizes were).")
    mtime: str | None = Field(description="Its modification time when ingested (ISO 8601, UTC; null: unknown).")


class GroupImage(Result):
    """An image of a group: its first path and every file with its bytes."""

    id: int
    path: str = Field(description="Its first file.")
    label: str | None
    width: int | None
    height: int | None
    file_count: int = Field(description="Files with its bytes (byte-identical copies).")
    files: list[DuplicateFile] = Field(description="Every file with its bytes, the first first.")


class DuplicateImage(GroupImage):
    """An image of a group as the operations show it (the API shows its thumbnail's URL instead)."""

    has_thumbnail: bool = Field(description="A thumbnail is stored for it.")


class DuplicatePair(Result):
    a: int = Field(description="Image id.")
    b: int = Field(description="Image id.")
    similarity: float = Field(description="Cosine similarity of the two images' vectors.")
    identical: bool = Field(description="Identical pixels (the exact tier's test).")


ImageT = TypeVar("ImageT", bound=GroupImage)


class DuplicateGroup(Result, Generic[ImageT]):
    group: int = Field(description="Rank of the group (1 = the largest, then the most alike).")
    size: int = Field(description="Images in the group.")
    files: int = Field(description="Files of its images (an image with byte-identical copies has several).")
    identical_files: bool = Field(description="Some image of the group has byte-identical files.")
    max_similarity: float = Field(description="The strongest pair in the group.")
    min_similarity: float = Field(description="The weakest pair that joined the group (at or above the threshold).")
    images: list[ImageT]
    pairs: list[DuplicatePair] = Field(description="The group's strongest pairs (at most 50).")
    pairs_total: int


# ---- a page of a tier's groups -------------------------------------------------------------------


class TierThresholds(Result):
    exact_min_cosine: float = Field(description="Exact pairs have vectors at least this alike (then identical pixels).")
    near: float = Field(description="The near tier's calibrated threshold.")
    similar_default: float
    minimum: float = Field(description="The lowest threshold accepted.")


class TierCount(SometimesAbsent):
    OMIT_WHEN_NONE = frozenset({"files"})

    groups: int
    images: int
    files: int | None = Field(None, description="Exact tier: the files of its images (identical bytes count each).")


PageT = TypeVar("PageT", bound="DuplicatesPage")


class DuplicatesPage(Result, Generic[ImageT]):
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
    groups: list[DuplicateGroup[ImageT]]
    cached: bool = Field(description="The pairs came from the analysis cache (the vectors did not change).")
    seconds: float | None = Field(description="Time the pair search took when it was computed.")

    def with_images(self, into: type[PageT], image: Callable[[dict], dict]) -> PageT:
        """This page as the page model ``into``, each image's JSON passed through ``image``."""
        data = self.to_dict()
        for g in data["groups"]:
            g["images"] = [image(i) for i in g["images"]]
        return into.model_validate(data)


class Duplicates(DuplicatesPage[DuplicateImage]):
    """One page of a tier's duplicate groups, largest first (the operations' page)."""

    def exported(self) -> dict:
        """The JSON export: this page without whether each image has a thumbnail."""
        return self.model_dump(mode="json", exclude={"groups": {"__all__": {"images": {"__all__": {"has_thumbnail"}}}}})


class DuplicatesAllTiers(Result):
    """Every tier's page (the CLI's ``--tier all --json``)."""

    collection: str
    backbone: str
    n_images: int
    results: dict[str, Duplicates]


class DuplicatesExport(Result):
    """What the CLI's ``--export --json`` says it wrote."""

    export: str = Field(description="The file written.")
    format: Literal["csv", "json"]
    groups: int = Field(description="Groups of the tier written.")


# ---- acting on groups: keep one, remove the rest --------------------------------------------------


class PlanFile(Result):
    image_id: int
    path: str


class PlanImage(Result):
    image_id: int
    paths: list[str] = Field(description="Every file of the image (all go with it).")


class PlanGroup(Result):
    group: int
    skipped: str | None = Field(description="Why the group is left alone.")
    keep: PlanFile | None = Field(description="The file kept (null: the group is left alone, see `skipped`).")
    drop_files: list[PlanFile] = Field(description="Other files of the kept image: their records are dropped "
                                                   "(the image stays).")
    delete_images: list[PlanImage] = Field(description="The group's other images: deleted from the collection with "
                                                       "their vectors.")


class PlanSummary(Result):
    groups: int
    groups_acted: int
    groups_skipped: int
    files_dropped: int
    images_deleted: int
    files_deleted_on_disk: int = Field(description="Always 0 through the API: files on disk are never touched here.")


class DiskFile(Result):
    """A removed file and what became of it on disk."""

    path: str
    deleted: bool
    reason: str | None = Field(description="Why it was kept on disk (null: deleted).")


class DuplicatesPlan(Result):
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
    disk: list[DiskFile] = Field(description="Files deleted on disk (the CLI's --delete-files; always empty here).")
