"""The index manager: which FAISS index belongs where, and when it is reused, extended or rebuilt.

The database is the source of truth for every vector; an index is a derived cache of one
(collection, space). This module owns:

- the on-disk layout: ``<index_dir>/collection-<id>/<space>.faiss`` (:func:`index_path`), and
  removing a collection's folder;
- the policy that makes an index agree with the database (:meth:`IndexManager.sync`): reuse the
  open or on-disk index when its ids match, update it in place when they differ (adds appended,
  deletes removed or masked: :mod:`simsearch.index.updates`), else rebuild it the way the index
  policy says (:mod:`simsearch.index.policy`: kind, tuning to a recall target); each write bumps
  the generation in ``index_states`` (with the policy's record) so other processes notice;
- while an index is being built or updated, searches in this process use the previous
  generation (:meth:`IndexManager.get` does not wait);
- updates after images are deleted: small indexes now, large ones on a background thread whose
  failures are logged and make the next query rebuild; the recall check on demand
  (:meth:`IndexManager.check_recall`).

FAISS itself is imported only when an index is opened (``simsearch --help`` stays fast).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import text

from simsearch.index import kinds, updates
from simsearch.index.policy import IndexPolicy
from simsearch.paths import collection_index_dir as collection_dir
from simsearch.paths import index_file as index_path
from simsearch.store import repo
from simsearch.errors import IndexCorrupt
from simsearch.index.faiss_index import LoadedIndex, index_ids, load_index, save_index
from simsearch.index.policy import build, ground_truth, measure

log = logging.getLogger("simsearch.index")

# A process that keeps an index open re-checks it against the database this often (seconds);
# in between it trusts the generation number that every index write bumps.
VERIFY_INTERVAL = 30.0
# Indexes at least this large are brought up to date off the request path after a deletion
# (search results never show a deleted image: hits are looked up in the database).
BACKGROUND_UPDATE_AT = 50_000


WRITER_LOCK_WAIT = 3600.0  # seconds a process waits for another's index write (a 1M rebuild takes minutes)


@contextmanager
def writer_lock(db, path: Path, wait: float = WRITER_LOCK_WAIT):
    """Hold the lock of the index file ``path`` across processes. PostgreSQL: an advisory lock
    (every web replica and worker shares the database, wherever it runs). SQLite (one machine):
    an exclusive ``flock`` on ``<path>.lock`` beside the file."""
    if db.dialect == "postgresql":
        key = int.from_bytes(hashlib.blake2b(f"simsearch-index:{path.name}:{path.parent.name}".encode(),
                                             digest_size=8).digest(), "big", signed=True)
        deadline = time.monotonic() + wait
        with db.engine.connect() as conn:
            # pg_try_advisory_lock in a loop: a blocking pg_advisory_lock would hit the statement timeout
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another process has held the lock of {path.name} for {wait:.0f} s")
                conn.rollback()
                time.sleep(0.05)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class IndexManager:
    """Open indexes of one process (thread-safe) and the policy that keeps them right."""

    def __init__(self, db, index_dir: Path, policy: IndexPolicy | None = None, *, mmap: bool = True):
        self.db = db
        # open saved indexes memory-mapped (kinds with ``maps_file``): one copy in the page cache
        # for every process of the machine instead of one per process (settings.index_mmap)
        self.mmap = mmap
        self.index_dir = Path(index_dir)
        self.policy = policy or IndexPolicy()
        self.builds = 0  # full builds in this process (updates in place do not count)
        self.progress = None  # optional callable(message) told the steps of a build
        # optional callable(collection id, space, reason, vectors) -> a job with step(message),
        # done(info, vectors), failed(exc): background rebuilds as rows of the jobs table
        # (simsearch.index.build_jobs; the context sets it)
        self.build_jobs = None
        self._jobs: dict[tuple[int, str], object] = {}  # background rebuilds: their job
        self._deferred: dict[tuple[int, str], str] = {}  # background rebuilds: their current step
        self._lock = threading.Lock()
        self._open: dict[tuple[int, str], object] = {}
        self._verified_at: dict[tuple[int, str], float] = {}
        self._sync_locks: dict[tuple[int, str], threading.Lock] = {}
        self._background: ThreadPoolExecutor | None = None

    # ---- layout ------------------------------------------------------------------------
    def path_for(self, collection_id: int, space: str) -> Path:
        return index_path(self.index_dir, collection_id, space)

    def remove_collection(self, collection_id: int) -> None:
        """Forget a deleted collection's open indexes and remove its folder."""
        self.forget(collection_id)
        shutil.rmtree(collection_dir(self.index_dir, collection_id), ignore_errors=True)

    def shared(self, path: Path, kind: str, index):
        """(index, mapped): the file just saved at ``path`` (under the writer lock) mapped in place
        of ``index``, this process's copy, when mapping is on and ``kind`` maps; else ``index``."""
        if not (self.mmap and kinds.behaviour(kind).maps_file):
            return index, False
        return load_index(path, mmap=True, check=False), True

    # ---- open indexes ------------------------------------------------------------------
    def cached(self, collection_id: int, space: str):
        """The open index of (collection, space), unchecked, or None."""
        return self._open.get((collection_id, space))

    def forget(self, collection_id: int, space: str | None = None) -> None:
        with self._lock:
            for key in list(self._open):
                if key[0] == collection_id and (space is None or key[1] == space):
                    del self._open[key]

    def get(self, collection_id: int, space: str, *, verify: bool | None = None, state_generation=...):
        """The checked index of (collection, space): rebuilt from the database when needed.

        ``verify``: True re-checks against the database now; False trusts a cached index whose
        generation matches; None re-checks every :data:`VERIFY_INTERVAL` seconds.
        ``state_generation``: the generation in ``index_states`` that the caller has just read
        (``None``: no row), to save this method the query."""
        key = (collection_id, space)
        cached = self.cached(collection_id, space)
        if cached is not None and verify is not True:
            lock = self._sync_locks.get(key)
            if lock is not None and lock.locked():
                return cached  # being built or updated (another thread): the previous generation meanwhile
            fresh = time.monotonic() - self._verified_at.get(key, 0.0) < VERIFY_INTERVAL
            if state_generation is ...:
                with self.db.session() as s:
                    state = repo.index_state(s, collection_id, space)
                state_generation = state.generation if state is not None else None
            if state_generation is not None and state_generation == cached.generation and (fresh or verify is False):
                return cached
        return self.sync(collection_id, space)

    # ---- policy ------------------------------------------------------------------------
    def sync(self, collection_id: int, space: str, *, force_rebuild: bool = False):
        """Make the index agree with the database: reuse, extend with missing vectors, or rebuild."""
        key = (collection_id, space)
        with self._lock:
            key_lock = self._sync_locks.setdefault(key, threading.Lock())
        # one writer per index file: in this process (the thread lock) and across processes and
        # machines (a lock in the database), so many workers can finish jobs into one collection
        with key_lock, writer_lock(self.db, self.path_for(collection_id, space)):
            loaded = self._sync(collection_id, space, force_rebuild)
        with self._lock:
            self._open[key] = loaded
        self._verified_at[key] = time.monotonic()
        return loaded

    def _sync(self, collection_id: int, space: str, force_rebuild: bool):
        with self.db.session() as s:
            db_ids = repo.vector_ids(s, collection_id, space)
            prior = updates.Prior.of(repo.index_state(s, collection_id, space))
        fp = repo.fingerprint(db_ids)
        loaded, info, reason = None, None, None
        if not force_rebuild:
            cached = self.cached(collection_id, space)
            if cached is not None and cached.fingerprint == fp:
                loaded = cached
            else:
                loaded, info, reason = updates.update(self, collection_id, space, db_ids, fp, prior, cached)
        if loaded is not None and reason is not None and reason.startswith("compaction"):
            compacted = updates.compact(self, collection_id, space, loaded)
            if compacted is not None:
                loaded, info, reason = compacted, dict(info or {}, masked=None), None
        if loaded is not None and reason is not None:
            if loaded.ntotal < BACKGROUND_UPDATE_AT:
                loaded = None  # small: rebuilt now
            else:  # large: rebuilt in the background; searches use this one meanwhile
                self._defer_rebuild(collection_id, space, reason, len(db_ids))
        if loaded is None:
            if reason:
                log.info("index of collection %s / %s: rebuilding (%s)", collection_id, space, reason)
            loaded, info = self._rebuild(collection_id, space)
        if prior.generation is None or prior.fingerprint != loaded.fingerprint or info:
            with self.db.session() as s:
                new_state = repo.record_index_state(s, collection_id, space, loaded.ntotal, loaded.fingerprint, info)
                loaded.generation = new_state.generation
        return loaded

    def _rebuild(self, collection_id: int, space: str):
        """Build from the database as the policy says, tuned; save; (LoadedIndex, state record)."""
        with self.db.session() as s:
            ids, vectors = repo.load_vectors(s, collection_id, space)
        if not len(ids):
            vectors = np.zeros((0, 1), np.float32)
        key = (collection_id, space)

        def say(message: str) -> None:
            log.info("index of collection %s / %s: %s", collection_id, space, message)
            if key in self._deferred:
                self._deferred[key] = message
                job = self._jobs.get(key)
                if job is not None:
                    job.step(message)
            if self.progress is not None:
                self.progress(message)

        built = build(ids, vectors, self.policy, progress=say)
        del vectors
        path = self.path_for(collection_id, space)
        save_index(built.index, path)
        self.builds += 1
        log.info("index of collection %s / %s: %s, %d vectors, recall@%d %.3f, %s, %.1f s", collection_id, space,
                 built.kind, len(ids), self.policy.k, built.recall, built.params, built.seconds)
        for kind, why in built.rejected.items():
            log.info("index of collection %s / %s: not %s: %s", collection_id, space, kind, why)
        info = {"kind": built.kind, "params": built.params, "recall": round(built.recall, 4),
                "memory_bytes": path.stat().st_size, "build_seconds": round(built.seconds, 2),
                "checked_count": len(ids), "masked": None}
        fingerprint = repo.fingerprint(index_ids(built.index))
        index, mapped = self.shared(path, built.kind, built.index)
        built.index = None  # this process's copy: freed, the mapped file replaces it
        loaded = LoadedIndex(index=index, fingerprint=fingerprint, generation=0, rebuilt=True, kind=built.kind,
                             exact_subset=self.policy.exact_subset, mapped=mapped)
        return loaded, info

    def check_recall(self, collection_id: int, space: str) -> dict:
        """The recall check: measure the index's recall@k on sampled stored vectors now, re-tune it
        if it misses the target (a bad parameter set), rebuild it if re-tuning cannot reach it.
        Returns {"recall_before", "recall", "params", "action": "ok" | "retuned" | "rebuilt"}."""
        current = self.get(collection_id, space, verify=True)
        key = (collection_id, space)
        with self._lock:
            key_lock = self._sync_locks.setdefault(key, threading.Lock())
        with key_lock, writer_lock(self.db, self.path_for(collection_id, space)):
            with self.db.session() as s:
                ids, vectors = repo.load_vectors(s, collection_id, space)
            if kinds.behaviour(current.kind).exact or not len(ids):
                before = after = 1.0
                action, loaded, info = "ok", current, {"recall": 1.0, "checked_count": len(ids)}
            else:
                truth = ground_truth(ids, vectors, self.policy)
                del vectors
                before = measure(current.search, truth, self.policy.k)
                mapped = self.mmap and kinds.behaviour(current.kind).maps_file  # re-tuning sets knobs only
                copy = LoadedIndex(index=load_index(self.path_for(collection_id, space), mmap=mapped),
                                   fingerprint=current.fingerprint, generation=current.generation, kind=current.kind,
                                   masked=current.masked, exact_subset=self.policy.exact_subset, mapped=mapped)
                if repo.fingerprint(np.setdiff1d(index_ids(copy.index), copy.masked)) != current.fingerprint:
                    raise IndexCorrupt("the index file changed during the recall check: run it again")
                checked = updates.recheck(self, collection_id, space, copy, truth=truth)
                if checked is None:
                    loaded, info = self._rebuild(collection_id, space)
                    action, after = "rebuilt", info["recall"]
                else:
                    action = "retuned" if checked.pop("retuned") else "ok"
                    if action == "retuned":
                        save_index(copy.index, self.path_for(collection_id, space))
                    loaded, info, after = copy, checked, checked["recall"]
            with self.db.session() as s:
                loaded.generation = repo.record_index_state(s, collection_id, space, loaded.ntotal, loaded.fingerprint,
                                                            info).generation
        with self._lock:
            self._open[key] = loaded
        self._verified_at[key] = time.monotonic()
        return {"recall_before": round(before, 4), "recall": round(after, 4), "action": action,
                "params": kinds.behaviour(loaded.kind).get_params(loaded.index), "kind": loaded.kind}


    # ---- after deletions ---------------------------------------------------------------
    def images_deleted(self, collection_id: int, spaces: list[str]) -> list[Future]:
        """Bring the indexes of ``spaces`` up to date after images of the collection were deleted:
        small ones now, large ones (:data:`BACKGROUND_UPDATE_AT`) in the background. Returns the
        background updates (their failures are logged, never lost)."""
        pending = []
        for space in spaces:
            cached = self.cached(collection_id, space)
            if cached is not None and cached.ntotal >= BACKGROUND_UPDATE_AT:
                pending.append(self.sync_in_background(collection_id, space))
            else:
                self.sync(collection_id, space)
        return pending

    def _defer_rebuild(self, collection_id: int, space: str, reason: str, vectors: int | None = None) -> None:
        key = (collection_id, space)
        with self._lock:
            if key in self._deferred:
                return
            self._deferred[key] = f"rebuild queued ({reason})"
        log.info("index of collection %s / %s: rebuilding in the background (%s)", collection_id, space, reason)
        if self.build_jobs is not None:
            job = self.build_jobs(collection_id, space, reason, vectors)
            if job is not None:
                self._jobs[key] = job
        self.sync_in_background(collection_id, space, force_rebuild=True)

    def building(self, collection_id: int, space: str) -> str | None:
        """What a background rebuild of this index is doing (None: none queued or running)."""
        return self._deferred.get((collection_id, space))

    def sync_in_background(self, collection_id: int, space: str, *, force_rebuild: bool = False) -> Future:
        """:meth:`sync` on this manager's background thread. A failure is logged and the open
        index is dropped, so the next query checks against the database and rebuilds."""
        key = (collection_id, space)

        def run():
            job = self._jobs.get(key) if force_rebuild else None
            try:
                loaded = self.sync(collection_id, space, force_rebuild=force_rebuild)
            except BaseException as exc:
                if job is not None:
                    job.failed(exc)
                raise
            finally:
                if force_rebuild:
                    self._deferred.pop(key, None)
                    self._jobs.pop(key, None)
            if job is not None:
                with self.db.session() as s:
                    state = repo.index_state(s, collection_id, space)
                    info = {"kind": state.kind, "recall": state.recall, "build_seconds": state.build_seconds} if state else None
                job.done(info, loaded.ntotal)
            return loaded

        with self._lock:
            if self._background is None:
                self._background = ThreadPoolExecutor(1, thread_name_prefix="simsearch-index")
            future = self._background.submit(run)

        def report(done: Future) -> None:
            exc = done.exception()
            if exc is not None:
                log.error("updating the index of collection %s / %s failed; it is rebuilt on next use",
                          collection_id, space, exc_info=exc)
                self.forget(collection_id, space)

        future.add_done_callback(report)
        return future

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            background, self._background = self._background, None
        if background is not None:
            background.shutdown(wait=wait, cancel_futures=not wait)
