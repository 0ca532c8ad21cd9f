"""The short chaos test of the worker fleet (the long one: `python scripts/chaos.py --kills 20`):
PostgreSQL, Redis, 3 `simsearch worker` processes, a copy of two shared datasets (cats-dogs and
flowers, so the test's size does not grow with ../shared/datasets) queued as one sharded job plus
overlapping cats-dogs jobs, while workers are SIGKILLed (horse, main process or both) and
restarted. Every job must end `done`, every image be stored exactly once per collection, vectors
== images, each index file == the database, and no run be left queued or running."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.mark.postgres
@pytest.mark.redis
def test_chaos_short(postgres_url, weights_dir, tmp_path):
    from simsearch.embedding.embedder import Embedder
    from simsearch.spaces import parse
    from simsearch.images import content_hash, scan_images

    data = tmp_path / "data"
    for name in ("cats-dogs", "flowers"):
        shutil.copytree(DATASETS / name, data / name)
    # what the folder holds, counted from its files (never a constant: shared data may change)
    unique = len({content_hash(p.read_bytes()) for p in scan_images(data)})
    assert unique > 0

    Embedder(parse("efficientnet_lite0"), weights_dir, runtime="auto", device="cpu").load()  # the workers reuse its conversion
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "chaos.py"), "--database-url", postgres_url,
                           "--weights-dir", str(weights_dir), "--home", str(tmp_path / "home"), "--data", str(data),
                           "--kills", "4", "--interval", "3", "--timeout", "600"],
                          capture_output=True, text=True, timeout=900)
    assert proc.stdout, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["kill_count"] == 4, proc.stderr[-3000:]
    assert result["ok"], json.dumps(result, indent=1)[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0
    assert result["checks"]["runs"]["not_done"] == []
    assert all(job["status"] == "done" for job in result["jobs"].values())
    assert result["checks"]["all"]["images"] == result["checks"]["all"]["expected"] == unique
