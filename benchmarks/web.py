"""Web benchmark: prints one JSON object.

- 100,000 synthetic L2-normalised 1280-d vectors (clustered, so neighbours mean something) are
  inserted straight into a fresh database as one collection (bulk inserts), and the FAISS index is
  built (HNSW above 50k vectors).
- similar-by-id over HTTP against `simsearch serve` on 127.0.0.1: p50 / p99 (target p99 <= 20 ms).
- search-by-upload p50 vs one bare forward pass of the backbone (target <= 1.3x), in alternating
  blocks, on `simsearch serve` and on gunicorn, for each way to send the image: a multipart form
  sent with ``requests``, the same form sent with ``http.client`` (the difference is the requests
  library's own time), and the raw image as the request body (``http.client``).
- requests/s of similar-by-id with `gunicorn -w 2` (a fixed number of requests from a few client
  threads, only to 127.0.0.1).
- the map payload for 100,000 points, gzip-compressed (target <= 2 MB). t-SNE of 100k points is far
  too slow for a benchmark, so the coordinates and clusters are synthetic; they go through the same
  code as ``GET /api/collections/<name>/map`` (``compact_map``, compact JSON, gzip level 6).

Usage: python benchmarks/web.py [--n 100000] [--database-url URL] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py
QUERY_IMAGE = ROOT.parent / "shared" / "datasets" / "cats-dogs" / "cats" / "cat.1.jpg"
DIM = 1280
SPACE = "efficientnet_lite0"


def synthetic_vectors(n: int, dim: int, seed: int = 0, centres: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    assign = rng.integers(0, centres, n)
    x = c[assign] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, assign


def populate(ctx, n: int) -> tuple[int, np.ndarray]:
    """Bulk-insert one collection with n images and vectors; returns (collection id, image ids)."""
    from sqlalchemy import insert

    from simsearch.store import repo
    from simsearch.store.models import Embedding, Image, utcnow

    x, assign = synthetic_vectors(n, DIM)
    with ctx.db.session() as s:
        coll_id = repo.get_or_create_collection(s, "bench").id
    now = utcnow()
    chunk = 5000
    t0 = time.perf_counter()
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        ids = np.arange(start + 1, stop + 1)
        with ctx.db.session() as s:
            s.execute(insert(Image), [
                {"id": int(i), "collection_id": coll_id, "content_hash": f"{i:064x}", "source_path": f"/synthetic/{i}.jpg",
                 "width": 640, "height": 480, "label": f"group-{assign[i - 1] % 20}", "meta": {}, "status": "ok",
                 "created_at": now} for i in ids])
            s.execute(insert(Embedding), [
                {"image_id": int(i), "space": SPACE, "dim": DIM, "vector": repo.vector_to_bytes(x[i - 1]), "seconds": 0.01,
                 "created_at": now} for i in ids])
    if ctx.db.dialect == "postgresql":
        from sqlalchemy import text

        with ctx.db.session() as s:
            s.execute(text("SELECT setval(pg_get_serial_sequence('images', 'id'), (SELECT max(id) FROM images))"))
    log(f"inserted {n} images + vectors in {time.perf_counter() - t0:.1f} s")
    return coll_id, np.arange(1, n + 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not come up")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def percentiles(samples: list[float]) -> dict:
    a = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p90_ms": round(float(np.percentile(a, 90)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2), "n": len(samples)}


def bench_similar(base: str, ids: np.ndarray, n: int, seed: int = 1) -> dict:
    import requests

    rng = np.random.default_rng(seed)
    sess = requests.Session()
    for i in rng.choice(ids, 30):  # warm-up (first request opens the index)
        sess.get(f"{base}/api/images/{int(i)}/similar?k=10", timeout=120).raise_for_status()
    times = []
    for i in rng.choice(ids, n):
        t0 = time.perf_counter()
        r = sess.get(f"{base}/api/images/{int(i)}/similar?k=10", timeout=30)
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200 and len(r.json()["results"]) == 10, r.text[:300]
    return percentiles(times)


class UploadClients:
    """The two ways to send a query image: a multipart form with ``requests`` (what most scripts
    write) and the image as the raw request body on one keep-alive ``http.client`` connection."""

    def __init__(self, base: str, data: bytes):
        import http.client
        from urllib.parse import urlsplit

        import requests

        self.base, self.data = base, data
        self.session = requests.Session()
        host = urlsplit(base)
        self.conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)

    def multipart(self) -> float:
        r = self.session.post(f"{self.base}/api/collections/bench/search", files={"image": ("q.jpg", self.data)},
                              data={"k": "10"}, timeout=60)
        assert r.status_code == 200 and len(r.json()["results"]) == 10, r.text[:300]
        return r.json()["seconds"]

    def multipart_lean(self) -> float:
        """The same multipart form, built by hand and sent on the keep-alive connection: the
        difference to ``multipart`` is the requests library's own time."""
        boundary = uuid.uuid4().hex
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n10\r\n--{boundary}\r\n'
                f'Content-Disposition: form-data; name="image"; filename="q.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
                ).encode() + self.data + f"\r\n--{boundary}--\r\n".encode()
        self.conn.request("POST", "/api/collections/bench/search", body=body,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return self._answer()

    def raw(self) -> float:
        self.conn.request("POST", "/api/collections/bench/search?k=10&filename=q.jpg", body=self.data,
                          headers={"Content-Type": "image/jpeg"})
        return self._answer()

    def _answer(self) -> float:
        r = self.conn.getresponse()
        body = json.loads(r.read())
        assert r.status == 200 and len(body["results"]) == 10, body
        return body["seconds"]


def bench_upload_vs_forward(base: str, settings, data: bytes, rounds: int, per_round: int = 10) -> dict:
    """Search-by-upload latency against one bare forward pass of the same backbone, measured in
    alternating blocks (uploads in each form, then bare forwards in this process while the server
    idles) so that drift of the host's speed hits both sides alike. The bare forward is the model
    alone on an already decoded, resized and preprocessed image."""
    from simsearch.embedding.embedder import Embedder
    from simsearch.spaces import parse
    from simsearch.images import decode_image, resize_for_model

    emb = Embedder(parse(SPACE), settings.weights_dir)
    emb.load()
    img = decode_image(data, source="q.jpg", draft_size=emb.input_size)
    x = emb.backbone.preprocess(resize_for_model(img.image, emb.input_size)[None])
    clients = UploadClients(base, data)
    for _ in range(5):
        emb.forward(x)
    # Warm-up until every server process has its model and index loaded (the first query in a
    # process takes seconds): pairs of concurrent requests (so that both gunicorn workers get
    # some), then ten fast answers in a row.
    pair = [UploadClients(base, data) for _ in range(2)]
    for _ in range(5):
        threads = [threading.Thread(target=c.raw) for c in pair]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    fast, tries = 0, 0
    while fast < 10:
        tries += 1
        if tries > 300:
            raise RuntimeError("search by upload did not settle after 300 warm-up requests")
        t0 = time.perf_counter()
        clients.raw() if tries % 2 else clients.multipart()
        fast = fast + 1 if time.perf_counter() - t0 < 0.5 else 0
    forms = {"multipart": "requests, multipart/form-data", "multipart_lean": "http.client, multipart/form-data",
             "raw": "http.client, Content-Type: image/jpeg"}
    samples: dict[str, list[float]] = {"forward": [], **{f: [] for f in forms}, **{f"{f}_server": [] for f in forms}}
    for _ in range(rounds):
        for form in forms:
            send = getattr(clients, form)
            for _ in range(per_round):
                t0 = time.perf_counter()
                server = send()
                samples[form].append(time.perf_counter() - t0)
                samples[f"{form}_server"].append(server)
        time.sleep(0.05)
        for _ in range(per_round):
            t0 = time.perf_counter()
            emb.forward(x)
            samples["forward"].append(time.perf_counter() - t0)
        time.sleep(0.05)
    fwd = percentiles(samples["forward"])
    out = {"bare_forward": fwd, "rounds": rounds, "per_round": per_round}
    for form, client in forms.items():
        lat = percentiles(samples[form])
        server_p50 = round(float(np.median(samples[f"{form}_server"])) * 1000, 2)
        out[f"search_by_upload_{form}"] = {**lat, "client": client, "server_search_p50_ms": server_p50,
                                           "vs_forward_p50": round(lat["p50_ms"] / fwd["p50_ms"], 3),
                                           "server_search_vs_forward_p50": round(server_p50 / fwd["p50_ms"], 3),
                                           "ok": lat["p50_ms"] <= 1.3 * fwd["p50_ms"]}
    return out


def upload_ratios(result: dict) -> dict:
    return {key[len("search_by_upload_"):]: value["vs_forward_p50"] for key, value in result.items()
            if key.startswith("search_by_upload_")}


def bench_throughput(base: str, ids: np.ndarray, total: int, threads: int) -> dict:
    import requests

    rng = np.random.default_rng(2)
    targets = [int(i) for i in rng.choice(ids, total)]
    errors = []
    lock = threading.Lock()
    cursor = iter(range(total))

    def work():
        sess = requests.Session()
        while True:
            with lock:
                k = next(cursor, None)
            if k is None:
                return
            r = sess.get(f"{base}/api/images/{targets[k]}/similar?k=10", timeout=60)
            if r.status_code != 200:
                errors.append(r.status_code)

    t0 = time.perf_counter()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - t0
    return {"requests": total, "client_threads": threads, "seconds": round(seconds, 2),
            "requests_per_second": round(total / seconds, 1), "errors": len(errors)}


def map_payload(n: int) -> dict:
    from simsearch.web.api.analysis import compact_map

    rng = np.random.default_rng(3)
    centres = rng.normal(0, 30, (20, 2))
    assign = rng.integers(0, 20, n)
    coords = centres[assign] + rng.normal(0, 3, (n, 2))
    result = {"collection": "bench", "backbone": SPACE, "method": "tsne", "n": n, "ids": list(range(1, n + 1)),
              "x": coords[:, 0].astype(np.float32).tolist(), "y": coords[:, 1].astype(np.float32).tolist(),
              "labels": [f"group-{a}" for a in assign], "clusters": assign.tolist(), "k": 20, "seconds": 1.0, "cached": True}
    raw_unrounded = json.dumps(result, separators=(",", ":")).encode()
    t0 = time.perf_counter()
    body = json.dumps(compact_map(result), separators=(",", ":")).encode()
    zipped = gzip.compress(body, compresslevel=6)
    return {"points": n, "json_bytes_unrounded": len(raw_unrounded), "json_bytes": len(body), "gzip_bytes": len(zipped),
            "gzip_mb": round(len(zipped) / 1e6, 3), "encode_seconds": round(time.perf_counter() - t0, 3),
            "target_mb": 2.0, "ok": len(zipped) <= 2_000_000, "coordinates": "synthetic (t-SNE of 100k is too slow here)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--database-url")
    ap.add_argument("--keep", help="Use (and keep) this data directory instead of a temporary one.")
    ap.add_argument("--similar-requests", type=int, default=1000)
    ap.add_argument("--upload-rounds", type=int, default=10, help="Blocks of 10 uploads of each form and 10 bare forwards.")
    ap.add_argument("--throughput-requests", type=int, default=3000)
    ap.add_argument("--weights-dir")
    args = ap.parse_args()

    from simsearch.config import Settings
    from simsearch.context import AppContext

    home = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="simsearch-bench-"))
    settings = Settings.from_env(home=home, database_url=args.database_url,
                                 weights_path=Path(args.weights_dir).resolve() if args.weights_dir else None)
    out: dict = {"benchmark": "web", "vectors": args.n, "dim": DIM, "database": None, "cpu_count": os.cpu_count(),
                 "load_average_1m_at_start": round(os.getloadavg()[0], 2)}
    try:
        ctx = AppContext.open(settings)
        out["database"] = ctx.db.dialect
        from simsearch.store import repo
        from simsearch.store.models import Collection

        with ctx.db.session() as s:
            existing = s.query(Collection).filter_by(name="bench").one_or_none()
            count = repo.vector_counts(s, existing.id).get(SPACE, 0) if existing else 0
        if existing is None or count != args.n:
            if existing is not None:
                raise SystemExit(f"{home} has a 'bench' collection with {count} vectors; use an empty --keep folder")
            coll_id, ids = populate(ctx, args.n)
        else:
            coll_id, ids = existing.id, repo.vector_ids(ctx.db.sessionmaker(), existing.id, SPACE)
        t0 = time.perf_counter()
        loaded = ctx.sync_index(coll_id, SPACE)
        out["index"] = {"type": type(loaded.index.index).__name__ if hasattr(loaded.index, "index") else "?",
                        "ntotal": loaded.ntotal, "build_or_load_seconds": round(time.perf_counter() - t0, 1)}
        import faiss

        out["index"]["type"] = type(faiss.downcast_index(loaded.index.index)).__name__
        log(f"index ready: {out['index']}")
        ctx.close()
        del loaded

        env = dict(os.environ, SIMSEARCH_HOME=str(home), SIMSEARCH_DATABASE_URL=settings.database_url,
                   SIMSEARCH_WEIGHTS_DIR=str(settings.weights_dir), TF_CPP_MIN_LOG_LEVEL="2")
        for key in ("SIMSEARCH_REDIS_URL", "SIMSEARCH_API_KEYS"):
            env.pop(key, None)
        query = QUERY_IMAGE.read_bytes()

        # 1) simsearch serve (werkzeug, threaded): latency
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-c", "from simsearch.cli import main; main()", "serve", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(f"{base}/api/health", proc)
            log("serve is up; similar-by-id latency")
            out["similar_by_id_serve"] = {**bench_similar(base, ids, args.similar_requests), "k": 10, "target_p99_ms": 20}
            out["similar_by_id_serve"]["ok"] = out["similar_by_id_serve"]["p99_ms"] <= 20
            log(f"similar: {out['similar_by_id_serve']}; search-by-upload vs bare forward")
            upload = out["search_by_upload"] = {"target_vs_forward_p50": 1.3}
            upload["serve"] = bench_upload_vs_forward(base, settings, query, args.upload_rounds)
        finally:
            stop(proc)
        log(f"upload/forward p50 ratios (serve): {upload_ratios(upload['serve'])}")

        # 2) gunicorn -w 2: throughput
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        gunicorn = shutil.which("gunicorn") or "gunicorn"
        proc = subprocess.Popen([gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "--timeout", "300", "simsearch.web.wsgi:app"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(f"{base}/api/health", proc)
            log("gunicorn is up; warming both workers")
            bench_throughput(base, ids, 200, 4)  # both workers open the index
            out["similar_by_id_gunicorn_w2"] = bench_throughput(base, ids, args.throughput_requests, 4)
            out["similar_by_id_gunicorn_w2"]["latency_single_client"] = bench_similar(base, ids, 300)
            log("search-by-upload vs bare forward (gunicorn)")
            upload["gunicorn_w2"] = bench_upload_vs_forward(base, settings, query, args.upload_rounds)
            log(f"upload/forward p50 ratios (gunicorn): {upload_ratios(upload['gunicorn_w2'])}")
        finally:
            stop(proc)

        # 3) map payload for 100k points
        out["map_payload"] = map_payload(args.n)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    out["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)  # other processes on the machine skew latencies
    emit(out, indent=2)


if __name__ == "__main__":
    main()
