"""Analysis jobs without a model: synthetic vector collections, following a job, and a gate that
holds a function on the job's thread until the test lets it go."""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from tests.helpers.api import wait_job

SPACE = "efficientnet_lite0"


def add_vectors(ctx, collection: str = "synth", per_group: int = 15, groups: int = 3, dim: int = 64,
                space: str = SPACE, seed: int = 0) -> list[int]:
    """``groups`` tight groups of unit vectors, labelled g0, g1, ...; returns the image ids."""
    from simsearch.store import repo
    from simsearch.store.models import Embedding, Image

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dim))
    ids = []
    with ctx.db.session() as s:
        coll = repo.get_or_create_collection(s, collection)
        for g in range(groups):
            for i in range(per_group):
                v = centres[g] + 0.15 * rng.normal(size=dim)
                v = (v / np.linalg.norm(v)).astype(np.float32)
                digest = hashlib.sha256(f"{collection}:{space}:{g}:{i}:{seed}".encode()).hexdigest()
                img = Image(collection_id=coll.id, content_hash=digest, source_path=f"/synthetic/{g}/{i}.jpg",
                            label=f"g{g}", status="ok", meta={})
                s.add(img)
                s.flush()
                s.add(Embedding(image_id=img.id, space=space, dim=dim, vector=repo.vector_to_bytes(v)))
                ids.append(img.id)
    return ids


def poll(client, job_id: int, timeout: float = 120) -> dict:
    return wait_job(client, job_id, timeout, interval=0.1)


def accepted(resp) -> dict:
    assert resp.status_code == 202, (resp.status_code, resp.get_data(as_text=True)[:300])
    body = resp.get_json()
    assert set(body) == {"job_id", "status", "status_url"} and body["status"] in ("queued", "running")
    assert resp.headers["Location"] == body["status_url"] == f"/api/jobs/{body['job_id']}"
    return body


class Gate:
    """Replaces ``module.name`` (by default a function of simsearch.analysis, as the operations
    import it: simsearch.ops.analysis): records the thread that calls it and holds it until
    released, then calls the real one."""

    def __init__(self, monkeypatch, name: str, module=None):
        if module is None:
            import simsearch.ops.analysis as module

        self.real = getattr(module, name)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []
        monkeypatch.setattr(module, name, self)

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(60), "the test never released the gate"
        return self.real(*args, **kwargs)


def result(client, url: str, timeout: float = 240) -> tuple[dict, int]:
    """The analysis result at ``url`` (following its job), and how many jobs it took."""
    import time

    jobs = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = client.get(url)
        if resp.status_code == 200:
            return resp.get_json(), jobs
        assert resp.status_code == 202, resp.get_json()
        jobs += 1
        job = wait_job(client, resp.get_json()["job_id"], max(1.0, deadline - time.monotonic()), interval=0.1)
        assert job["status"] == "done", job
    raise AssertionError("no result")
