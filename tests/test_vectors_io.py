"""Vectors in and out (both databases): import an .npz, export one; the round trip is exact; bad files
are refused naming the array and row, with nothing stored; imported spaces work for listing,
similar-by-id, clusters and maps, and refuse search by image; the CLI and the API on the same
operations."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from simsearch.cli import cli
from simsearch.errors import Conflict, InvalidInput, NotFound
from simsearch.ops import analysis, collections as ops_collections, comparison
from simsearch.ops.vectors_io import export_stream, import_hash, import_vectors
from simsearch.search import search_image, similar_to
from simsearch.store import repo
from simsearch.store.models import Collection, Embedding, Image
from tests.conftest import CATS_DOGS, dataset_files
from tests.helpers.db import add_images

EXT = "clip-vit-b32"


def unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def exported(ctx, collection: str, space: str | None = None, **kw) -> dict:
    info, chunks = export_stream(ctx, collection, space, **kw)
    data = b"".join(chunks)
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        return {"info": info, **{k: f[k] for k in f.files}}


def counts(ctx) -> tuple[int, int, int]:
    with ctx.db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Collection, Image, Embedding))


def test_round_trip_is_exact(ctx, tmp_path):
    x = unit(300, 48)
    keys = np.array([f"photos/{i:04d}.jpg" for i in range(300)])
    labels = np.array(["cat" if i % 3 else "" for i in range(300)])
    meta = np.array([json.dumps({"i": str(i)}) if i % 2 else "" for i in range(300)])
    out = import_vectors(ctx, npz(tmp_path / "in.npz", vectors=x, keys=keys, labels=labels, metadata=meta), "ext", EXT)
    assert (out["vectors_added"], out["images_created"], out["images_matched"], out["normalised"]) == (300, 300, 0, 0)
    assert out["imported_space"] and out["index"]["vectors"] == 300 and out["labels_set"] == 200
    got = exported(ctx, "ext")  # the default space: the collection's only one
    assert got["info"]["backbone"] == EXT and got["vectors"].dtype == np.float32
    assert got["vectors"].tobytes() == x.tobytes()  # bit for bit
    assert got["keys"].tolist() == keys.tolist() and got["labels"].tolist() == labels.tolist()
    assert [json.loads(m) for m in got["metadata"]] == [json.loads(m) if m else {} for m in meta]
    with ctx.db.session() as s:
        img = s.get(Image, int(got["ids"][0]))
        assert (img.source_path, img.content_hash, img.thumbnail_hash) == ("photos/0000.jpg", import_hash("photos/0000.jpg"), None)
    # The export imports again as it is: every key finds its image, every vector is already there.
    again = import_vectors(ctx, npz(tmp_path / "again.npz", **{k: v for k, v in got.items() if k != "info"}), "ext", EXT)
    assert (again["vectors_added"], again["already_present"], again["images_created"]) == (0, 300, 0)
    assert again["ignored_arrays"] == ["ids", "paths"] and counts(ctx) == (1, 300, 300)


def test_compressed_big_endian_and_column_major_files_read_the_same(ctx, tmp_path):
    x = unit(3000, 24)
    keys = np.array([f"k{i}" for i in range(3000)])
    np.savez_compressed(tmp_path / "z.npz", vectors=x, keys=keys)
    npz(tmp_path / "be.npz", vectors=x.astype(">f4"), keys=keys)
    npz(tmp_path / "f.npz", vectors=np.asfortranarray(x), keys=keys.astype("S"))
    for i, name in enumerate(("z.npz", "be.npz", "f.npz")):
        out = import_vectors(ctx, tmp_path / name, f"c{i}", EXT)
        assert (out["vectors_added"], out["normalised"]) == (3000, 0)
        assert exported(ctx, f"c{i}")["vectors"].tobytes() == x.tobytes()
    # a byte changed inside the (uncompressed) vectors: the zip's CRC-32 says so, nothing is stored
    data = bytearray(npz(tmp_path / "d.npz", vectors=x, keys=keys).read_bytes())
    at = bytes(data).find(x[1500].tobytes())
    data[at + 1] ^= 0x01
    (tmp_path / "d.npz").write_bytes(bytes(data))
    before = counts(ctx)
    with pytest.raises(InvalidInput, match="vectors: the file is damaged \\(CRC-32"):
        import_vectors(ctx, tmp_path / "d.npz", "d", EXT)
    assert counts(ctx) == before


def test_vectors_are_normalised_and_keys_match_source_paths(ctx, tmp_path):
    coll_id, ids, _ = add_images(ctx.db, name="pets", n=6, dim=8)  # source paths /x/0.jpg ... /x/5.jpg
    raw = np.random.default_rng(3).uniform(0.5, 4, (4, 16)).astype(np.float64)  # float64, not unit length
    keys = np.array(["/x/1.jpg", "/x/4.jpg", "elsewhere/a.png", "b"])
    out = import_vectors(ctx, npz(tmp_path / "v.npz", vectors=raw, keys=keys, labels=np.array(["one", "", "two", " "])),
                         "pets", EXT)
    assert (out["images_matched"], out["images_created"], out["normalised"]) == (2, 2, 4)
    with ctx.db.session() as s:
        got_ids, x = repo.load_vectors(s, coll_id, EXT)
        assert got_ids[:2].tolist() == [ids[1], ids[4]]
        assert s.get(Image, int(ids[1])).label == "one" and s.get(Image, int(ids[4])).label in ("a", "b")  # "" keeps it
        assert s.get(Image, int(got_ids[3])).label is None  # blank label: none
    np.testing.assert_allclose(x, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-6)


def _bad_files(n=5, dim=8):
    x, keys = unit(n, dim), np.array([f"k{i}" for i in range(n)])
    last = n - 1  # the bad row is the last one: earlier rows would be stored if rows were written as read

    def with_row(value, dtype=np.float32):
        y = x.astype(dtype)
        y[last, 3] = value
        return y
    zero = x.copy()
    zero[last] = 0
    dup = keys.copy()
    dup[last] = "k1"
    return {
        "nan": ({"vectors": with_row(np.nan), "keys": keys}, "vectors", f"row {last} (key 'k{last}') contains NaN"),
        "inf": ({"vectors": with_row(np.inf), "keys": keys}, "vectors", f"row {last} (key 'k{last}') contains an infinite"),
        "zero": ({"vectors": zero, "keys": keys}, "vectors", f"row {last} (key 'k{last}') is all zeros"),
        "beyond float32": ({"vectors": with_row(1e300, np.float64), "keys": keys}, "vectors", "beyond float32"),
        "duplicate keys": ({"vectors": x, "keys": dup}, "keys", f"duplicate key 'k1' at rows 1 and {last}"),
        "empty key": ({"vectors": x, "keys": np.array(["a", "", "c", "d", "e"])}, "keys", "row 1 is empty"),
        "no vectors": ({"keys": keys, "vector": x}, "vectors", "has no 'vectors' array (it has: 'keys', 'vector')"),
        "no keys": ({"vectors": x}, "keys", "has no 'keys' array"),
        "keys not strings": ({"vectors": x, "keys": np.arange(n)}, "keys", "keys must be an array of strings"),
        "keys pickled": ({"vectors": x, "keys": keys.astype(object)}, "keys", "object arrays (pickled Python objects) are refused"),
        "keys too few": ({"vectors": x, "keys": keys[:-1]}, "keys", f"shape ({n},), not ({n - 1},)"),
        "vectors 1-D": ({"vectors": x[0], "keys": keys}, "vectors", "2-D array"),
        "vectors int": ({"vectors": (x * 100).astype(np.int32), "keys": keys}, "vectors", "floating point (float32), not int32"),
        "labels too few": ({"vectors": x, "keys": keys, "labels": np.array(["a"])}, "labels", f"shape ({n},)"),
        "metadata not JSON": ({"vectors": x, "keys": keys, "metadata": np.array(["", "{", "", "", ""])}, "metadata",
                              "metadata: row 1 (key 'k1') is not JSON"),
        "metadata not an object": ({"vectors": x, "keys": keys, "metadata": np.array(["[1]"] * n)}, "metadata",
                                   "must be a JSON object"),
    }


@pytest.mark.parametrize("case", list(_bad_files()))
def test_bad_files_are_refused_naming_the_row_and_nothing_is_stored(ctx, tmp_path, case):
    add_images(ctx.db, name="pets", n=3, dim=8, space=EXT)
    before = counts(ctx)
    arrays, field, message = _bad_files()[case]
    with pytest.raises(InvalidInput) as err:
        import_vectors(ctx, npz(tmp_path / "bad.npz", **arrays), "fresh", EXT)  # a new collection: not even that is kept
    assert err.value.field == field and message in err.value.message, err.value.message
    assert counts(ctx) == before


def test_wrong_dimension_truncated_and_non_npz_files_store_nothing(ctx, tmp_path):
    add_images(ctx.db, name="pets", n=3, dim=8, space=EXT)
    before = counts(ctx)
    keys = np.array(["a", "b"])
    cases = [(npz(tmp_path / "d.npz", vectors=unit(2, 9), keys=keys), "pets", EXT, "vectors have 9 dimensions, but "
              f"{EXT} vectors have 8 (the vectors already imported there)"),
             (npz(tmp_path / "b.npz", vectors=unit(2, 9), keys=keys), "pets", "efficientnet_lite0",
              "vectors have 9 dimensions, but efficientnet_lite0 vectors have 1280 (the backbone's output)"),
             (tmp_path / "not.npz", "pets", EXT, "is not an .npz file")]
    (tmp_path / "not.npz").write_text("vectors,keys\n1,a\n")
    big = npz(tmp_path / "big.npz", vectors=unit(40000, 8), keys=np.array([f"k{i}" for i in range(40000)]))
    (tmp_path / "cut.npz").write_bytes(big.read_bytes()[:900_000])  # an interrupted download
    cases.append((tmp_path / "cut.npz", "pets", EXT, "is not an .npz file (numpy.savez) with 'vectors' (N x D float32) "
                  "and 'keys' (N unique strings), optional 'labels', or is truncated"))
    for path, coll, space, message in cases:
        with pytest.raises(InvalidInput) as err:
            import_vectors(ctx, path, coll, space)
        assert message in err.value.message, err.value.message
        assert counts(ctx) == before
    with pytest.raises(InvalidInput, match="not valid"):
        import_vectors(ctx, big, "bad name", EXT)
    with pytest.raises(InvalidInput, match="unknown backbone 'a b'"):
        import_vectors(ctx, big, "pets", "a b")
    assert counts(ctx) == before


def test_a_failure_while_writing_rolls_everything_back(ctx, tmp_path, monkeypatch):
    from simsearch.store import bulk

    n = 40000  # three blocks of vectors: the failure comes after the first was written
    src = npz(tmp_path / "v.npz", vectors=unit(n, 4), keys=np.array([f"k{i}" for i in range(n)]))
    before, calls = counts(ctx), []
    write = bulk.write_vectors

    def failing(session, prepared, now):
        calls.append(len(prepared))
        if len(calls) == 2:
            raise OSError("disk full")
        write(session, prepared, now)

    monkeypatch.setattr(bulk, "write_vectors", failing)
    with pytest.raises(OSError, match="disk full"):
        import_vectors(ctx, src, "fresh", EXT)
    assert len(calls) == 2 and counts(ctx) == before


def test_a_different_vector_for_an_image_that_has_one_is_a_conflict(ctx, tmp_path):
    coll_id, ids, vecs = add_images(ctx.db, name="pets", n=4, dim=8, space=EXT)
    before = counts(ctx)
    keys = np.array(["new-1", "/x/2.jpg", "new-2"])
    changed = np.stack([unit(1, 8, 5)[0], -vecs[2], unit(1, 8, 6)[0]])
    with pytest.raises(Conflict, match=f"row 1 \\(key '/x/2.jpg'\\): image {ids[2]} already has a different {EXT} vector"):
        import_vectors(ctx, npz(tmp_path / "c.npz", vectors=changed, keys=keys), "pets", EXT)
    assert counts(ctx) == before
    same = np.stack([unit(1, 8, 5)[0], vecs[2], unit(1, 8, 6)[0]])
    out = import_vectors(ctx, npz(tmp_path / "s.npz", vectors=same, keys=keys), "pets", EXT)
    assert (out["vectors_added"], out["already_present"], out["images_created"]) == (2, 1, 2)


def test_export_errors(ctx):
    add_images(ctx.db, name="pets", n=3, dim=8)
    with pytest.raises(NotFound, match="no collection named 'nope'"):
        export_stream(ctx, "nope")
    with pytest.raises(NotFound, match="no vectors for backbone 'clip' in this collection \\(it has: efficientnet_lite0\\)"):
        export_stream(ctx, "pets", "clip")
    with pytest.raises(InvalidInput, match="unknown backbone"):
        export_stream(ctx, "pets", "what ever")


def test_an_imported_space_lists_finds_clusters_and_maps_but_cannot_embed(ctx, tmp_path):
    centres = unit(3, 32, 9)
    x = np.repeat(centres, 20, axis=0) + 0.05 * np.random.default_rng(1).standard_normal((60, 32)).astype(np.float32)
    keys = np.array([f"item-{i}" for i in range(60)])
    import_vectors(ctx, npz(tmp_path / "v.npz", vectors=x, keys=keys, labels=np.array(["abc"[i // 20] for i in range(60)])),
                   "ext", EXT)
    listed = ops_collections.list_collections(ctx, check_indexes=True)[0]
    assert listed["images_ok"] == 60 and list(listed["backbones"]) == [EXT]
    assert (listed["backbones"][EXT]["vectors_in_db"], listed["backbones"][EXT]["vectors_in_index"]) == (60, 60)
    assert listed["backbones"][EXT]["index"]["kind"] == "flat"  # 60 vectors: exact search
    with ctx.db.session() as s:
        first = int(s.scalar(select(Image.id).where(Image.source_path == "item-0")))
    space, _, hits = similar_to(ctx, first, k=5)
    assert space == EXT and len(hits) == 5 and all(h.label == "a" for h in hits)
    clusters = analysis.clusters(ctx, "ext", k=3)
    assert clusters.backbone == EXT and sorted(c.size for c in clusters.clusters) == [20, 20, 20]
    assert len(analysis.map_2d(ctx, "ext", EXT).to_dict()["ids"]) == 60
    panel = comparison.compare(ctx, "ext", [EXT], with_maps=False).backbones[0]  # compared like a backbone, nothing embedded
    assert (panel.available, panel.dim, panel.input_size, panel.n_images) == (True, 32, None, 60)
    with pytest.raises(NotFound, match="no vectors for backbone 'clip'"):  # a name the collection has no vectors for
        comparison.compare(ctx, "ext", ["clip"])
    image = dataset_files(CATS_DOGS / "cats", 1)[0].read_bytes()
    for space in (None, EXT):
        with pytest.raises(Conflict, match="were imported .* cannot embed an image in that space"):
            search_image(ctx, "ext", image, "cat.jpg", space=space)


@pytest.mark.model
def test_real_embeddings_exported_and_imported_give_the_same_neighbours(ctx, tmp_path):
    from tests.conftest import copy_subset
    from tests.helpers.db import SPACE, ingest

    ingest(ctx, copy_subset(tmp_path / "pets", 5))
    got = exported(ctx, "pets")
    assert got["vectors"].shape == (10, 1280) and set(got["labels"]) == {"cats", "dogs"}
    out = import_vectors(ctx, npz(tmp_path / "e.npz", **{k: v for k, v in got.items() if k != "info"}), "copy", SPACE)
    assert (out["vectors_added"], out["normalised"], out["imported_space"]) == (10, 0, False)
    copy = exported(ctx, "copy")
    assert copy["vectors"].tobytes() == got["vectors"].tobytes() and copy["keys"].tolist() == got["keys"].tolist()
    by_key = dict(zip(copy["keys"].tolist(), copy["ids"].tolist()))
    key_of = dict(zip(got["ids"].tolist(), got["keys"].tolist()))
    for image_id in got["ids"][:3].tolist():
        original = [(key_of[h.image_id], round(h.score, 5)) for h in similar_to(ctx, image_id, k=4)[2]]
        imported = similar_to(ctx, by_key[key_of[image_id]], k=4)[2]
        assert [(h.path, round(h.score, 5)) for h in imported] == original
    # search by an image works in the imported backbone space: its model embeds the query
    space, hits = search_image(ctx, "copy", dataset_files(CATS_DOGS / "cats", 1)[0].read_bytes(), "cat.jpg", k=1)
    assert space == SPACE and hits[0].score > 0.99


# ---- the CLI ---------------------------------------------------------------------------------

@pytest.fixture
def run(settings):
    env = {"SIMSEARCH_HOME": str(settings.home), "SIMSEARCH_DATABASE_URL": settings.database_url, "SIMSEARCH_REDIS_URL": ""}
    runner = CliRunner()

    def _run(*args, code=0):
        result = runner.invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    return _run


def test_cli_import_and_export(run, tmp_path):
    x = unit(20, 16)
    keys = np.array([f"k{i}" for i in range(20)])
    src = npz(tmp_path / "v.npz", vectors=x, keys=keys)
    out = run("import-vectors", src, "--collection", "ext", "--space", EXT)
    assert f"20 vectors added to {EXT}" in out and "20 new images" in out and "index: 20 vectors" in out
    report = json.loads(run("import-vectors", src, "-c", "ext", "-s", EXT, "--json"))
    assert report["already_present"] == 20
    out = run("export", "--collection", "ext", "--out", tmp_path / "out.npz")
    assert f"wrote 20 vectors (16-d, {EXT}) of ext" in out
    with np.load(tmp_path / "out.npz") as f:
        assert f["vectors"].tobytes() == x.tobytes() and f["keys"].tolist() == keys.tolist()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out.npz")] == ["out.npz"]  # no temp file left


def test_cli_errors_are_one_line_and_exit_2(run, tmp_path):
    nan = unit(3, 4)
    nan[2, 0] = np.nan
    cases = [
        (("import-vectors", npz(tmp_path / "n.npz", vectors=nan, keys=np.array(["a", "b", "c"])), "-c", "x", "-s", EXT),
         "error: vectors: row 2 (key 'c') contains NaN"),
        (("import-vectors", tmp_path / "missing.npz", "-c", "x", "-s", EXT), "error: "),
        (("export", "-c", "nope", "-o", tmp_path / "o.npz"), "error: no collection named 'nope'"),
    ]
    for args, line in cases:
        out = run(*args, code=2)
        assert out.startswith(line) and out.count("\n") == 1, out
    assert json.loads(run("collections", "--json")) == []  # the refused import created nothing


# ---- the API ---------------------------------------------------------------------------------

@pytest.fixture
def client(make_app):
    return make_app().test_client()


def _error(resp, status: int, code: str, field: str | None = None) -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) <= {"code", "message", "field", "details"}
    assert body["error"]["code"] == code and body["error"].get("field") == field, body
    return body["error"]["message"]


def test_api_import_export(client, tmp_path):
    x = unit(30, 16)
    keys = np.array([f"k{i}" for i in range(30)])
    data = npz(tmp_path / "v.npz", vectors=x, keys=keys, labels=np.array(["a"] * 30)).read_bytes()
    url = f"/api/collections/ext/vectors?backbone={EXT}"
    resp = client.post(url, data=data, content_type="application/octet-stream")
    assert resp.status_code == 200 and resp.get_json()["vectors_added"] == 30 and resp.get_json()["index"]["vectors"] == 30
    resp = client.post(url, data={"file": (io.BytesIO(data), "v.npz")}, content_type="multipart/form-data")
    assert resp.status_code == 200 and resp.get_json()["already_present"] == 30
    resp = client.get("/api/collections/ext/vectors")
    assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="ext-{EXT}.npz"'
    with np.load(io.BytesIO(resp.data)) as f:
        assert f["vectors"].tobytes() == x.tobytes() and f["keys"].tolist() == keys.tolist()
    image_id = client.get("/api/collections/ext/images?per_page=1").get_json()["images"][0]["id"]
    similar = client.get(f"/api/images/{image_id}/similar?k=3&backbone={EXT}")
    assert similar.status_code == 200 and len(similar.get_json()["results"]) == 3
    cat = dataset_files(CATS_DOGS / "cats", 1)[0].read_bytes()
    assert "imported" in _error(client.post("/api/collections/ext/search", data=cat, content_type="image/jpeg"),
                                409, "conflict", "backbone")


def test_api_errors(client, tmp_path):
    nan = unit(3, 4)
    nan[1, 2] = np.inf
    bad = npz(tmp_path / "n.npz", vectors=nan, keys=np.array(["a", "b", "c"])).read_bytes()
    url = f"/api/collections/ext/vectors?backbone={EXT}"
    assert "row 1 (key 'b') contains an infinite value" in _error(
        client.post(url, data=bad, content_type="application/octet-stream"), 400, "invalid_input", "vectors")
    assert "not an .npz" in _error(client.post(url, data=b"nope", content_type="application/octet-stream"),
                                   400, "invalid_input", "file")
    _error(client.post(url, data=b"", content_type="application/octet-stream"), 400, "invalid_input", "file")
    _error(client.post(url, data={"other": "x"}, content_type="multipart/form-data"), 400, "invalid_input", "file")
    _error(client.post("/api/collections/ext/vectors", data=bad, content_type="application/octet-stream"),
           400, "invalid_input", "backbone")
    _error(client.post("/api/collections/ext/vectors?backbone=a%20b", data=bad, content_type="application/octet-stream"),
           400, "invalid_input", "backbone")
    assert client.get("/api/collections").get_json()["collections"] == []  # nothing stored
    _error(client.get("/api/collections/nope/vectors"), 404, "not_found", "collection")
    ok = npz(tmp_path / "ok.npz", vectors=unit(3, 4), keys=np.array(["a", "b", "c"])).read_bytes()
    client.post(url, data=ok, content_type="application/octet-stream")
    _error(client.get("/api/collections/ext/vectors?backbone=resnet50"), 404, "not_found", "backbone")
    _error(client.get("/api/collections/ext/vectors?backbone=a%20b"), 400, "invalid_input", "backbone")
    _error(client.get("/api/collections/ext/vectors?format=csv"), 400, "invalid_input", "format")
    changed = npz(tmp_path / "c.npz", vectors=-unit(3, 4), keys=np.array(["a", "b", "c"])).read_bytes()
    _error(client.post(url, data=changed, content_type="application/octet-stream"), 409, "conflict", "vectors")


def test_api_documents_both_endpoints(client):
    spec = client.get("/api/openapi.json").get_json()
    ops = spec["paths"]["/api/collections/{name}/vectors"]
    assert set(ops["post"]["requestBody"]["content"]) == {"application/octet-stream", "multipart/form-data"}
    assert {"200", "400", "409", "413"} <= set(ops["post"]["responses"])
    assert set(ops["get"]["responses"]["200"]["content"]) == {"application/octet-stream"}
    assert {"400", "404"} <= set(ops["get"]["responses"])
    backbone = next(p for p in ops["post"]["parameters"] if p["name"] == "backbone")
    assert backbone["required"] and len([o["pattern"] for o in backbone["schema"]["anyOf"]]) == 2
