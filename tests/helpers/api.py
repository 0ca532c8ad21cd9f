"""The HTTP API as tests meet it: the error body, jobs followed to their end, analysis results."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from tests.helpers.waiting import wait_until

SPACE = "efficientnet_lite0"


def ingest_folder(app, folder: Path, collection: str = "pets", labels: str | None = "folders"):
    from simsearch.ingest import Ingester, files_from_folder

    files, _ = files_from_folder(folder, labels=labels)
    return Ingester(app.extensions["simsearch"], spaces=[SPACE]).run(collection, files, source=str(folder))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose data is one row: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * (1 + 3 * width))) + chunk(b"IEND", b"")


def assert_error(resp, status: int, code: str | None = None, field: str | None = None) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    body = resp.get_json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["code"], str) and isinstance(err["message"], str) and err["message"]
    assert set(err) <= {"code", "message", "field", "details"}
    if code is not None:
        assert err["code"] == code, err
    if field is not None:
        assert err.get("field") == field, err
    return err


def wait_job(client, job_id: int, timeout: float = 180, until=("done", "failed"), interval: float = 0.2) -> dict:
    """The job's status once it is one of ``until`` (or as it is when ``timeout`` runs out: the
    caller's assert on the status then says what it was)."""
    last = {}

    def ended():
        last["job"] = client.get(f"/api/jobs/{job_id}").get_json()
        return last["job"].get("status") in until  # an error body (no status): the caller shows it

    try:
        wait_until(ended, timeout, interval)
    except AssertionError:
        pass
    return last["job"]


def analysis_result(client, url: str, **kwargs):
    """GET an analysis endpoint: 202 + a job the first time (polled to the end), then 200."""
    resp = client.get(url, **kwargs)
    if resp.status_code == 202:
        job = wait_job(client, resp.get_json()["job_id"])
        assert job["status"] == "done", job
        resp = client.get(url, **kwargs)
    assert resp.status_code == 200, (url, resp.status_code, resp.get_data(as_text=True)[:300])
    return resp


def get_until_done(client, path: str, timeout: float = 120, message: str = "the job did not finish"):
    """GET ``path`` until it is not a 202 (a background job running), as the UI does; that response."""

    def answered():
        resp = client.get(path)
        if resp.status_code != 202:
            return [resp]  # a list: a response object's truth is not its arrival
        assert resp.get_json()["status_url"].startswith("/api/jobs/")
        return None

    return wait_until(answered, timeout, 0.2, message)[0]


def a_derived_space(app, collection: str) -> str:
    """A whitening of the collection's efficientnet_lite0 vectors stored as a derived space; its name."""
    from simsearch import derived
    from simsearch.analysis import tuning
    from simsearch.store import repo

    ctx = app.extensions["simsearch"]
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
    _, parts = derived.base_vectors(ctx, coll_id, ["efficientnet_lite0"])
    setting = tuning.Setting(tuning.Family("whiten"), 4, 0.5)
    name = derived.derived_name(["efficientnet_lite0"], "doc-example")
    derived.save(ctx, coll_id, name, ["efficientnet_lite0"], setting.to_dict(), tuning.fit(parts[0], None, setting), None)
    return name
