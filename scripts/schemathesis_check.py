"""schemathesis against a real `simsearch serve`, on SQLite and on PostgreSQL.

For each database: a fresh data folder (and a fresh PostgreSQL database), a collection ``pets``
with real vectors (a few cats-dogs images embedded with efficientnet_lite0, so the search,
similar and analysis paths run for real), then ``simsearch serve`` on a free port and
``schemathesis run <server>/api/openapi.json --checks all`` with ``--max-examples`` cases per
operation (all phases: examples, coverage, fuzzing, stateful where the document has links).

Prints one JSON object: per database the operations, test cases, failures (distinct, by check and
operation) and seconds. Exit status 0 when every database has 0 failures and 0 errors.

    python scripts/schemathesis_check.py                  # both databases, 30 examples per operation
    python scripts/schemathesis_check.py --db sqlite --max-examples 100 --keep report/

The CI test (tests/test_schemathesis.py) runs it with a short budget.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATS_DOGS = (ROOT.parent / "shared" / "datasets" / "cats-dogs").resolve()
CONFIG = Path(__file__).with_name("schemathesis.toml")
PG_URL = os.environ.get("SIMSEARCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simsearch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from simsearch.cli import main; main()", *args]


def make_pets(dest: Path, per_class: int) -> Path:
    for cls in ("cats", "dogs"):
        (dest / cls).mkdir(parents=True, exist_ok=True)
        files = sorted((CATS_DOGS / cls).iterdir(), key=lambda p: (len(p.name), p.name))[:per_class]
        for f in files:
            shutil.copy(f, dest / cls / f.name)
    return dest


class Database:
    """A database URL for one run: a file under the run's folder, or a fresh PostgreSQL database."""

    def __init__(self, kind: str, folder: Path):
        self.kind = kind
        self.name = None
        if kind == "sqlite":
            self.url = f"sqlite:///{folder / 'simsearch.db'}"
        else:
            import psycopg

            self.name = f"simsearch_st_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(self._admin(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.url = PG_URL.rsplit("/", 1)[0] + "/" + self.name

    @staticmethod
    def _admin() -> str:
        return PG_URL.replace("postgresql+psycopg://", "postgresql://")

    def drop(self) -> None:
        if self.name:
            import psycopg

            with psycopg.connect(self._admin(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not come up")


def warm_up(base: str, pets: Path) -> None:
    """One search before the run loads the model (the first forward pass builds it, seconds)."""
    query = next((pets / "cats").iterdir()).read_bytes()
    req = urllib.request.Request(f"{base}/api/collections/pets/search?k=3", data=query, method="POST",
                                 headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        assert resp.status == 200


def placeholder_weights(folder: Path) -> dict[str, str]:
    """``SIMSEARCH_WEIGHTS_<NAME>`` for every backbone whose weights this (offline) machine lacks,
    pointing at an empty file: requests naming them are accepted like on a server that has them
    (their ingest jobs then fail, as recorded in the job). Without weights the API answers 503
    `weights_unavailable` by design (tests/test_jobs.py), which schemathesis counts as a server error."""
    sys.path.insert(0, str(ROOT))
    from simsearch.embedding.backbones import get_backbone, list_backbones

    env = {}
    for name in list_backbones():
        b = get_backbone(name)
        if not b.weights_status(folder / "home" / "weights")[0]:
            fake = folder / "placeholder-weights" / f"{name}.h5"
            fake.parent.mkdir(parents=True, exist_ok=True)
            fake.write_bytes(b"")
            env[b.env_var] = str(fake)
    return env


def summarise(report: dict) -> dict:
    """Counts from schemathesis's JSON run report (``--report json``)."""
    ops = report.get("operations") or {}
    cases = report.get("test_cases") or {}
    return {"operations": ops.get("tested", 0), "operations_errored": ops.get("errored", 0),
            "cases": cases.get("generated", 0), "cases_with_failures": cases.get("with_failures", 0),
            "unique_failures": cases.get("unique_failures", 0), "errors": report.get("errors") or [],
            "failures": [{"title": f.get("title"), "code": f.get("code"), "count": f.get("count"),
                          "operations": f.get("operations")} for f in report.get("failures") or []],
            "phases": {k: v.get("status") for k, v in (report.get("phases") or {}).items()},
            "warnings": {k: v for k, v in (report.get("warnings") or {}).items() if v},
            "seconds_schemathesis": round(report.get("running_time") or 0, 1)}


def run_one(kind: str, *, max_examples: int, per_class: int, seed: int | None, keep: Path | None,
            extra: list[str], timeout: float) -> dict:
    t0 = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix=f"simsearch-st-{kind}-"))
    db = Database(kind, folder)
    env = dict(os.environ, SIMSEARCH_HOME=str(folder / "home"), SIMSEARCH_DATABASE_URL=db.url,
               SIMSEARCH_MAX_UPLOAD_MB="4", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for var in ("SIMSEARCH_REDIS_URL", "SIMSEARCH_API_KEYS", "SIMSEARCH_ALLOW_SERVER_PATHS"):
        env.pop(var, None)
    env.update(placeholder_weights(folder))
    proc = None
    try:
        pets = make_pets(folder / "pets", per_class)
        # servers never migrate (a fresh PostgreSQL database has no schema yet): upgrade first
        subprocess.run(simsearch_cmd("db", "upgrade"), env=env, check=True, stdout=subprocess.DEVNULL, timeout=300)
        subprocess.run(simsearch_cmd("ingest", str(pets), "-c", "pets", "--labels", "folders", "-b", "efficientnet_lite0",
                                     "--no-progress"), env=env, check=True, stdout=subprocess.DEVNULL, timeout=600)
        port = free_port()
        log = open(folder / "server.log", "w")
        proc = subprocess.Popen(simsearch_cmd("serve", "--host", "127.0.0.1", "--port", str(port)), env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        wait_up(f"{base}/api/health", proc)
        seeded = time.monotonic() - t0
        report_dir = folder / "report"
        warm_up(base, pets)
        cmd = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG), "run", f"{base}/api/openapi.json", "--checks", "all",
               "--max-examples", str(max_examples), "--workers", "1", "--request-timeout", "60",
               "--report", "json,junit", "--report-dir", str(report_dir), "--no-color", *extra]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        st = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if keep is not None:
            dest = keep / kind
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(report_dir, dest, dirs_exist_ok=True)
            shutil.copy(folder / "server.log", dest / "server.log")
            (dest / "schemathesis.txt").write_text(st.stdout + st.stderr)
        reports = sorted(report_dir.glob("*.json"))
        report = json.loads(reports[-1].read_text()) if reports else {}
        out = {"database": kind, "exit_code": st.returncode, "seconds_seeding": round(seeded, 1),
               "seconds_total": round(time.monotonic() - t0, 1), **summarise(report),
               "output_tail": st.stdout[-6000:] + st.stderr[-2000:]}
        return out
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        db.drop()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--max-examples", type=int, default=30)
    ap.add_argument("--per-class", type=int, default=6, help="cats and dogs ingested per class (default 6)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds for one schemathesis run")
    ap.add_argument("--keep", type=Path, help="copy the reports and server log here")
    ap.add_argument("extra", nargs="*", help="more `schemathesis run` options (after --)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server and drop the database on the way out
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = [run_one(k, max_examples=args.max_examples, per_class=args.per_class, seed=args.seed, keep=args.keep,
                       extra=args.extra, timeout=args.timeout) for k in kinds]
    print(json.dumps({"max_examples": args.max_examples, "results": results}, indent=2))
    return 0 if all(r["exit_code"] == 0 and not r["failures"] and not r["errors"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
