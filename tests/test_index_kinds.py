"""The index kinds' registry (``simsearch/index/kinds/``): adding a kind is one module plus its
test. Proved here by registering a kind of the test's own (an IVF of float vectors) and having the
settings accept it, the policy pick it (forced, and by its rank under the automatic policy), build,
tune, search, mask and compact it, and the index manager keep it across processes; and by
checking that no module outside the package switches on a kind's name."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simsearch.index import kinds
from simsearch.index.faiss_index import LoadedIndex, index_ids, load_index, save_index
from simsearch.index.kinds.ivf import IVFKind, nlist_for
from simsearch.index.policy import IndexPolicy, build

from conftest import ROOT
from tests.helpers.db import SPACE, clustered, delete_images, insert_vectors, state_of

PACKAGE = ROOT / "simsearch"
KINDS_DIR = PACKAGE / "index" / "kinds"
BUILT_IN = ["flat", "ivf_pq_refine", "ivf_sq8", "hnsw_sq8"]


class IvfFlat(IVFKind):
    """A kind a developer might add: an IVF of the float vectors themselves (all it needs to say)."""

    name = "ivf_flat"
    preference = 5  # before ivf_pq_refine under the automatic policy
    structure = "IndexIVFFlat"
    scans_to_decode = True  # IVF lists have no direct map to decode a vector by id

    def factory(self, dim: int, n: int) -> str:
        return f"IVF{nlist_for(n)},Flat"

    def matches(self, inner) -> bool:
        import faiss

        return isinstance(inner, faiss.IndexIVFFlat) and not isinstance(inner, faiss.IndexIVFScalarQuantizer)

    def memory_bytes(self, n: int, dim: int) -> int:
        return n * (4 * dim + 16) + nlist_for(n) * dim * 4


@pytest.fixture
def ivf_flat():
    kinds.register(IvfFlat)
    yield kinds.get("ivf_flat")
    kinds.unregister("ivf_flat")


@pytest.fixture(autouse=True)
def one_faiss_thread():
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def test_the_built_in_kinds_and_the_fallback_order():
    assert kinds.names() == BUILT_IN
    assert kinds.preference() == ("ivf_pq_refine", "ivf_sq8", "hnsw_sq8")  # the fallback order, then exact
    assert kinds.exact().name == "flat" and kinds.untuned().name == "hnsw_sq8"
    assert IndexPolicy().order() == ["ivf_pq_refine", "ivf_sq8", "hnsw_sq8"]
    assert IndexPolicy(kind="ivf_sq8").order() == ["ivf_sq8", "ivf_pq_refine", "hnsw_sq8"]
    assert [kinds.is_approximate(k) for k in BUILT_IN + ["hnsw_flat", None]] == [False, True, True, True, False, False]
    # what each kind says of itself
    table = {k: (kinds.get(k).masks_deletions, kinds.get(k).compacts_in_place) for k in BUILT_IN}
    assert table == {"flat": (False, False), "ivf_pq_refine": (True, True), "ivf_sq8": (True, True),
                     "hnsw_sq8": (True, False)}
    assert kinds.get("ivf_pq_refine").factory(1280, 10**6) == "OPQ160,IVF2048,PQ160x4fs,Refine(SQ8)"
    assert kinds.get("ivf_sq8").factory(64, 100_000) == "IVF1024,SQ8"
    assert kinds.get("hnsw_sq8").factory(64, 10) == "HNSW32_SQ8" and kinds.get("flat").factory(64, 10) == "Flat"


def test_the_registry_refuses_what_would_be_ambiguous():
    with pytest.raises(ValueError, match="unknown index kind 'ivf_pq' \\(known: flat, ivf_pq_refine, ivf_sq8, hnsw_sq8\\)"):
        kinds.get("ivf_pq")
    with pytest.raises(ValueError, match="registered already"):
        kinds.register(type("Again", (IvfFlat,), {"name": "ivf_sq8"}))
    with pytest.raises(ValueError, match="only one kind can be the exact one"):
        kinds.register(type("Exact", (IvfFlat,), {"name": "exact2", "exact": True}))
    with pytest.raises(ValueError, match="lower-case name other than 'auto'"):
        kinds.register(type("Auto", (IvfFlat,), {"name": "auto"}))
    assert kinds.names() == BUILT_IN
    # an index of no registered kind (a file of an earlier version) is searched as it is, never built
    legacy = kinds.behaviour("hnsw_flat")
    assert not legacy.exact and not legacy.masks_deletions and "not a kind this simsearch builds" in legacy.unfit(10, 8)


@pytest.mark.parametrize("kind", BUILT_IN)
def test_each_kind_is_recognised_in_its_file_and_estimates_its_size(kind, tmp_path):
    """A built index reads back as its kind; the memory estimate is within 10% of the file (measured
    within 4% at 5,000 x 64, 20,000 x 128 and 3,000 x 256 on random vectors)."""
    of = kinds.get(kind)
    n, dim = 5000, 64
    x = clustered(n, dim=dim)
    index = of.make(dim, n)
    of.train(index, x[:of.train_size(n)])
    kinds.add(index, np.arange(n, dtype=np.int64), x)
    save_index(index, tmp_path / "x.faiss")
    assert kinds.kind_of(load_index(tmp_path / "x.faiss")) == kind
    size = (tmp_path / "x.faiss").stat().st_size
    assert 0.9 * size <= of.memory_bytes(n, dim) <= 1.1 * size, (of.memory_bytes(n, dim), size)


def test_a_registered_kind_is_accepted_by_the_settings(ivf_flat):
    from simsearch.config import Settings
    from simsearch.errors import InvalidInput

    assert Settings.from_env(index_type="IVF_FLAT").index_type == "ivf_flat"
    kinds.unregister("ivf_flat")
    with pytest.raises(InvalidInput, match="SIMSEARCH_INDEX_TYPE: Input should be 'auto', 'flat', 'ivf_pq_refine', "
                                           "'ivf_sq8' or 'hnsw_sq8' \\(got 'ivf_flat'\\)"):
        Settings.from_env(index_type="ivf_flat")


def test_the_policy_picks_builds_and_searches_a_registered_kind(ivf_flat, tmp_path):
    n = 3000
    x = clustered(n, seed=5)
    ids = np.arange(100, 100 + n, dtype=np.int64)
    auto = IndexPolicy(exact_threshold=1000, sample_queries=200)
    assert auto.order() == ["ivf_flat", "ivf_pq_refine", "ivf_sq8", "hnsw_sq8"] and auto.kind_for(n) == "ivf_flat"
    forced = IndexPolicy(exact_threshold=1000, sample_queries=200, kind="ivf_flat")
    for policy in (auto, forced):
        built = build(ids, x, policy)
        assert built.kind == "ivf_flat" and built.recall >= policy.target_recall and not built.rejected
        assert set(built.params) == {"nprobe", "nlist"} and built.params["nlist"] == nlist_for(n)
    assert ivf_flat.unfit(0, 32) == "no vectors" and forced.kind_for(n, dim=32) == "ivf_flat"

    save_index(built.index, tmp_path / "x.faiss")
    loaded = LoadedIndex(index=load_index(tmp_path / "x.faiss"), fingerprint="", generation=0, exact_subset=100)
    assert loaded.kind == "ivf_flat" and loaded.ntotal == n and ivf_flat.get_params(loaded.index) == built.params
    queries = clustered(50, seed=6)
    exact = ids[np.argsort(-(queries @ x.T), axis=1)[:, :10]]
    _, found = loaded.search(queries, 10)
    assert np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)]) >= 0.9
    few, many = ids[::50], ids[::3]  # filters scored exactly (60 ids), and through the index (1,000)
    for allowed in (few, many):
        _, found = loaded.search(queries, 5, allowed_ids=allowed)
        assert np.isin(found[found >= 0], allowed).all() and (found >= 0).sum() >= 0.9 * found.size
    masked = LoadedIndex(index=loaded.index, fingerprint="", generation=0, kind="ivf_flat", masked=ids[:n // 2])
    _, found = masked.search(x[:20], 10)
    assert not np.isin(found, ids[:n // 2]).any()
    assert ivf_flat.compact(loaded.index, ids[:n // 2]) and sorted(index_ids(loaded.index)) == ids[n // 2:].tolist()
    _, found = loaded.search(x[n // 2:n // 2 + 20], 1)
    assert found[:, 0].tolist() == ids[n // 2:n // 2 + 20].tolist()  # each finds itself: renumbered right


def test_the_index_manager_keeps_a_registered_kind(ivf_flat, sqlite_settings):
    from simsearch.context import AppContext

    settings = sqlite_settings.replace(exact_threshold=1000, index_type="ivf_flat")
    ctx = AppContext.open(settings)
    try:
        ctx.indexes.policy = IndexPolicy(exact_threshold=1000, sample_queries=200, kind=ctx.indexes.policy.kind)
        x = clustered(2400, seed=3)
        coll_id, ids = insert_vectors(ctx.db, x)
        first = ctx.index(coll_id, SPACE)
        assert first.kind == "ivf_flat" and state_of(ctx, coll_id).kind == "ivf_flat" and ctx.indexes.builds == 1
        gone = ids[::25]  # 4%: masked, nothing rebuilt
        delete_images(ctx.db, gone)
        ctx.indexes.images_deleted(coll_id, [SPACE])
        after = ctx.indexes.cached(coll_id, SPACE)
        assert ctx.indexes.builds == 1 and after.index is first.index and set(after.masked.tolist()) == set(gone.tolist())
        ctx.indexes.forget(coll_id)  # as another process: the file and the mask in the state, no rebuild
        again = ctx.index(coll_id, SPACE)
        assert ctx.indexes.builds == 1 and again.kind == "ivf_flat" and not np.isin(again.search(x[::25], 10)[1], gone).any()
        delete_images(ctx.db, ids[1::8])  # beyond 10% masked: compacted in place
        compacted = ctx.sync_index(coll_id, SPACE)
        assert ctx.indexes.builds == 1 and not len(compacted.masked)
        assert ctx.indexes.check_recall(coll_id, SPACE)["action"] == "ok"
    finally:
        ctx.close()


# ---- no switch on kind names outside the package -------------------------------------------------
def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_outside_the_kinds_package_names_a_kind():
    """A kind's name as a string constant outside ``simsearch/index/kinds/`` is a switch that a new
    kind would have to join (comparisons, tuples of names, a Literal of the settings)."""
    names = set(kinds.names()) | {"hnsw_flat"}
    found = []
    for path in _python_files(PACKAGE):
        if KINDS_DIR in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, found
    # the check sees a switch where there is one
    switch = ast.parse('if kind == "ivf_sq8":\n    pass')
    assert [n.value for n in ast.walk(switch) if isinstance(n, ast.Constant) and n.value in names] == ["ivf_sq8"]


def test_every_kind_module_registers_itself_and_the_kinds_do_not_import_the_policy():
    """Each class decorated with ``@register`` in the package is registered by importing the package
    (nothing to list anywhere else); the kinds import neither the policy nor the manager (no cycle),
    and not FAISS at import time (the settings read the registry)."""
    decorated = {}
    for path in _python_files(KINDS_DIR):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "register" for d in node.decorator_list):
                name = next(s.value.value for s in node.body if isinstance(s, ast.Assign)
                            and getattr(s.targets[0], "id", None) == "name")
                decorated[name] = path.stem
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imported = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not [m for m in imported if m.startswith(("simsearch.index.policy", "simsearch.index.manager",
                                                                  "simsearch.index.updates", "simsearch.index.faiss_index"))], path
    assert sorted(decorated) == sorted(BUILT_IN) and decorated == {k: k for k in BUILT_IN}
    code = "import sys; from simsearch.index import kinds; print(kinds.names(), 'faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == f"{BUILT_IN} False", out.stderr[-2000:]
