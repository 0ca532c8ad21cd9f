"""A search with examples in a space of imported vectors (no model runs): the CLI over two tight
groups of 8-d vectors, and uploads refused (no model here can embed a file in that space)."""

from __future__ import annotations

import json

from tests.conftest import CATS_DOGS, dataset_files
from tests.helpers.cli import SPACE, env, imported, run  # noqa: F401 (fixtures)


def test_a_negative_of_one_group_leaves_the_other(run, imported):
    a = [i for path, i in sorted(imported.items()) if "/a/" in path]
    b = [i for path, i in sorted(imported.items()) if "/b/" in path]
    group = {i: "a" for i in a} | {i: "b" for i in b}
    both = json.loads(run("search", "-c", "ext", "--like", a[0], "--like", b[0], "-k", "28", "--json").output)
    assert both["backbone"] == SPACE and {group[r["image_id"]] for r in both["results"][:6]} == {"a", "b"}
    out = json.loads(run("search", "-c", "ext", "--like", a[0], "--like", b[0], "--unlike", b[1], "-k", "28", "--json").output)
    ranked = [group[r["image_id"]] for r in out["results"]]
    assert ranked == ["a"] * 14 + ["b"] * 13, ranked  # every b pushed below every a
    assert all(r["penalty"] > 0 and r["unlike_example"] == {"image_id": b[1]} for r in out["results"][14:])
    assert out["exact"] and not {a[0], b[0], b[1]} & {r["image_id"] for r in out["results"]}
    cut = json.loads(run("search", "-c", "ext", "--like", a[0], "--like", b[0], "--unlike", b[1], "--threshold",
                         out["results"][13]["score"], "--json").output)
    assert [r["image_id"] for r in cut["results"]] == [r["image_id"] for r in out["results"][:10]]


def test_uploads_cannot_be_embedded_in_imported_vectors(run, imported):
    photo = dataset_files(CATS_DOGS / "cats", 1)[0]
    first = next(iter(imported.values()))
    r = run("search", "-c", "ext", "--like", first, "--unlike", photo, code=1)
    assert "imported vectors" in r.output and "give examples by image id" in r.output
