"""schemathesis (`--checks all`) against a real `simsearch serve` on SQLite and on PostgreSQL,
with a collection of real vectors: every operation of /api/openapi.json, in every phase
(examples, coverage, fuzzing, stateful), must give 0 failures. A short budget here;
`python scripts/schemathesis_check.py` runs the long one (30+ examples per operation)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = os.environ.get("SIMSEARCH_SCHEMATHESIS_EXAMPLES", "8")


@pytest.mark.model
@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_schemathesis_finds_nothing(db, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "schemathesis_check.py"), "--db", db,
                           "--max-examples", MAX_EXAMPLES, "--per-class", "3", "--seed", "1", "--keep", str(tmp_path)],
                          capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout)["results"][0]
    assert result["operations"] >= 21 and result["cases"] > 100, result
    assert not result["errors"], result["errors"]
    assert not result["failures"], result["output_tail"]
    assert result["exit_code"] == 0, result["output_tail"]
