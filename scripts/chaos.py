"""Chaos test of the worker fleet: queued ingests finish correctly while workers are SIGKILLed.

PostgreSQL + Redis + N `simsearch worker` processes (default 3). Queued at once:
  - --data (default ../shared/datasets, every photo in it) into collection `all`, as one job split into shards;
  - ../shared/datasets/cats-dogs into `pets-a` and into `pets-b` (the same files, two collections);
  - ../shared/datasets/cats-dogs into `pets-a` once more (the same folder twice into one collection).
Meanwhile a driver SIGKILLs a random worker every few seconds (its work horse, its main process,
or both, in turn at random) and starts a new one in its place when the main process died, until
--kills kills are done; when the jobs end before that, the same four jobs are queued again into
new collections (`all-2`, `pets-a-2`, ...), so every kill hits a busy fleet. At the end it checks: every job `done`; every image present exactly once
per collection; vectors == images; each index file == the database; no run (job or shard) left
queued, running or stale. Prints one JSON object; exit status 1 if a check failed.

Usage: python scripts/chaos.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/chaos \\
           [--redis-url redis://127.0.0.1:6379/0] [--kills 20] [--interval 4] [--workers 3]
The database must exist and be empty (it is upgraded here). Uses its own RQ queue name.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not yet reaped by us) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Fleet:
    def __init__(self, env: dict, count: int, logs: Path):
        self.env, self.logs, self.procs, self.started = env, logs, [None] * count, 0

    def start(self, slot: int) -> None:
        self.started += 1
        out = open(self.logs / f"worker-{slot}-{self.started}.log", "wb")
        self.procs[slot] = subprocess.Popen([sys.executable, "-m", "simsearch.cli", "worker"], env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, rng: random.Random) -> str:
        """SIGKILL one random worker's horse, main process or both; restart it if the main died."""
        slot = rng.randrange(len(self.procs))
        proc = self.procs[slot]
        horses = [p for p in children(proc.pid) if alive(p)]
        mode = rng.choice(["horse", "main", "both"]) if horses else "main"
        if mode in ("horse", "both"):
            for h in horses:
                os.kill(h, signal.SIGKILL)
        if mode in ("main", "both"):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.start(slot)
        return f"worker {slot} ({mode}{', idle' if not horses else ''})"

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the worker and any horse it has
                except ProcessLookupError:
                    pass
                proc.wait()


def run(args) -> dict:
    from simsearch.images import content_hash, scan_images

    home = Path(args.home or tempfile.mkdtemp(prefix="simsearch-chaos-"))
    queue = f"chaos-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SIMSEARCH_HOME": str(home), "SIMSEARCH_DATABASE_URL": args.database_url,
           "SIMSEARCH_REDIS_URL": args.redis_url, "SIMSEARCH_QUEUE": queue, "SIMSEARCH_JOBS": "rq",
           "SIMSEARCH_SHARD_SIZE": str(args.shard_size), "SIMSEARCH_JOB_RETRIES": str(args.retries),
           "SIMSEARCH_WORKER_HEARTBEAT": str(args.heartbeat), "SIMSEARCH_PRECISION": "fp32",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if args.weights_dir:
        env["SIMSEARCH_WEIGHTS_DIR"] = args.weights_dir

    def cli(*argv) -> str:
        out = subprocess.run([sys.executable, "-m", "simsearch.cli", *argv], env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"simsearch {' '.join(argv)} failed: {out.stderr[-2000:]}")
        return out.stdout

    cli("db", "upgrade")
    datasets, pets = Path(args.data), Path(args.data) / "cats-dogs"
    unique = {folder: len({content_hash(p.read_bytes()) for p in scan_images(folder)}) for folder in (datasets, pets)}
    expected: dict[str, int] = {}
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(env, args.workers, logs)
    for slot in range(args.workers):
        fleet.start(slot)
    t0 = time.monotonic()
    jobs: list[int] = []

    def queue_round(r: int) -> None:
        """One round of the four overlapping jobs, into this round's collections."""
        suffix = "" if r == 1 else f"-{r}"
        for folder, collection in ((datasets, "all"), (pets, "pets-a"), (pets, "pets-b"), (pets, "pets-a")):
            name = collection + suffix
            out = json.loads(cli("ingest", str(folder), "--queue", "-c", name, "--labels", "folders", "--json"))
            jobs.append(out["job_id"])
            expected[name] = unique[folder]
        log(f"round {r}: queued jobs {jobs[-4:]} on {queue}")

    rounds = 1
    queue_round(rounds)
    log(f"{args.workers} workers; killing one every ~{args.interval} s, {args.kills} times "
        "(a new round of jobs is queued when one ends before the kills are done)")
    rng = random.Random(args.seed)
    kills: list[str] = []
    from simsearch.config import Settings
    from simsearch.context import AppContext
    from simsearch.ops import jobs as jobs_ops

    ctx = AppContext.open(Settings.from_env(home=home, database_url=args.database_url, redis_url=args.redis_url,
                                            queue=queue))
    try:
        deadline = time.monotonic() + args.timeout
        next_kill = time.monotonic() + args.interval
        states = {}
        while time.monotonic() < deadline:
            states = {j: jobs_ops.get(ctx, j) for j in jobs}
            ended = all(s["status"] in ("done", "failed") for s in states.values())
            if ended and len(kills) >= args.kills:
                break
            if ended:  # keep the fleet busy until every kill has hit it
                rounds += 1
                queue_round(rounds)
            if len(kills) < args.kills and time.monotonic() >= next_kill:
                kills.append(fleet.kill(rng))
                log(f"kill {len(kills)}: {kills[-1]}; jobs: " +
                    ", ".join(f"{j} {s['status']} {s['processed']}/{s['total']}" for j, s in states.items()))
                next_kill = time.monotonic() + args.interval * rng.uniform(0.5, 1.5)
            time.sleep(0.5)
        seconds = time.monotonic() - t0
        result = {"benchmark": "chaos", "workers": args.workers, "rounds": rounds, "kills": kills, "kill_count": len(kills),
                  "workers_started": fleet.started, "seconds": round(seconds, 1), "queue": queue,
                  "jobs": {j: {k: s[k] for k in ("status", "collection", "total", "processed", "added", "skipped",
                                                 "failed", "message")} | {"shards": s.get("shards")}
                           for j, s in states.items()}}
        result["checks"] = check(ctx, expected)
    finally:
        fleet.stop()
        ctx.close()
    result["ok"] = all(v["ok"] for v in result["checks"].values()) and \
        all(j["status"] == "done" for j in result["jobs"].values())
    result["logs"] = str(logs)
    return result


def check(ctx, expected: dict) -> dict:
    """The end state against the database, the index files and the expected image counts."""
    from sqlalchemy import func, select

    from simsearch.index.faiss_index import index_ids, load_index
    from simsearch.store import repo
    from simsearch.store.models import Collection, Image, IngestRun

    out = {}
    with ctx.db.session() as s:
        for name, want in expected.items():
            coll = s.scalar(select(Collection).where(Collection.name == name))
            images = s.scalar(select(func.count()).select_from(Image).where(Image.collection_id == coll.id))
            dupes = s.scalar(select(func.count()).select_from(
                select(Image.content_hash).where(Image.collection_id == coll.id)
                .group_by(Image.content_hash).having(func.count() > 1).subquery()))
            ok_images = s.scalar(select(func.count()).select_from(Image)
                                 .where(Image.collection_id == coll.id, Image.status == "ok"))
            spaces = {}
            vector_counts = repo.vector_counts(s, coll.id)
            for space in repo.spaces_of(s, coll.id):
                vectors = vector_counts.get(space, 0)
                db_ids = repo.vector_ids(s, coll.id, space)
                try:
                    on_disk = index_ids(load_index(ctx.indexes.path_for(coll.id, space)))
                    same = repo.fingerprint(on_disk) == repo.fingerprint(db_ids)
                except Exception as exc:  # a missing or damaged file
                    same = f"{type(exc).__name__}: {exc}"
                spaces[space] = {"vectors": int(vectors), "index_matches_database": same}
            ok = images == want and dupes == 0 and all(v["vectors"] == ok_images and v["index_matches_database"] is True
                                                        for v in spaces.values()) and bool(spaces)
            out[name] = {"images": int(images), "expected": want, "ok_images": int(ok_images), "duplicates": int(dupes),
                         "spaces": spaces, "ok": bool(ok)}
        left = s.execute(select(IngestRun.id, IngestRun.kind, IngestRun.status)
                         .where(IngestRun.status.not_in(("done",)))).all()
        attempts = s.scalar(select(func.coalesce(func.sum(IngestRun.attempts), 0)).where(IngestRun.kind == "shard"))
        shards = s.scalar(select(func.count()).select_from(IngestRun).where(IngestRun.kind == "shard"))
    out["runs"] = {"not_done": [list(r) for r in left], "shards": int(shards), "shard_attempts": int(attempts),
                   "ok": not left}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", required=True, help="an empty PostgreSQL database")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--data", default=str(DATASETS))
    ap.add_argument("--weights-dir", default=None, help="SIMSEARCH_WEIGHTS_DIR for the workers (converted models cached)")
    ap.add_argument("--home", default=None)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--interval", type=float, default=4.0, help="mean seconds between kills")
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--retries", type=int, default=6, help="SIMSEARCH_JOB_RETRIES (a shard may be hit several times)")
    ap.add_argument("--heartbeat", type=int, default=2, help="SIMSEARCH_WORKER_HEARTBEAT")
    ap.add_argument("--timeout", type=float, default=1500.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    result = run(args)
    print(json.dumps(result, indent=2, default=str))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
