"""Sorting and filtering a collection's images (the browse grid, ``GET .../images``), without Flask.

:class:`Browse` holds what a request may ask for, checked (:func:`check`, 400 naming the field);
:func:`apply` adds it to a ``SELECT`` of :class:`~simsearch.store.models.Image`. The filters:

- ``label`` (exactly) or ``labelled`` (true: any label, false: none);
- ``path``: text found (ignoring case) in any of the image's file paths, as responses show them
  (``path_view``: the web's view of a path inside its upload or ingested folder, so that a filter
  never matches the part of a path the server keeps to itself);
- ``min_size`` / ``max_size``: the file's size in bytes (every file of an image has the same bytes);
- ``added_after`` / ``added_before``: when the image was added (inclusive bounds, UTC);
- ``run``: the ingest run (job id) that read one of its files (a sharded run: one of its shards).

Sorts: ``id`` (the default), ``added``, ``path``, ``size``, ``pixels``, ``label``; ``-`` first for
descending. Ties go by id, so pages never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from sqlalchemy import and_, bindparam, exists, func, or_, select

from simsearch.errors import InvalidInput, NotFound
from simsearch.store.models import Image, ImageFile, IngestRun, max_id

SORTS = ("id", "added", "path", "size", "pixels", "label")
SORT_CHOICES = tuple(s for key in SORTS for s in (key, f"-{key}"))
PATH_TEXT_MAX = 1000
SIZE_MAX = 2**63 - 1


@dataclass
class Browse:
    """A checked sort and filter set (None: not asked)."""

    sort: str = "id"
    labelled: bool | None = None
    path: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    added_after: datetime | None = None
    added_before: datetime | None = None
    run: int | None = None
    shown: dict = field(default_factory=dict)  # the filters as the response echoes them

    @property
    def any(self) -> bool:
        return bool(self.shown)


def _when(value, name: str, *, end: bool) -> datetime | None:
    """A date or date-time (ISO 8601) as an aware UTC datetime; a plain date covers its whole day."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime(value.year, value.month, value.day, 23, 59, 59, 999999) if end else \
            datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return _when(date.fromisoformat(text), name, end=end)
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{name} must be a date (2026-01-31) or a date and time (2026-01-31T12:00:00Z), "
                               f"not {value!r}", field=name) from None
    else:
        raise InvalidInput(f"{name} must be a date or a date and time", field=name)
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _size(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SIZE_MAX:
        raise InvalidInput(f"{name} must be a whole number of bytes (0 or more)", field=name)
    return value


def check(*, sort: str | None = None, labelled=None, path=None, min_size=None,
          max_size=None, added_after=None, added_before=None, run=None) -> Browse:
    """The sort and filters, checked: :class:`InvalidInput` naming the first bad one. Filters
    that contradict each other (``min_size`` above ``max_size``, ``label`` with ``labelled=false``)
    are not errors: no image matches them all."""
    b = Browse(sort=sort or "id")
    if b.sort not in SORT_CHOICES:
        raise InvalidInput(f"sort must be one of {', '.join(SORTS)} (a leading '-' for descending), not {sort!r}",
                           field="sort")
    if labelled is not None:
        if not isinstance(labelled, bool):
            raise InvalidInput("labelled must be true or false", field="labelled")
        b.labelled = b.shown["labelled"] = labelled
    if path is not None:
        if not isinstance(path, str) or "\x00" in path or len(path) > PATH_TEXT_MAX:
            raise InvalidInput(f"path must be text of at most {PATH_TEXT_MAX} characters", field="path")
        if path.strip():  # blank: not given
            b.path = b.shown["path"] = path.strip()
    b.min_size, b.max_size = _size(min_size, "min_size"), _size(max_size, "max_size")
    b.added_after = _when(added_after, "added_after", end=False)
    b.added_before = _when(added_before, "added_before", end=True)
    if run is not None:
        if isinstance(run, bool) or not isinstance(run, int) or run < 1:
            raise InvalidInput("run must be an ingest job's id (a whole number from 1)", field="run")
        b.run = b.shown["run"] = run
    for key in ("min_size", "max_size"):
        if getattr(b, key) is not None:
            b.shown[key] = getattr(b, key)
    for key in ("added_after", "added_before"):
        if getattr(b, key) is not None:
            b.shown[key] = getattr(b, key).isoformat().replace("+00:00", "Z")
    return b


def size_of():
    """The image's file size in bytes (a scalar subquery: its files all have the same bytes)."""
    return select(func.max(ImageFile.size)).where(ImageFile.image_id == Image.id).correlate(Image).scalar_subquery()


def _path_ids(s, collection_id: int, text: str, path_view) -> tuple[str, list[int]] | None:
    """Which images a path text matches when paths are shown other than stored: ``("in", ids)``
    or ``("not in", ids)`` (whichever list is shorter), applied after the stored-path match;
    None when the stored-path match is exact (no path hides a part that matched)."""
    needle = text.lower()
    rows = s.execute(select(ImageFile.image_id, ImageFile.path, IngestRun.source)
                     .join(Image, Image.id == ImageFile.image_id)
                     .outerjoin(IngestRun, IngestRun.id == ImageFile.ingest_run_id)
                     .where(Image.collection_id == collection_id,
                            func.lower(ImageFile.path).contains(needle, autoescape=True))).all()
    kept: set[int] = set()
    seen: set[int] = set()
    for image_id, path, source in rows:
        seen.add(image_id)
        if needle in (path_view(path, source) or "").lower():
            kept.add(image_id)
    dropped = seen - kept
    if not dropped:
        return None
    return ("in", sorted(kept)) if len(kept) <= len(dropped) else ("not in", sorted(dropped))


def _ids_param(name: str, ids: list[int]):
    # integers rendered into the statement: no limit on bound parameters (SQLite, PostgreSQL)
    return bindparam(name, value=ids, expanding=True, literal_execute=True)


def apply(s, q, b: Browse, collection_id: int, *, path_view=None):
    """``q`` (a SELECT of images of the collection) filtered and sorted as ``b`` says.
    Raises :class:`NotFound` (field ``run``) for a run that is not one of the collection's."""
    if b.labelled is True:
        q = q.where(Image.label.is_not(None))
    elif b.labelled is False:
        q = q.where(Image.label.is_(None))
    if b.path is not None:
        needle = b.path.lower()
        q = q.where(exists().where(ImageFile.image_id == Image.id,
                                   func.lower(ImageFile.path).contains(needle, autoescape=True)))
        if path_view is not None:
            narrowed = _path_ids(s, collection_id, b.path, path_view)
            if narrowed is not None:
                how, ids = narrowed
                if how == "in":
                    q = q.where(Image.id.in_(_ids_param("path_ids", ids))) if ids else q.where(False)
                else:
                    q = q.where(Image.id.not_in(_ids_param("path_ids", ids)))
    if b.min_size is not None or b.max_size is not None:
        size = size_of()
        if b.min_size is not None:
            q = q.where(size >= b.min_size)
        if b.max_size is not None:
            q = q.where(size <= b.max_size)
    if b.added_after is not None:
        q = q.where(Image.created_at >= b.added_after)
    if b.added_before is not None:
        q = q.where(Image.created_at <= b.added_before)
    if b.run is not None:
        if b.run > max_id(s.get_bind().dialect.name) or s.scalar(
                select(IngestRun.id).where(IngestRun.id == b.run, IngestRun.collection_id == collection_id)) is None:
            raise NotFound(f"no ingest job {b.run} in this collection", field="run")
        # a sharded ingest's images carry its shards' ids
        runs = [b.run, *s.scalars(select(IngestRun.id).where(IngestRun.parent_id == b.run))]
        q = q.where(or_(Image.ingest_run_id.in_(runs),
                        exists().where(and_(ImageFile.image_id == Image.id, ImageFile.ingest_run_id.in_(runs)))))
    return q.order_by(*order(b.sort))


def order(sort: str) -> list:
    """ORDER BY clauses: the key (nulls last either way), then the id in the same direction."""
    desc = sort.startswith("-")
    key = sort.lstrip("-")
    column = {"id": None, "added": Image.created_at, "path": Image.source_path, "size": size_of(),
              "pixels": Image.width * Image.height, "label": Image.label}[key]
    by_id = Image.id.desc() if desc else Image.id.asc()
    if column is None:
        return [by_id]
    return [(column.desc() if desc else column.asc()).nulls_last(), by_id]
