"""Races made real: ingests whose first stores wait at a barrier, and requests whose first writes
do (each on its own thread), so every party has read what is stored before any of them writes."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SPACE = "efficientnet_lite0"
WAIT = 120  # seconds a barrier waits: a run that never gets there fails the test instead of hanging it


def race_first_stores(monkeypatch, parties: int) -> threading.Barrier:
    """Each run's first store waits until ``parties`` runs are there (each run stores on its own
    writer thread)."""
    from simsearch.ingest import Ingester

    barrier = threading.Barrier(parties, timeout=WAIT)
    original = Ingester._store
    local = threading.local()

    def store(self, *args, **kwargs):
        if not getattr(local, "waited", False):
            local.waited = True
            barrier.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Ingester, "_store", store)
    return barrier


def ingest(ctx, collection: str, files: list):
    """Ingest ``files`` (SourceFile) into ``collection`` in batches of 4 on one writer."""
    from simsearch.ingest import Ingester

    return Ingester(ctx, spaces=[SPACE], batch_size=4, workers=1).run(collection, files, source="concurrent test")


def run_at_once(*calls, barrier: threading.Barrier | None = None):
    """Run the calls on threads at once and return their results. A call that fails breaks the
    ``barrier`` (the others stop waiting for it); the first real failure is raised."""
    def guarded(fn):
        try:
            return fn()
        except BaseException:
            if barrier is not None:
                barrier.abort()
            raise

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(guarded, fn) for fn in calls]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
    return [f.result() for f in futures]


def create_collections(ctx, *names: str) -> None:
    """The collections exist before the runs start: what races is the images' store."""
    from simsearch.store import repo

    with ctx.db.session() as s:
        for name in names:
            repo.get_or_create_collection(s, name)


def _engine(app):
    services = app.extensions["simsearch"]
    return getattr(services, "services", services).db.engine


def at_once(app, *calls):
    """Run the calls (each gets a fresh test client) on threads at once, every first write at a
    barrier; returns the responses in order."""
    from sqlalchemy import event

    barrier = threading.Barrier(len(calls), timeout=WAIT)
    local = threading.local()

    def hook(conn, cursor, statement, parameters, context, executemany):
        head, upper = statement.lstrip()[:7].upper(), statement.upper()
        # a lock held until the transaction ends counts as a write: a request must not wait at
        # the barrier holding one (the others would wait for it and never reach the barrier)
        write = head.startswith(("INSERT", "UPDATE", "DELETE")) or "FOR UPDATE" in upper or "PG_ADVISORY" in upper
        if write and getattr(local, "party", False) and not getattr(local, "waited", False):
            local.waited = True
            barrier.wait()

    def run(fn):
        local.party, local.waited = True, False
        try:
            return fn(app.test_client())
        except BaseException:
            barrier.abort()
            raise
        finally:
            if not local.waited:  # finished without writing: the others need not wait for it
                local.waited = True
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass
            local.party = False

    event.listen(_engine(app), "before_cursor_execute", hook)
    try:
        with ThreadPoolExecutor(len(calls)) as pool:
            futures = [pool.submit(run, fn) for fn in calls]
            return [f.result() for f in futures]
    finally:
        event.remove(_engine(app), "before_cursor_execute", hook)


def no_500(responses) -> None:
    bad = [(r.status_code, r.get_data(as_text=True)[:300]) for r in responses if r.status_code >= 500]
    assert not bad, bad


def npz(keys, dim: int = 8, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(buf, vectors=rng.normal(size=(len(keys), dim)).astype(np.float32), keys=np.array(keys),
             labels=np.array(["a" if i % 2 else "b" for i in range(len(keys))]))
    return buf.getvalue()


def imported(client, name: str, n: int = 6, seed: int = 0) -> list[int]:
    """A collection of ``n`` imported vectors (no model needed); returns its image ids."""
    resp = client.post(f"/api/collections/{name}/vectors?backbone=efficientnet_lite0&same_model=true",
                       data=npz([f"k{i}" for i in range(n)], dim=1280, seed=seed),
                       content_type="application/octet-stream")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    images = client.get(f"/api/collections/{name}/images?per_page=100").get_json()["images"]
    return [i["id"] for i in images]
