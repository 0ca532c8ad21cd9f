"""Bringing an index up to date without a full rebuild (called by the index manager, under its
writer lock).

- The ids the index holds, less the ones it masks, must equal the database's vector ids of its
  (collection, space) before it is used; :func:`update` makes them equal, or answers None (the
  manager then rebuilds from the database).
- Adds are appended (IVF: added to their lists; HNSW: inserted in the graph). Deletes are
  removed from a flat index; the kinds that mask them (``IndexKind.masks_deletions``: the
  approximate ones) keep their ids in ``index_states.masked`` and leave them out of every search
  (nothing is written); beyond ``compact_fraction`` of the index they are compacted: removed in
  place (``IndexKind.compacts_in_place``: an IVF kind's lists and codes, :func:`compact`), or by
  a rebuild (HNSW).
- A rebuild instead when: the policy wants another kind for the new size, an id comes back that
  the index still holds under a mask (SQLite may reuse the largest id), the dimension differs,
  the file is missing or corrupt, more than ``compact_fraction`` is masked (compaction), or the
  recall check after growth fails even when re-tuned. In the last cases (and a kind change with no
  other change) the index at hand is still correct: a large one is rebuilt in the background.
- The index an open :class:`LoadedIndex` holds is never changed: changes are made on a copy read
  from the file, saved, and handed over as a new generation (searches in flight keep the old one).
- With mapping on (``IndexManager.mmap``, kinds with ``maps_file``) an index is opened mapped
  read-only from its file; an add or a removal reads a private copy into memory, changes it,
  saves it (a new file, renamed over the old one: processes that map the old one keep its inode)
  and maps the saved file in its place. Kinds that do not map are read into memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from simsearch.store import repo
from simsearch.errors import IndexCorrupt
from simsearch.index import kinds
from simsearch.index.faiss_index import LoadedIndex, index_ids, load_index, save_index
from simsearch.index.policy import ground_truth, measure, tune

log = logging.getLogger("simsearch.index")


@dataclass(frozen=True)
class Prior:
    """What ``index_states`` said before the update (plain values: the session is closed)."""

    generation: int | None
    fingerprint: str | None
    kind: str | None
    masked: np.ndarray
    checked_count: int | None

    @classmethod
    def of(cls, state) -> "Prior":
        if state is None:
            return cls(None, None, None, np.zeros(0, np.int64), None)
        return cls(state.generation, state.fingerprint, state.kind, repo.masked_ids(state), state.checked_count)


def masked_info(masked: np.ndarray) -> dict:
    return {"masked": np.ascontiguousarray(np.sort(masked), dtype="<i8").tobytes() if len(masked) else None}


def update(manager, collection_id: int, space: str, db_ids: np.ndarray, fp: str, prior: Prior, cached):
    """(LoadedIndex, info for ``index_states`` or None, why a rebuild is due or None).

    No index ((None, None, reason)): rebuild now. An index and a reason: the index is correct
    (its searches exclude what they must) but should be rebuilt: compacted, of another kind, or
    below the recall target; the manager rebuilds it in the background when it is large, and
    searches use this one meanwhile."""
    quick = _mask_open_index(manager.policy, cached, db_ids, fp, prior)
    if quick is not None:
        return quick
    return _update_file(manager, collection_id, space, db_ids, fp, prior)


def _mask_open_index(policy, cached, db_ids, fp, prior):
    """Only deletions, on an open index of a masking kind: a bigger mask, nothing read or written."""
    if cached is None or not kinds.behaviour(cached.kind).masks_deletions:
        return None
    held = cached.positions().id_map
    live = np.setdiff1d(held, cached.masked)
    if len(np.setdiff1d(db_ids, live)) or policy.kind_for(len(db_ids), current=cached.kind, dim=cached.index.d) != cached.kind:
        return None
    masked = np.union1d(cached.masked, np.setdiff1d(live, db_ids))
    out = LoadedIndex(index=cached.index, fingerprint=fp, generation=prior.generation or 0, kind=cached.kind,
                      masked=masked, exact_subset=policy.exact_subset, _positions=cached.positions())
    return out, masked_info(masked), _compaction_due(policy, masked, len(held))


def _compaction_due(policy, masked: np.ndarray, held: int) -> str | None:
    if len(masked) > policy.compact_fraction * held:
        return f"compaction: {len(masked)} of {held} vectors are masked deletions"
    return None


def _update_file(manager, collection_id: int, space: str, db_ids: np.ndarray, fp: str, prior: Prior):
    policy = manager.policy
    path = manager.path_for(collection_id, space)
    try:
        index = load_index(path, mmap=manager.mmap)
        kind = kinds.kind_of(index)
        of = kinds.behaviour(kind)
        mapped = manager.mmap and of.maps_file
        if manager.mmap and not of.maps_file:
            index = load_index(path)  # a kind not known to map safely: this process's own copy
    except IndexCorrupt as exc:
        if path.exists():
            log.warning("%s; rebuilding from the database", exc.message)
        return None, None, "missing or unreadable"
    held = index_ids(index)
    masked = np.intersect1d(prior.masked, held) if of.masks_deletions else np.zeros(0, np.int64)
    live = np.setdiff1d(held, masked)
    to_add, to_remove = np.setdiff1d(db_ids, live), np.setdiff1d(live, db_ids)
    wanted = policy.kind_for(len(db_ids), current=kind, dim=index.d)
    other_kind = f"the policy wants {wanted} for {len(db_ids)} vectors (it is {kind})" if wanted != kind else None
    if not len(to_add) and not len(to_remove):
        opened = LoadedIndex(index=index, fingerprint=fp, generation=prior.generation or 0, kind=kind, masked=masked,
                             exact_subset=policy.exact_subset, mapped=mapped)
        return opened, None, other_kind or _compaction_due(policy, masked, len(held))
    if other_kind:
        return None, None, other_kind
    changed = bool(len(to_add))
    if mapped and (len(to_add) or not of.masks_deletions):  # about to be changed: a copy in memory
        index, mapped = load_index(path), False
    if of.masks_deletions:
        if len(np.intersect1d(to_add, held)):
            return None, None, "ids masked as deleted are back in the database"
        masked = np.union1d(masked, to_remove)
    elif len(to_remove):
        of.remove(index, to_remove)
        changed = True
    if len(to_add):
        with manager.db.session() as s:
            ids, vectors = repo.load_vectors_for_ids(s, space, to_add)
        if vectors.shape[1] != index.d:
            return None, None, f"new vectors have {vectors.shape[1]} dimensions, the index {index.d}"
        kinds.add(index, ids, vectors)
    if repo.fingerprint(np.setdiff1d(index_ids(index), masked)) != fp:
        return None, None, "its ids do not match the database's after the update"
    loaded = LoadedIndex(index=index, fingerprint=fp, generation=0, kind=kind, masked=masked,
                         exact_subset=policy.exact_subset, mapped=mapped)
    info = masked_info(masked)
    reason = _compaction_due(policy, masked, len(held) + len(to_add))
    if not of.exact and prior.checked_count and loaded.ntotal >= (1 + policy.recheck_growth) * prior.checked_count:
        checked = recheck(manager, collection_id, space, loaded)
        if checked is None:
            reason = reason or f"recall@{policy.k} below {policy.target_recall} after growth, even re-tuned"
        else:
            retuned = checked.pop("retuned")
            changed = changed or retuned
            info.update(checked)
    if changed:
        save_index(index, path)
        if not loaded.mapped:
            loaded.index, loaded.mapped = manager.shared(path, kind, index)  # positions: the same ids, same order
    return loaded, info, reason


def compact(manager, collection_id: int, space: str, loaded):
    """``loaded`` with its masked ids removed for good (IVF kinds: in place on a copy read from the
    file, which is then saved); None when that is not possible (rebuild instead)."""
    of = kinds.behaviour(loaded.kind)
    if not of.compacts_in_place:
        return None
    path = manager.path_for(collection_id, space)
    try:
        index = load_index(path)
    except IndexCorrupt:
        return None
    if not np.array_equal(np.sort(index_ids(index)), np.sort(loaded.positions().id_map)):
        return None  # the file is not the open index
    of.compact(index, loaded.masked)
    if repo.fingerprint(index_ids(index)) != loaded.fingerprint:
        return None
    save_index(index, path)
    log.info("%s: %d masked deletions compacted in place", path, len(loaded.masked))
    index, mapped = manager.shared(path, loaded.kind, index)
    return LoadedIndex(index=index, fingerprint=loaded.fingerprint, generation=0, kind=loaded.kind,
                       exact_subset=manager.policy.exact_subset, mapped=mapped)


def recheck(manager, collection_id: int, space: str, loaded, truth=None):
    """Measure the recall of ``loaded`` (an index no other thread uses) on sampled stored vectors;
    re-tune it when below the target. Returns the state's new record (``retuned``: the knobs
    changed), or None when even re-tuned it misses the target (rebuild)."""
    policy = manager.policy
    if truth is None:
        with manager.db.session() as s:
            ids, vectors = repo.load_vectors(s, collection_id, space)
        truth = ground_truth(ids, vectors, policy)
        del vectors
    recall = measure(loaded.search, truth, policy.k)
    retuned = False
    if recall < policy.target_recall:
        log.warning("index of collection %s / %s: recall@%d %.3f < %.2f with %s: re-tuning", collection_id, space,
                    policy.k, recall, policy.target_recall, kinds.behaviour(loaded.kind).get_params(loaded.index))
        _, recall, _ = tune(loaded.index, loaded.kind, truth, policy, loaded.ntotal, search=loaded.search)
        retuned = True
        if recall < policy.target_recall:
            log.warning("re-tuned, recall@%d is %.3f at best: rebuilding", policy.k, recall)
            return None
    return {"recall": round(recall, 4), "params": kinds.behaviour(loaded.kind).get_params(loaded.index),

            "checked_count": loaded.ntotal, "retuned": retuned}
