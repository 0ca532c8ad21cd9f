"""Acting on duplicate groups (no Flask): keep one file of each group of a tier by a keep rule and
remove the rest from the collection (a preview, then the same plan applied), and export every
group with every path (CSV, JSON). The groups come from :mod:`simsearch.ops.duplicates`."""

from __future__ import annotations

import hashlib
import math

from sqlalchemy import select

from simsearch.errors import Conflict, InvalidInput
from simsearch.ops import duplicate_files
from simsearch.ops.duplicate_results import DiskFile, DuplicatesPlan, PlanFile, PlanGroup, PlanImage, PlanSummary
from simsearch.ops.duplicates import PairSet, collection_id_of, groups, parse_tier, tier_groups, tier_threshold
from simsearch.store import repo
from simsearch.store.models import Embedding, Image, ImageFile
from simsearch.images import content_hash
from simsearch.jobs import kept_originals
from simsearch.store import upsert

# ---- acting on groups: keep one, remove the rest (preview, then apply) -----------------------------

KEEP_RULES = ("oldest", "most-pixels")
PATTERN_MAX = 1000


def check_keep(keep, pattern) -> tuple[str, str | None]:
    """A keep rule: ``oldest`` (the file with the earliest modification time) or ``most-pixels``
    (a file of the largest image); with a ``pattern`` (a glob, ``*`` also matching ``/``), only
    the files whose path matches it can be kept (a group where none does is left alone), the rule
    choosing among them. Ties: the oldest file, then the first stored."""
    if keep not in KEEP_RULES:
        raise InvalidInput(f"keep must be one of {', '.join(KEEP_RULES)}, not {keep!r}", field="keep")
    if pattern is not None and (not isinstance(pattern, str) or not pattern or len(pattern) > PATTERN_MAX):
        raise InvalidInput(f"pattern must be a glob of 1 to {PATTERN_MAX} characters, e.g. '*/originals/*'",
                           field="pattern")
    return keep, pattern


def _rank(keep: str, pattern: str | None, path_view):
    """The sort key of (image row, file): the first is kept (its first element: the file's path
    does not match the pattern)."""
    from fnmatch import fnmatchcase

    def oldest(f: dict):
        when = f["mtime"] or f["created_at"]
        return (f["mtime"] is None, when.timestamp() if when is not None else math.inf, f["id"])

    def key(row: dict, f: dict):
        unmatched = pattern is not None and not fnmatchcase(duplicate_files.shown(path_view, f["path"], f["source"]),
                                                            pattern)
        if keep == "most-pixels":
            return (unmatched, -((row["width"] or 0) * (row["height"] or 0)), *oldest(f))
        return (unmatched, *oldest(f))

    return key


def _plan_groups(ctx, ps: PairSet, tier: str, t: float, keep: str, pattern: str | None, chosen, path_view):
    found = tier_groups(ctx, ps, tier, t)
    if chosen:
        bad = [n for n in chosen if not 1 <= n <= len(found)]
        if bad:  # (the groups are as the collection is now: they may have changed since they were listed)
            raise Conflict(f"no group {bad[0]}: the {tier} tier has {len(found)} group{'' if len(found) == 1 else 's'} "
                           "now; list them again", field="groups")
        numbered = [(n, found[n - 1]) for n in sorted(set(chosen))]
    else:
        numbered = list(enumerate(found, start=1))
    rows = duplicate_files.image_rows(ctx, {i for _, g in numbered for i in g.images})
    rank = _rank(keep, pattern, path_view)
    out = []
    for n, g in numbered:
        members = [rows[i] for i in g.images if i in rows]
        files = [(row, f) for row in members for f in row["files"]]
        entry = {"group": n, "keep": None, "drop_files": [], "delete_images": [], "skipped": None}
        if len(files) < 2:
            entry["skipped"] = "nothing to remove (its other images were deleted)"
        elif pattern is not None and rank(*min(files, key=lambda rf: rank(*rf)))[0]:
            entry["skipped"] = "no path in the group matches the pattern"
        else:
            row, kept = min(files, key=lambda rf: rank(*rf))
            entry["keep"] = (row, kept)
            entry["drop_files"] = [(row, f) for f in row["files"] if f is not kept]
            entry["delete_images"] = [other for other in members if other["id"] != row["id"]]
        out.append(entry)
    return out


def _plan_groups_shown(entries, path_view) -> list[PlanGroup]:
    def shown(f):
        return duplicate_files.shown(path_view, f["path"], f["source"])

    return [PlanGroup(group=e["group"], skipped=e["skipped"],
                      keep=None if e["keep"] is None else PlanFile(image_id=e["keep"][0]["id"], path=shown(e["keep"][1])),
                      drop_files=[PlanFile(image_id=row["id"], path=shown(f)) for row, f in e["drop_files"]],
                      delete_images=[PlanImage(image_id=row["id"], paths=[shown(f) for f in row["files"]])
                                     for row in e["delete_images"]]) for e in entries]


def _digest(entries) -> str:
    """Identifies what a plan does (the ids and stored paths it keeps and removes)."""
    parts = []
    for e in entries:
        if e["keep"] is None:
            continue
        parts.append([e["keep"][0]["id"], e["keep"][1]["path"], sorted((r["id"], f["path"]) for r, f in e["drop_files"]),
                      sorted(r["id"] for r in e["delete_images"])])
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def resolve(ctx, ps: PairSet, *, tier: str, threshold=None, keep: str = "oldest", pattern: str | None = None,
            groups=None, apply: bool = False, digest: str | None = None, delete_files: bool = False,
            path_view=None) -> DuplicatesPlan:
    """Keep one file of each group of a tier (chosen by the ``keep`` rule among the files whose
    path matches ``pattern``, when given: see :func:`check_keep`) and remove the rest
    from the collection: the kept image's other files are dropped as records (the image stays),
    the group's other images are deleted (with their vectors; the indexes follow). ``groups``:
    group numbers (1 = the first of the tier's order) to act on, default every group.

    Without ``apply``: a preview (nothing changes). With it: the plan is made again from what is
    stored now and carried out; with ``digest`` (the preview's), a plan that changed since is
    refused (409). Files on disk are never touched unless ``delete_files`` (then a removed path
    is deleted only when the kept file is on disk, no image's files include the path any more,
    and its bytes are still the ones ingested)."""
    tier = parse_tier(tier)
    t = tier_threshold(tier, threshold)
    keep, pattern = check_keep(keep, pattern)
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(n, int) and not isinstance(n, bool)
                                                                       for n in groups)):
        raise InvalidInput("groups must be a list of group numbers", field="groups")
    if delete_files and not apply:
        raise InvalidInput("deleting files on disk needs apply", field="delete_files")
    if digest is not None and not apply:
        raise InvalidInput("a plan's digest goes with apply", field="digest")
    entries = _plan_groups(ctx, ps, tier, t, keep, pattern, groups, path_view)
    plan_digest = _digest(entries)
    acted = [e for e in entries if e["keep"] is not None]
    summary = dict(groups=len(entries), groups_acted=len(acted), groups_skipped=len(entries) - len(acted),
                   files_dropped=sum(len(e["drop_files"]) for e in acted),
                   images_deleted=sum(len(e["delete_images"]) for e in acted), files_deleted_on_disk=0)
    plan = dict(collection=ps.collection, backbone=ps.space, tier=tier,
                threshold=None if tier == "exact" else round(t, 6), keep=keep, pattern=pattern, digest=plan_digest, groups=_plan_groups_shown(entries, path_view))
    if not apply:
        return DuplicatesPlan(**plan, applied=False, summary=PlanSummary(**summary), disk=[])
    if digest is not None and digest != plan_digest:
        raise Conflict("the duplicate groups changed since the preview (images added, deleted or re-grouped): "
                       "preview again", field="digest", details={"digest": plan_digest})
    _apply(ctx, collection_id_of(ctx, ps), acted)
    disk = []
    if delete_files:
        disk = [DiskFile(path=duplicate_files.shown(path_view, d["path"], d["source"]), deleted=d["deleted"],
                         reason=d["reason"]) for d in _delete_on_disk(ctx, acted)]
        summary["files_deleted_on_disk"] = sum(1 for d in disk if d.deleted)
    return DuplicatesPlan(**plan, applied=True, summary=PlanSummary(**summary), disk=disk)


def _apply(ctx, collection_id: int, acted: list[dict]) -> None:
    """Drop the extra file records and delete the other images, in one transaction."""
    from sqlalchemy import delete as sql_delete

    drop: dict[int, tuple[dict, list[str]]] = {}
    for e in acted:
        row, kept = e["keep"]
        if e["drop_files"]:
            drop[row["id"]] = (kept, [f["path"] for _, f in e["drop_files"]])
    doomed = sorted({r["id"] for e in acted for r in e["delete_images"]})
    hashes = sorted({r["content_hash"] for e in acted for r in e["delete_images"]})
    with ctx.db.session() as s:
        for image_id in sorted(drop):  # (image rows in id order, as every writer of them)
            kept, paths = drop[image_id]
            gone = 0
            for chunk in range(0, len(paths), repo.IN_CHUNK):
                gone += s.execute(sql_delete(ImageFile).where(ImageFile.image_id == image_id,
                                                              ImageFile.path.in_(paths[chunk:chunk + repo.IN_CHUNK]))
                                  ).rowcount or 0
            upsert.add_file_count(s, image_id, -gone)
            img = s.get(Image, image_id)
            if img is not None and img.source_path != kept["path"]:
                img.source_path = kept["path"]  # the kept file becomes the first
        spaces: set[str] = set()
        for chunk in repo.in_chunks(doomed):
            spaces.update(s.scalars(select(Embedding.space).where(Embedding.image_id.in_(chunk)).distinct()))
            s.execute(sql_delete(Image).where(Image.collection_id == collection_id, Image.id.in_(chunk)))
    if doomed:
        ctx.indexes.images_deleted(collection_id, sorted(spaces))
        kept_originals.forget(ctx, hashes)


def _delete_on_disk(ctx, acted: list[dict]) -> list[dict]:
    """Delete the removed files from disk where that is safe; one entry per removed path."""
    import os
    from pathlib import Path

    removed: list[tuple[dict, dict, dict]] = []  # (kept file, the removed file's image row, the removed file)
    for e in acted:
        row, kept = e["keep"]
        removed += [(kept, row, f) for _, f in e["drop_files"]]
        removed += [(kept, other, f) for other in e["delete_images"] for f in other["files"]]
    with ctx.db.session() as s:
        still = set()
        for start in range(0, len(removed), repo.IN_CHUNK):
            paths = sorted({f["path"] for _, _, f in removed[start:start + repo.IN_CHUNK]})
            still.update(s.scalars(select(ImageFile.path).where(ImageFile.path.in_(paths))))
    out = []
    for kept, row, f in removed:
        path, why = Path(f["path"]), None
        if not path.is_absolute():
            why = "not a path on this machine"
        elif f["path"] in still:
            why = "another image's file (still in a collection)"
        elif not Path(kept["path"]).is_file():
            why = "the kept file is not on disk"
        elif not path.is_file():
            why = "not on disk"
        else:
            try:
                if content_hash(path.read_bytes()) != row["content_hash"]:
                    why = "its bytes changed since it was ingested"
            except OSError as exc:
                why = f"cannot read it ({exc.strerror or exc})"
        if why is None:
            try:
                os.remove(path)
            except OSError as exc:
                why = f"cannot delete it ({exc.strerror or exc})"
        out.append({"path": f["path"], "source": f["source"], "deleted": why is None, "reason": why})
    return out


# ---- export: every group with every path ---------------------------------------------------------

EXPORT_FORMATS = ("csv", "json")
CSV_COLUMNS = ("group", "group_images", "group_files", "image_id", "path", "first_path", "file_count", "size", "mtime",
               "width", "height", "label", "max_similarity")


def export(ctx, ps: PairSet, *, tier: str, threshold=None, fmt: str = "csv", path_view=None) -> str:
    """Every group of a tier with every path, as CSV (one row per file) or JSON (the listing's
    shape, every group on one page)."""
    import csv
    import io
    import json

    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(f"format must be csv or json, not {fmt!r}", field="format")
    result = groups(ctx, ps, tier=tier, threshold=threshold, page=1, per_page=None, path_view=path_view)
    if fmt == "json":
        return json.dumps(result.exported(), ensure_ascii=False, indent=1) + "\n"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for g in result.groups:
        for img in g.images:
            for k, f in enumerate(img.files):
                w.writerow([g.group, g.size, g.files, img.id, f.path, "yes" if k == 0 else "no",
                            img.file_count, "" if f.size is None else f.size, f.mtime or "",
                            img.width or "", img.height or "", img.label or "", g.max_similarity])
    return buf.getvalue()
