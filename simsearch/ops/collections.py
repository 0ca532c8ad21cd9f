"""Collections: their summaries (the same for the API, the UI and the CLI), create, rename, delete."""

from __future__ import annotations

from sqlalchemy import delete as sql_delete, func, select, update as sql_update
from sqlalchemy.exc import IntegrityError

from simsearch import limits
from simsearch.errors import Conflict, InvalidInput, NotFound
from simsearch.jobs import kept_originals
from simsearch.store import lifecycle
from simsearch.jobs.manifest import run_folder
from simsearch.jobs.staging import remove_quietly
from simsearch.jobs.status import iso
from simsearch.store import repo
from simsearch.ops.jobs import shown as shown_job
from simsearch.store.models import AnalysisResult, Collection, Image, IndexState, IngestRun
from simsearch.text import plural

MAX_DESCRIPTION = limits.DESCRIPTION_MAX
RECENT_JOBS = 5


def _index_info(ctx, state: IndexState | None) -> dict | None:
    """What the index policy chose and measured for one index (None: never built)."""
    if state is None or state.kind is None:
        return None
    masked = len(state.masked or b"") // 8
    return {"kind": state.kind, "recall": state.recall, "target_recall": ctx.indexes.policy.target_recall,
            "params": state.params or {}, "memory_bytes": state.memory_bytes, "build_seconds": state.build_seconds,
            "built_at": iso(state.built_at), "vectors": state.vector_count, "masked": masked,
            "recall_checked_at_vectors": state.checked_count, "generation": state.generation,
            "building": ctx.indexes.building(state.collection_id, state.space)}


def _summary(ctx, s, coll: Collection) -> dict:
    counts = repo.image_counts(s, coll.id)
    vectors = repo.vector_counts(s, coll.id)
    states = {st.space: st for st in s.scalars(select(IndexState).where(IndexState.collection_id == coll.id))}
    spaces = {}
    for space in repo.spaces_of(s, coll.id):
        cached = ctx.indexes.cached(coll.id, space)
        spaces[space] = {"vectors_in_db": vectors.get(space, 0), "vectors_in_index": cached.ntotal if cached else None,
                         "index": _index_info(ctx, states.get(space))}
    return {"name": coll.name, "id": coll.id, "description": coll.description, "created_at": iso(coll.created_at),
            "images_ok": counts.get("ok", 0), "images_failed": counts.get("failed", 0), "backbones": spaces}


def _check_indexes(ctx, summary: dict) -> dict:
    """Open (and check, rebuilding if needed) each index of the summary, and count its vectors."""
    for space, info in summary["backbones"].items():
        info["vectors_in_index"] = ctx.index(summary["id"], space, verify=True).ntotal
        with ctx.db.session() as s:  # the check may have built it
            info["index"] = _index_info(ctx, repo.index_state(s, summary["id"], space))
    return summary


def list_collections(ctx, *, check_indexes: bool = False) -> list[dict]:
    """Every collection's summary, by name: image counts and, per backbone (space), the vectors
    in the database and in the index. ``vectors_in_index`` is the open index's count (None when
    this process has not opened it), or with ``check_indexes`` the checked index's."""
    with ctx.db.session() as s:
        rows = [_summary(ctx, s, c) for c in s.scalars(select(Collection).order_by(Collection.name))]
    if check_indexes:  # after the session: a check may write the index state
        rows = [_check_indexes(ctx, r) for r in rows]
    return rows


def collection_names(ctx) -> list[str]:
    with ctx.db.session() as s:
        return list(s.scalars(select(Collection.name).order_by(Collection.name)))


def summary(ctx, name: str) -> dict:
    with ctx.db.session() as s:
        return _summary(ctx, s, repo.get_collection(s, name))


def detail(ctx, name: str) -> dict:
    """The summary plus the labels of its images (with counts, most frequent first; ``None``:
    unlabelled) and its latest ingest jobs."""
    with ctx.db.session() as s:
        coll = repo.get_collection(s, name)
        out = _summary(ctx, s, coll)
        labels = s.execute(select(Image.label, func.count()).where(Image.collection_id == coll.id, Image.status == "ok")
                           .group_by(Image.label).order_by(func.count().desc(), Image.label)).all()
        out["labels"] = [{"label": lab, "count": n} for lab, n in labels]
        out["recent_jobs"] = [shown_job(r, coll.name, s) for r in repo.latest_runs(s, coll.id, RECENT_JOBS)]
    return out


def spaces(ctx, name: str) -> tuple[int, list[str]]:
    """The collection's id and the spaces it has vectors in."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, name).id
        return coll_id, repo.spaces_of(s, coll_id)


def create(ctx, name, description=None) -> dict:
    """A new, empty collection (409 when the name is taken); returns its summary."""
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        raise InvalidInput(f"description must be a string of at most {MAX_DESCRIPTION:,} characters", field="description")
    repo.validate_collection_name(name)
    taken = Conflict(f"a collection named {name!r} already exists", field="name")
    with ctx.db.session() as s:
        if s.scalar(select(Collection.id).where(Collection.name == name)) is not None:
            raise taken
        coll = Collection(name=name, description=description)
        s.add(coll)
        try:
            s.flush()
        except IntegrityError:  # created by another request since the lookup (the name is unique)
            raise taken from None
        return _summary(ctx, s, coll)


def rename(ctx, name: str, new_name: str) -> dict:
    """Rename a collection (409 when ``new_name`` is taken, or while one of its jobs is queued or
    running: a job finds its collection by name). Its images, vectors and indexes are kept (they
    belong to the collection's id); its cached analyses are dropped, since they carry the name
    (the next clusters, map or evaluation recomputes them). Returns the renamed summary.

    Safe under parallel requests: the rename is one ``UPDATE ... WHERE id = ? AND name = ?``, so
    of several renames of one collection the first wins and the others find no collection named
    ``name`` (404); of several renames to one new name the first wins and the others hit the
    unique name (409), whichever statement meets it first."""
    repo.validate_collection_name(new_name)
    taken = Conflict(f"a collection named {new_name!r} already exists", field="name")
    with ctx.db.session() as s, s.no_autoflush:
        coll = repo.get_collection(s, name)
        if new_name == name:
            return _summary(ctx, s, coll)
        if s.scalar(select(Collection.id).where(Collection.name == new_name)) is not None:
            raise taken
        busy = _unfinished_jobs(s, coll.id)
        if busy:
            raise Conflict(f"collection {name!r} has {plural(busy, 'queued or running job')}: rename it "
                           "when they have ended", field="name")
        try:
            renamed = s.execute(sql_update(Collection).where(Collection.id == coll.id, Collection.name == name)
                                .values(name=new_name).execution_options(synchronize_session=False)).rowcount
        except IntegrityError:  # taken by another request since the lookup (the name is unique)
            raise taken from None
        if renamed != 1:  # renamed or deleted by another request since the lookup
            raise _gone(name)
        s.execute(sql_delete(AnalysisResult).where(AnalysisResult.collection_id == coll.id))
        s.expire(coll)
        return _summary(ctx, s, coll)


def _gone(name: str) -> NotFound:
    return NotFound(f"no collection named {name!r} (it was renamed or deleted meanwhile)", field="collection")


# Jobs that hold a collection: every kind but a background index rebuild (a derived cache that the
# collection's deletion removes anyway).
def _unfinished_jobs(s, coll_id: int, *, kinds_except=("index", )) -> int:
    return s.scalar(select(func.count()).select_from(IngestRun).where(
        IngestRun.collection_id == coll_id, IngestRun.status.in_([u.value for u in lifecycle.UNFINISHED]),
        IngestRun.kind.not_in(kinds_except)))


def delete(ctx, name: str, *, force: bool = False) -> dict:
    """Delete a collection: its images, vectors, jobs, index files and staged job folders, and the
    kept originals of its images that no other collection has.

    409 while one of its jobs is queued or running, unless ``force``: then its jobs are cancelled
    first (marked failed, and their queued work dropped), the collection is deleted, and a job
    still running stops at its next write (its collection is gone). Under parallel requests one
    delete wins; the others are 404, as a later delete would be."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, name).id
        busy = _unfinished_jobs(s, coll_id)
    if busy and not force:
        raise Conflict(f"collection {name!r} has {plural(busy, 'queued or running job')}: delete it when they have "
                       "ended, or force it (API: ?force=true, CLI: --force), which cancels them first",
                       field="collection", details={"jobs": busy})
    if busy:
        cancel_jobs(ctx, coll_id, f"cancelled: collection {name!r} was deleted")
    kept = kept_originals.kept_of_collection(ctx, coll_id)
    with ctx.db.session() as s:
        counts = repo.image_counts(s, coll_id)
        run_ids = list(s.scalars(select(IngestRun.id).where(IngestRun.collection_id == coll_id)))
        if not force and _unfinished_jobs(s, coll_id):  # a job queued since the check
            raise Conflict(f"collection {name!r} has a job queued meanwhile: delete it when it has ended, or force it",
                           field="collection")
        deleted = s.execute(sql_delete(Collection).where(Collection.id == coll_id, Collection.name == name)
                            .execution_options(synchronize_session=False)).rowcount
        if deleted != 1:  # deleted (or renamed) by another request since the lookup
            raise _gone(name)
    ctx.indexes.remove_collection(coll_id)  # its folder, the descriptor index's files too
    if getattr(ctx, "descriptors", None) is not None:
        ctx.descriptors.forget(coll_id)
    for run_id in run_ids:
        remove_quietly(run_folder(ctx.settings, run_id))
    kept_originals.forget(ctx, kept)
    return {"deleted": name, "images": counts.get("ok", 0) + counts.get("failed", 0)}


def cancel_jobs(ctx, coll_id: int, message: str) -> list[int]:
    """Mark the collection's queued and running jobs failed with ``message`` (a queued one is then
    never started: runners only start queued or running jobs) and drop their queued shards.
    Returns their ids."""
    return lifecycle.cancel(ctx.db, coll_id, message)


def reindex(ctx, *, collection: str | None = None, backbone: str | None = None, check: bool = False,
            progress=None) -> list[dict]:
    """Rebuild the indexes of one collection or all, of one space or all, from the database.
    ``check``: run the recall check instead (re-tune, or rebuild only when re-tuning cannot reach
    the target recall). ``progress(message, done, total)`` is called before each index and at the end."""
    import time

    with ctx.db.session() as s:
        if collection:
            colls = [repo.get_collection(s, collection)]
        else:
            colls = list(s.scalars(select(Collection).order_by(Collection.name)))
        targets = [(c.id, c.name, sp) for c in colls for sp in repo.spaces_of(s, c.id) if backbone in (None, sp)]
    out = []
    for done, (coll_id, name, space) in enumerate(targets):
        if progress is not None:
            progress(f"{name} / {space}", done, len(targets))
        t0 = time.perf_counter()
        row = {"collection": name, "backbone": space}
        if check:
            row.update(ctx.indexes.check_recall(coll_id, space))
            loaded = ctx.indexes.cached(coll_id, space)
        else:
            loaded = ctx.indexes.sync(coll_id, space, force_rebuild=True)
            row["kind"] = loaded.kind
        row.update(vectors=loaded.ntotal, generation=loaded.generation, seconds=round(time.perf_counter() - t0, 3))
        out.append(row)
    if progress is not None:
        progress("done", len(targets), len(targets))
    return out
