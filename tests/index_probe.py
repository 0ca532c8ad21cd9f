"""Builds and searches real indexes, one case after another, for tests/test_index_sizes.py, which
runs it in a subprocess: a crash in FAISS (a segfault, or heap corruption that glibc's malloc
check aborts on) then fails that test instead of killing pytest, and the last case this printed
a start for names the culprit.

    python tests/index_probe.py '[["ivf_pq_refine", 400, 1280], ...]'

Each case: ``n`` clustered, L2-normalised vectors of ``dim`` dimensions, built by the index policy
with the kind forced (approximate from one vector), then searched the ways a request searches:
top-10, everything, filtered (exact over the subset, and through the index's own selector),
with deletions masked, and after a save and load. One JSON line when a case starts, one with what
was built and found when it ends; exit status 1 when a search answered wrongly."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import faiss
import numpy as np

from simsearch.index import kinds
from simsearch.index.faiss_index import LoadedIndex, load_index, save_index
from simsearch.index.policy import IndexPolicy, build


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Vectors around 20 centres (neighbours mean something), L2-normalised."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((20, dim))
    x = centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def check(found: np.ndarray, allowed: set[int], label: str, problems: list[str], at_least: int = 1) -> None:
    for row in np.atleast_2d(found):
        got = [int(i) for i in row if i >= 0]
        if len(set(got)) != len(got):
            problems.append(f"{label}: duplicate ids {got}")
        if not set(got) <= allowed:
            problems.append(f"{label}: ids outside the allowed set: {sorted(set(got) - allowed)[:5]}")
        if len(got) < at_least:
            problems.append(f"{label}: {len(got)} results, expected at least {at_least}")


def probe(kind: str, n: int, dim: int, folder: Path) -> dict:
    x = clustered(n, dim, seed=n)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    policy = IndexPolicy(exact_threshold=1, kind=kind, sample_queries=50)
    built = build(ids, x, policy)
    problems: list[str] = []
    everything = set(ids.tolist())
    q = x[: min(3, n)]
    for exact_subset in (4096, 0):  # filtered searches: exact over the subset, and in the index itself
        loaded = LoadedIndex(index=built.index, fingerprint="", generation=0, kind=built.kind, exact_subset=exact_subset)
        check(loaded.search(q, 10)[1], everything, "top-10", problems)
        check(loaded.search(q, n)[1], everything, "top-n", problems)
        allowed = ids[::2]
        check(loaded.search(q, 5, allowed_ids=allowed)[1], set(allowed.tolist()), f"filtered ({exact_subset})", problems, 0)
        if kinds.get(built.kind).masks_deletions and n > 1:
            masked = ids[: n // 2]
            gone = LoadedIndex(index=built.index, fingerprint="", generation=0, kind=built.kind, masked=masked,
                               exact_subset=exact_subset)
            check(gone.search(q, 10)[1], everything - set(masked.tolist()), f"masked ({exact_subset})", problems, 0)
            check(gone.search(q, 5, allowed_ids=allowed)[1], set(allowed.tolist()) - set(masked.tolist()),
                  f"masked and filtered ({exact_subset})", problems, 0)
    path = folder / f"{kind}-{n}-{dim}.faiss"
    save_index(built.index, path)
    reloaded = LoadedIndex(index=load_index(path), fingerprint="", generation=0)
    check(reloaded.search(q, 10)[1], everything, "reloaded", problems)
    if reloaded.kind != built.kind or reloaded.ntotal != n:
        problems.append(f"reloaded as {reloaded.kind} with {reloaded.ntotal} vectors")
    return {"kind": built.kind, "rejected": built.rejected, "params": built.params, "problems": problems}


def main(cases: list) -> int:
    faiss.omp_set_num_threads(1)
    failed = 0
    with tempfile.TemporaryDirectory() as folder:
        for kind, n, dim in cases:
            print(json.dumps({"start": [kind, n, dim]}), flush=True)
            out = probe(kind, int(n), int(dim), Path(folder))
            failed += bool(out["problems"])
            print(json.dumps({"case": [kind, n, dim], **out}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
