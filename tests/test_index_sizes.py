"""Every index kind at every size: FAISS's preconditions are guarded, the policy falls back to a
kind that fits, and no size reaches a crash in FAISS (issue #19: an ``ivf_pq_refine`` index of 400
vectors of 1,280 dimensions trained its OPQ rotation on fewer vectors than dimensions, and FAISS
wrote past a buffer: ``reindex`` exited 139, ``serve`` died on its first similar-by-id request).

The guard is checked as a pure function at every size from 1 to 5,000 for every kind and several
dimensions; real builds and searches run in a subprocess (``tests/index_probe.py``) with glibc's
malloc check on, so heap corruption aborts there and fails the test instead of killing pytest,
at each boundary (-1, 0, +1) and on a log-spaced set of sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from simsearch.index import kinds
from simsearch.index.kinds.ivf import nlist_for
from simsearch.index.kinds.ivf_pq_refine import OPQ_TRAIN, opq_train_size
from simsearch.index.policy import IndexPolicy

from conftest import ROOT

SIZES = range(1, 5001)
DIMS = (1, 8, 15, 16, 64, 80, 100, 320, 512, 768, 1000, 1280, 2048, 2560)
FLAT, IVF_PQ_REFINE, IVF_SQ8, HNSW_SQ8 = "flat", "ivf_pq_refine", "ivf_sq8", "hnsw_sq8"
APPROXIMATE = (IVF_PQ_REFINE, IVF_SQ8, HNSW_SQ8)
# glibc aborts on the heap corruption it finds (an overrun that might not segfault by itself)
CHECKED_ENV = {"GLIBC_TUNABLES": "glibc.malloc.check=3", "OMP_NUM_THREADS": "1"}


def faiss_preconditions_hold(kind: str, n: int, dim: int) -> bool:
    """FAISS's own requirements, restated from its sources (1.15) for the sizes the kind uses."""
    if kind == FLAT:
        return True
    train = kinds.get(kind).train_size(n)
    ok = n >= 1 and dim >= 1 and train >= 1
    if kind in (IVF_PQ_REFINE, IVF_SQ8):
        nlist = nlist_for(n)
        ok = ok and nlist <= train <= n  # Clustering::train: "Number of training points should be at least ... clusters"
    if kind == IVF_PQ_REFINE:
        ok = ok and train >= 16  # each 4-bit sub-quantizer's k-means: 16 centroids
        ok = ok and min(train, OPQ_TRAIN) >= dim  # OPQMatrix::train: xxr(d * n) receives a d x d product
    return ok


@pytest.mark.parametrize("dim", DIMS)
def test_the_guard_at_every_size_says_exactly_when_faiss_can_build(dim):
    assert kinds.names() == [FLAT, *APPROXIMATE]
    for kind in kinds.names():
        fits = [kinds.get(kind).unfit(n, dim) is None for n in SIZES]
        assert fits == [faiss_preconditions_hold(kind, n, dim) for n in SIZES], kind
        # once a kind fits, it fits every larger collection (the policy cannot flap between kinds)
        first = fits.index(True) if True in fits else len(fits)
        assert all(fits[first:]), kind
        for n in SIZES:  # the reason names the kind, the size and the dimension
            why = kinds.get(kind).unfit(n, dim)
            assert why is None or (why.startswith(f"{kind} for {n:,} vector") and f"{dim:,} dimensions" in why)


def test_the_boundaries_where_each_kind_starts_to_fit():
    def first(kind, dim):
        return next(n for n in range(1, 100_000) if kinds.get(kind).unfit(n, dim) is None)

    # the OPQ rotation needs as many training vectors as dimensions (40 a list: 32 lists from 1,248)
    assert first(IVF_PQ_REFINE, 1280) == 1280 and first(IVF_PQ_REFINE, 64) == 78 and first(IVF_PQ_REFINE, 8) == 16
    assert first(IVF_PQ_REFINE, 2048) == 2496  # 64 lists: 2,560 training vectors
    assert "trained on 320 vectors, fewer than their 1,280 dimensions" in kinds.get(IVF_PQ_REFINE).unfit(400, 1280)
    for kind in (FLAT, IVF_SQ8, HNSW_SQ8):
        assert first(kind, 1280) == 1
    for kind in APPROXIMATE:
        assert kinds.get(kind).unfit(0, 1280) is not None
    with pytest.raises(ValueError, match="unknown index kind 'ivf_pq'"):
        kinds.get("ivf_pq")


def test_training_sizes_at_scale_are_unchanged():
    # 1M: 2,048 lists trained on 40 vectors each, the OPQ rotation on 10,000; 100k: 1,024 lists
    size = {kind: kinds.get(kind).train_size for kind in kinds.names()}
    assert (nlist_for(10**6), size[IVF_PQ_REFINE](10**6), opq_train_size(81_920)) == (2048, 81_920, 10_000)
    assert (nlist_for(100_000), size[IVF_SQ8](100_000)) == (1024, 40_960)
    assert size[HNSW_SQ8](10**6) == 50_000 and size[FLAT](10**6) == 0
    # at 1M every dimension up to the OPQ sample fits; beyond it ivf_pq_refine never does
    assert kinds.get(IVF_PQ_REFINE).unfit(10**6, 10_000) is None and kinds.get(IVF_PQ_REFINE).unfit(10**6, 10_001)


def test_the_policy_wants_only_kinds_that_fit():
    forced = IndexPolicy(exact_threshold=100, kind=IVF_PQ_REFINE)
    auto = IndexPolicy(exact_threshold=100)
    for policy in (forced, auto):
        assert policy.kind_for(400, dim=1280) == IVF_SQ8  # the issue's case: the next kind that fits
        assert policy.kind_for(400, current=IVF_SQ8, dim=1280) == IVF_SQ8  # kept: no rebuild at each sync
        assert policy.kind_for(1280, dim=1280) == IVF_PQ_REFINE and policy.kind_for(99, dim=1280) == FLAT
    # the forced kind once the collection has grown to fit it (the automatic policy keeps its choice)
    assert forced.kind_for(1280, current=IVF_SQ8, dim=1280) == IVF_PQ_REFINE
    assert auto.kind_for(1280, current=IVF_SQ8, dim=1280) == IVF_SQ8
    # without a dimension (callers that do not know it) the wish is by size only, as before
    assert forced.kind_for(400) == IVF_PQ_REFINE
    # every size: the kind wanted fits
    for policy in (forced, auto, IndexPolicy(exact_threshold=1, kind=HNSW_SQ8)):
        for dim in (8, 64, 1280):
            for n in range(1, 3000, 7):
                assert kinds.get(policy.kind_for(n, dim=dim)).unfit(n, dim) is None


def run_probe(cases: list, timeout: float = 300) -> list[dict]:
    """Build and search ``cases`` ([kind, n, dim]) in a subprocess; its per-case results."""
    env = {**os.environ, **CHECKED_ENV, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "index_probe.py"), json.dumps(cases)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    started = [line["start"] for line in lines if "start" in line]
    done = [line for line in lines if "case" in line]
    stderr = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("WARNING clustering"))[-3000:]
    assert proc.returncode in (0, 1) and len(done) == len(cases), (
        f"the probe died (status {proc.returncode}) at {started[len(done)] if len(started) > len(done) else '?'}: {stderr}")
    return done


def expected_kind(kind: str, n: int, dim: int) -> str:
    return kinds.fitting(IndexPolicy(kind=kind).order(), n, dim)[0]


def boundaries(kind: str, dim: int, top: int = 5000) -> set[int]:
    """Sizes around each change of what the kind is built with: where it starts to fit, and where
    the IVF kinds get more lists (n/39 crossing a power of two); -1, 0 and +1."""
    unfit = kinds.get(kind).unfit
    changes = {n for n in range(2, top + 1) if (unfit(n, dim) is None) != (unfit(n - 1, dim) is None)}
    if kind in (IVF_PQ_REFINE, IVF_SQ8):
        changes |= {n for n in range(2, top + 1) if nlist_for(n) != nlist_for(n - 1)}
    return {m for n in changes for m in (n - 1, n, n + 1) if 1 <= m <= top}


LOG_SIZES = (1, 2, 3, 5, 9, 16, 30, 55, 100, 180, 330, 600, 1100, 2000, 3600, 5000)


@pytest.mark.parametrize("dim", [8, 80])
def test_every_kind_builds_and_searches_at_boundary_and_log_spaced_sizes(dim):
    cases = sorted({(kind, n, dim) for kind in APPROXIMATE for n in set(LOG_SIZES) | boundaries(kind, dim)},
                   key=lambda c: (c[1], c[0]))
    for out in run_probe([list(c) for c in cases]):
        kind, n, _ = out["case"]
        want = expected_kind(kind, n, dim)
        assert not out["problems"], out
        # the kind that fits was built; only the recall target may still send it to flat
        assert out["kind"] == want or (out["kind"] == FLAT and out["rejected"][want].startswith("recall@10")), out
        if want != kind:
            assert "fewer than" in out["rejected"][kind] or "training vectors for" in out["rejected"][kind], out


def test_the_opq_boundary_is_exactly_one_training_vector_a_dimension():
    # 80-d at 80 vectors and 320-d at 320: the OPQ sample is exactly the dimension (40 a list)
    cases = [[IVF_PQ_REFINE, n, dim] for dim in (80, 320) for n in (dim - 1, dim, dim + 1)]
    out = {tuple(o["case"]): o for o in run_probe(cases)}
    for dim in (80, 320):
        assert out[(IVF_PQ_REFINE, dim - 1, dim)]["kind"] == IVF_SQ8
        assert out[(IVF_PQ_REFINE, dim, dim)]["kind"] == IVF_PQ_REFINE
        assert out[(IVF_PQ_REFINE, dim + 1, dim)]["kind"] == IVF_PQ_REFINE


@pytest.mark.slow
def test_the_issue_sizes_at_1280_dimensions():
    # (400 vectors: test_reindex_and_similar_by_id_on_a_small_collection_with_a_low_threshold)
    cases = [[IVF_PQ_REFINE, n, 1280] for n in (1, 1279, 1280)] + [[kind, n, 1280] for kind in (IVF_SQ8, HNSW_SQ8)
                                                                   for n in (1, 2)]
    for out in run_probe(cases, timeout=600):
        kind, n, dim = out["case"]
        assert not out["problems"] and out["kind"] in (expected_kind(kind, n, dim), FLAT), out


def test_training_refuses_a_sample_that_does_not_fit():
    """The last line of defence: whoever calls ``IndexKind.train``, a sample below the kind's
    preconditions is a ValueError before FAISS sees it (in a subprocess: were the guard wrong, the
    overrun would abort it)."""
    code = """
import numpy as np
from simsearch.index import kinds
x = np.random.default_rng(0).standard_normal((400, 256)).astype(np.float32)
for kind, n_index, n_sample in (("ivf_pq_refine", 5000, 255), ("ivf_pq_refine", 300, 15), ("ivf_sq8", 5000, 100),
                                ("hnsw_sq8", 10, 0)):
    index = kinds.get(kind).make(256, n_index)
    try:
        kinds.get(kind).train(index, x[:n_sample])
    except ValueError as exc:
        print(kind, n_sample, "refused:", exc)
    else:
        print(kind, n_sample, "trained")
index = kinds.get("ivf_pq_refine").make(256, 312)
kinds.get("ivf_pq_refine").train(index, x[:320])
print("ivf_pq_refine 320 trained", index.is_trained)
"""
    env = {**os.environ, **CHECKED_ENV, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ivf_pq_refine 255 refused: cannot train ivf_pq_refine: its OPQ rotation would be trained on 255")
    assert lines[1].startswith("ivf_pq_refine 15 refused:") and "16 centroids" in lines[1]
    assert lines[2].startswith("ivf_sq8 100 refused:") and "100 training vectors for 128 inverted lists" in lines[2]
    assert lines[3].startswith("hnsw_sq8 0 refused:") and "no vectors" in lines[3]
    assert lines[4] == "ivf_pq_refine 320 trained True"


def test_reindex_and_similar_by_id_on_a_small_collection_with_a_low_threshold(tmp_path):
    """The issue's reproduction: 400 vectors of 1,280 dimensions (efficientnet_lite0's), the
    threshold at 100 and ivf_pq_refine forced; the first similar-by-id request through the web app
    builds the index, then ``reindex`` and ``similar`` on the command line. Each in a subprocess."""
    rng = np.random.default_rng(0)
    centres = np.random.default_rng(99).standard_normal((20, 1280))
    x = (centres[rng.integers(0, 20, 400)] + 0.5 * rng.standard_normal((400, 1280))).astype(np.float32)
    np.savez(tmp_path / "v.npz", vectors=x, keys=np.array([f"k{i}" for i in range(400)]))
    home = tmp_path / "home"
    env = {**os.environ, **CHECKED_ENV, "PYTHONPATH": str(ROOT), "SIMSEARCH_HOME": str(home),
           "SIMSEARCH_DATABASE_URL": f"sqlite:///{home / 'db.sqlite'}", "SIMSEARCH_REDIS_URL": "",
           "SIMSEARCH_EXACT_THRESHOLD": "100", "SIMSEARCH_INDEX_TYPE": IVF_PQ_REFINE}

    def run(*args, code=None):
        argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "simsearch", *args]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{args or 'web'}: status {proc.returncode}: {proc.stderr[-2000:]}"
        return proc

    run("db", "upgrade")
    run("import-vectors", str(tmp_path / "v.npz"), "-c", "small", "-s", "efficientnet_lite0", "--same-model", "--no-index")
    web = run(code="""
import json
from simsearch.config import Settings
from simsearch.web import create_app, shutdown
app = create_app({"SETTINGS": Settings.from_env(), "TESTING": True})
try:
    with app.test_client() as client:
        first = client.get("/api/images/1/similar?k=5")
        print(json.dumps({"status": first.status_code, "body": first.get_json()}))
finally:
    shutdown(app)
""")
    answer = json.loads(web.stdout.strip().splitlines()[-1])
    assert answer["status"] == 200, answer
    hits = [hit["image_id"] for hit in answer["body"]["results"]]
    assert len(hits) == 5 and 1 not in hits
    reindexed = run("reindex", "-c", "small", "--json")
    (row,) = json.loads(reindexed.stdout)
    assert row["kind"] == IVF_SQ8 and row["vectors"] == 400, row
    assert "ivf_pq_refine for 400 vectors of 1,280 dimensions: its OPQ rotation would be trained on 320" in reindexed.stderr
    similar = json.loads(run("similar", "1", "-c", "small", "-k", "5", "--json").stdout)
    assert [hit["image_id"] for hit in similar["results"]] == hits  # the CLI and the web app: one op, one index


def test_a_fallback_index_is_kept_and_the_forced_kind_comes_once_it_fits(sqlite_settings):
    """Through the index manager: 20 vectors of 32 dimensions are too few for ivf_pq_refine's
    OPQ rotation, so ivf_sq8 is built, and kept by the next process (no rebuild at each sync);
    at 50 vectors (40 training vectors >= 32 dimensions) the forced kind is built."""
    from tests.helpers.db import SPACE, clustered, insert_vectors

    from simsearch.context import AppContext

    policy = IndexPolicy(exact_threshold=10, kind=IVF_PQ_REFINE, sample_queries=50)
    x = clustered(50, seed=3)

    def opened():
        ctx = AppContext.open(sqlite_settings)
        ctx.indexes.policy = policy
        return ctx

    ctx = opened()
    try:
        coll_id, _ = insert_vectors(ctx.db, x[:20])
        small = ctx.index(coll_id, SPACE)
        assert (small.kind, small.ntotal, ctx.indexes.builds) == (IVF_SQ8, 20, 1)
    finally:
        ctx.close()
    ctx = opened()  # another process: the fallback index is the one the policy wants
    try:
        assert ctx.index(coll_id, SPACE).kind == IVF_SQ8 and ctx.indexes.builds == 0
        insert_vectors(ctx.db, x[20:], first=20)
        grown = ctx.sync_index(coll_id, SPACE)
        assert (grown.kind, grown.ntotal, ctx.indexes.builds) == (IVF_PQ_REFINE, 50, 1)
    finally:
        ctx.close()
