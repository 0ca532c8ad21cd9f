"""Export a selection of a collection's images (a lasso on the map, a cluster, a result list,
duplicate groups) as CSV, JSON or a COCO labels file (:mod:`simsearch.ops.export_formats`), with
every path of each image, its label and the group it was selected in.

The selection is ``image_ids`` (in order), ``groups`` (``[{"group", "image_ids"}]``: e.g. the
duplicate groups shown) or one ``cluster`` of the clustering last computed (``{"backbone", "k",
"cluster", "version"}``, as the cluster writes of :mod:`simsearch.ops.cluster_labels` take it: its
members, their group the cluster's number).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from simsearch import __version__
from simsearch.errors import InvalidInput
from simsearch.ops import export_formats as formats
from simsearch.ops.cluster_labels import current_clusters
from simsearch.ops.duplicate_files import image_rows, public_image
from simsearch.ops.images import selection


@dataclass(frozen=True)
class Export:
    text: str
    mime: str
    filename: str
    count: int  # images


def check_format(fmt) -> str:
    if fmt not in formats.FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(formats.FORMATS)}, not {fmt!r}", field="format")
    return fmt


def _selected(ctx, collection: str, image_ids, groups, cluster) -> tuple[list[int], list, str]:
    """(ids in order, their groups, what was selected: for the file's name)."""
    if sum(x is not None for x in (image_ids, groups, cluster)) != 1:
        raise InvalidInput("give one of image_ids (a list of image ids), groups or cluster", field="image_ids")
    if cluster is not None:
        number = cluster.get("cluster")
        base, _ = current_clusters(ctx, collection, cluster.get("backbone"), cluster.get("k", "auto"), number,
                                   cluster.get("version"))
        members = [int(i) for i in base.clusters[number].members]
        return members, [number] * len(members), f"cluster-{number}"
    if groups is not None:
        if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("image_ids"), list)
                                                   for g in groups):
            raise InvalidInput("groups must be a list of {group, image_ids}", field="groups")
        pairs = [(int(i), g.get("group")) for g in groups for i in g["image_ids"]]
        image_ids, group_of = [i for i, _ in pairs], dict(reversed(pairs))  # an image in two groups: its first
    else:
        group_of = {}
    ids = [r["id"] for r in selection(ctx, collection, image_ids)]  # 404 naming the ids not in the collection
    return ids, [group_of.get(i) for i in ids], "selection"


def export(ctx, collection: str, *, image_ids=None, groups=None, cluster: dict | None = None, fmt: str = "csv",
           path_view=None) -> Export:
    """The selection as a file. ``path_view(path, ingest source)``: how paths are shown (the API
    hides the server's paths)."""
    check_format(fmt)
    ids, group_of, what = _selected(ctx, collection, image_ids, groups, cluster)
    rows = image_rows(ctx, ids)
    out = []
    for i, g in zip(ids, group_of):
        if i in rows:  # (deleted meanwhile: left out)
            row = public_image(rows[i], path_view).model_dump(exclude={"has_thumbnail"})
            out.append({**row, "group": g})
    created = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    text = formats.serialise(out, fmt, description=f"simsearch export of {len(out)} images of collection {collection} "
                                                  f"({what})", version=__version__, created=created)
    return Export(text, formats.MIME[fmt], f"{collection}-{what}.{formats.SUFFIX[fmt]}", len(out))
