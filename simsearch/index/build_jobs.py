"""Background index rebuilds as rows of the jobs table (kind ``index``).

The index manager rebuilds a large index off the request path when the one at hand is still
correct but due for a rebuild (compaction, another kind for its size, recall below the target
after re-tuning), and searches use the current generation meanwhile. Each such rebuild is a job
that ``/api/jobs``, the jobs page and ``simsearch jobs`` list: running with its current step as
the message, then done (kind, recall, seconds) or failed (why). It is owned by this process
(``thread:<host>:<pid>:<token>``), so a process that stops mid-build leaves a row that the next
web process on the host marks failed (the next query rebuilds the index anyway: nothing is lost,
the database holds every vector).

The manager only sees a callable (:attr:`simsearch.index.manager.IndexManager.build_jobs`) and
never imports this module: :meth:`simsearch.context.AppContext.open` wires it.
"""

from __future__ import annotations

import logging
import time

from simsearch.store import lifecycle
from simsearch.store.lifecycle import JobKind

log = logging.getLogger("simsearch.jobs")

STEP_INTERVAL = 1.0  # seconds between two writes of a build's step


class IndexBuildJob:
    """One background rebuild's row: :meth:`step`, then :meth:`done` or :meth:`failed`."""

    def __init__(self, db, owner: str, collection_id: int, space: str, reason: str, vectors: int | None = None):
        self.db, self._last = db, 0.0
        self.id = lifecycle.create(db, kind=JobKind.INDEX, collection_id=collection_id, source=f"index rebuild: {reason}",
                                   spaces=[space], total=int(vectors or 0), owner=owner, params={"reason": reason},
                                   message="rebuild queued", running=True)

    def _set(self, change, *args, **values) -> None:
        try:
            change(self.db, self.id, *args, **values)
        except Exception:  # a progress row must never break the build itself
            log.warning("index build job %s: could not record its progress", self.id, exc_info=True)

    def step(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last >= STEP_INTERVAL:
            self._last = now
            self._set(lifecycle.progress, message)

    def done(self, info: dict | None, vectors: int) -> None:
        info = info or {}
        summary = ", ".join(part for part in (
            info.get("kind"), f"recall@10 {info['recall']:.3f}" if info.get("recall") is not None else None,
            f"{info['build_seconds']:.1f} s" if info.get("build_seconds") is not None else None) if part)
        self._set(lifecycle.finish, f"rebuilt: {summary}" if summary else "rebuilt", total=int(vectors),
                  processed=int(vectors))

    def failed(self, exc: BaseException) -> None:
        self._set(lifecycle.fail, f"the rebuild failed ({type(exc).__name__}: {exc}); the next search rebuilds the index")


def recorder(db, owner: str):
    """The manager's ``build_jobs`` callable: (collection id, space, reason, vectors) -> a job."""

    def start(collection_id: int, space: str, reason: str, vectors: int | None = None) -> IndexBuildJob | None:
        try:
            return IndexBuildJob(db, owner, collection_id, space, reason, vectors)
        except Exception:  # the database is down: rebuild anyway, unrecorded
            log.warning("could not record the index rebuild of collection %s / %s as a job", collection_id, space,
                        exc_info=True)
            return None

    return start
