"""Search with several examples (docs/search-examples.md) on real vectors: 20 photos of each of the
five flowers classes embedded with EfficientNet-Lite0, through the op, the API and the CLI.
The scoring itself is tested in tests/test_search_examples_math.py."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest
from click.testing import CliRunner

from simsearch.errors import InvalidInput, NotFound
from simsearch.ops import examples as X
from simsearch.ops import search as ops_search
from tests.conftest import FLOWERS, copy_subset, dataset_files, upgraded
from tests.helpers.api import SPACE, assert_error

pytestmark = pytest.mark.model
PER_CLASS = 20


@pytest.fixture(scope="module")
def flowers(tmp_path_factory, weights_dir):
    """An app over a collection 'flowers' (PER_CLASS of each class, labelled) and a second one, 'other'."""
    from simsearch.config import Settings
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.web import create_app, shutdown

    base = tmp_path_factory.mktemp("examples")
    home = base / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                          weights_path=weights_dir))
    app = create_app({"SETTINGS": settings, "TESTING": True})
    ctx = app.extensions["simsearch"]
    files, _ = files_from_folder(copy_subset(base / "flowers", PER_CLASS, dataset=FLOWERS), labels="folders")
    assert Ingester(ctx, spaces=[SPACE]).run("flowers", files, source="flowers").added == 5 * PER_CLASS
    other, _ = files_from_folder(copy_subset(base / "other", 2, start=PER_CLASS, dataset=FLOWERS), labels="folders")
    Ingester(ctx, spaces=[SPACE]).run("other", other, source="other")
    app.env = {"SIMSEARCH_HOME": str(home), "SIMSEARCH_DATABASE_URL": settings.database_url,
               "SIMSEARCH_WEIGHTS_DIR": str(weights_dir), "SIMSEARCH_REDIS_URL": ""}
    yield app
    shutdown(app)


def ids_of(ctx, collection: str, label: str | None = None) -> list[int]:
    from sqlalchemy import select

    from simsearch.store import repo
    from simsearch.store.models import Image

    with ctx.db.session() as s:
        coll = repo.get_collection(s, collection)
        q = select(Image.id).where(Image.collection_id == coll.id).order_by(Image.id)
        return list(s.scalars(q.where(Image.label == label) if label else q))


@pytest.fixture(scope="module")
def ctx(flowers):
    return flowers.extensions["simsearch"]


def labels(out) -> Counter:
    return Counter(r["label"] for r in out["results"])


def test_negatives_push_the_unwanted_class_down(ctx):
    """What a curator does: three daisies as positives; the look-alike class that comes up among
    the results; its two best-ranked images marked "less like this"."""
    like = ids_of(ctx, "flowers", "daisy")[:3]
    plain = X.search(ctx, "flowers", like=like, k=15)
    wrong = Counter(r["label"] for r in plain["results"] if r["label"] != "daisy")
    assert wrong, labels(plain)
    unwanted = wrong.most_common(1)[0][0]
    unlike = [r["image_id"] for r in plain["results"] if r["label"] == unwanted][:2]
    out = X.search(ctx, "flowers", like=like, unlike=unlike, k=15)
    print(f"\nplain: {dict(labels(plain))}; less like two {unwanted}: {dict(labels(out))}")
    assert labels(out)[unwanted] < labels(plain)[unwanted]
    assert labels(out)["daisy"] >= labels(plain)["daisy"]
    assert out["exact"] and out["backbone"] == SPACE and out["candidates"] >= 15
    got = {r["image_id"] for r in out["results"]}
    assert not got & set(like + unlike)  # the examples themselves are left out
    scores = [r["score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True)
    pushed = [r for r in out["results"] if r["penalty"]]
    for r in out["results"]:
        assert r["score"] == pytest.approx(r["like"] - r["penalty"], abs=2e-6)
        assert r["unlike_example"]["image_id"] in unlike
    assert all(r["unlike"] > 0 for r in pushed)
    assert out["unlike"] == [{"image_id": i} for i in unlike]


def test_one_example_gives_the_plain_search_and_its_percentiles(ctx):
    first = ids_of(ctx, "flowers", "tulip")[0]
    plain = ops_search.by_image(ctx, first, k=8)
    one = X.search(ctx, "flowers", like=[first], k=8)
    assert [r["image_id"] for r in one["results"]] == [r["image_id"] for r in plain["results"]]
    for a, b in zip(one["results"], plain["results"]):
        assert a["score"] == pytest.approx(b["score"], abs=1e-5) and a["percentile"] == pytest.approx(b["percentile"], abs=0.2)
        assert a["penalty"] is None and a["unlike"] is None


def test_threshold_and_percentile_leave_out_the_weaker_results(ctx):
    like = ids_of(ctx, "flowers", "sunflower")[:2]
    every = X.search(ctx, "flowers", like=like, k=60)
    cut = every["results"][9]["score"]
    out = X.search(ctx, "flowers", like=like, k=60, threshold=cut)
    assert [r["image_id"] for r in out["results"]] == [r["image_id"] for r in every["results"][:10]]
    assert out["score_threshold"] == pytest.approx(cut) and out["exact"]
    mid = X.search(ctx, "flowers", like=like, k=60, min_percentile=50)
    assert mid["percentile_applied"] and 0 < len(mid["results"]) < 60
    assert all(r["percentile"] >= 50 for r in mid["results"])
    assert [r["image_id"] for r in mid["results"]] == [r["image_id"] for r in every["results"][:len(mid["results"])]]
    assert X.search(ctx, "flowers", like=like, threshold=1.0)["results"] == []


def test_uploaded_examples_and_ids_mix(ctx):
    held_out = dataset_files(FLOWERS / "sunflower", 2, start=PER_CLASS + 3)
    out = X.search(ctx, "flowers", like_files=[X.Upload(p.read_bytes(), p.name) for p in held_out],
                   like=ids_of(ctx, "flowers", "sunflower")[:1], k=10)
    assert labels(out).most_common(1)[0][0] == "sunflower" and labels(out)["sunflower"] >= 4, labels(out)
    assert out["like"][1:] == [{"filename": p.name, "bytes": p.stat().st_size} for p in held_out]


def test_bad_examples_are_refused_naming_the_field(ctx):
    from simsearch.store import repo
    from simsearch.store.models import Image

    daisy = ids_of(ctx, "flowers", "daisy")
    cases = [({"like": []}, "like"), ({"like": [10**9]}, "like"), ({"like": ids_of(ctx, "other")[:1]}, "like"),
             ({"like": daisy[:1], "unlike": daisy[:1]}, "unlike"), ({"like": daisy[:1], "threshold": 1.5}, "threshold"),
             ({"like": daisy[:1], "min_percentile": -1}, "min_percentile"), ({"like": daisy[:1], "k": 0}, "k"),
             ({"like": daisy[:1], "unlike_weight": -0.5}, "unlike_weight"),
             ({"like": daisy[:1], "unlike_files": [X.Upload(b"not an image", "notes.txt")]}, "unlike_image")]
    for kwargs, field in cases:
        with pytest.raises(InvalidInput) as err:
            X.search(ctx, "flowers", **kwargs)
        assert err.value.field == field, (kwargs, err.value.message)
    # an image of the collection without a vector in the space searched: one space for every example
    with ctx.db.session() as s:
        img = Image(collection_id=repo.get_collection(s, "flowers").id, content_hash="no-vector", source_path="/x/n.jpg")
        s.add(img)
        s.commit()
        lone = img.id
    try:
        with pytest.raises(InvalidInput) as err:
            X.search(ctx, "flowers", like=daisy[:1], unlike=[lone])
        assert err.value.field == "unlike" and "one space" in err.value.message
    finally:
        with ctx.db.session() as s:
            s.delete(s.get(Image, lone))
            s.commit()
    with pytest.raises(NotFound):
        X.search(ctx, "flowers", like=daisy[:1], backbone="efficientnet_lite1")


def test_api_json_and_multipart(flowers, ctx):
    from simsearch.web import schemas as S

    client = flowers.test_client()
    daisy, rose = ids_of(ctx, "flowers", "daisy"), ids_of(ctx, "flowers", "rose")
    resp = client.post("/api/collections/flowers/search/examples",
                       json={"like": daisy[:3], "unlike": rose[:1], "k": 12, "min_percentile": 10})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    S.ExamplesResult.model_validate(body)  # the documented shape
    assert len(body["results"]) <= 12 and body["results"][0]["thumbnail_url"].endswith("/thumbnail")
    assert body["like"] == [{"image_id": i} for i in daisy[:3]] and body["min_percentile"] == 10
    held_out = dataset_files(FLOWERS / "rose", 1, start=PER_CLASS + 1)[0]
    resp = client.post("/api/collections/flowers/search/examples", content_type="multipart/form-data", data={
        "like": f"{rose[0]},{rose[1]}", "unlike": str(daisy[0]), "k": "8", "threshold": "",
        "like_image": (io.BytesIO(held_out.read_bytes()), held_out.name)})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["like"][:2] == [{"image_id": rose[0]}, {"image_id": rose[1]}] and body["like"][2]["filename"] == held_out.name
    assert Counter(r["label"] for r in body["results"]).most_common(1)[0][0] == "rose", body["results"]
    url = "/api/collections/flowers/search/examples"
    assert_error(client.post(url, json={"unlike": daisy[:1]}), 400, "invalid_input", "like")
    assert_error(client.post(url, json={"like": [10**9]}), 400, "invalid_input", "like")
    assert_error(client.post(url, json={"like": ["a"]}), 400, "invalid_input", "like")
    assert_error(client.post(url, json={"like": daisy[:1], "threshold": 3}), 400, "invalid_input", "threshold")
    assert_error(client.post(url, json={"like": daisy[:1], "colour": "red"}), 400, "invalid_input", "colour")
    assert_error(client.post(url, json={"like": list(range(1, 200))}), 400, "invalid_input", "like")
    assert_error(client.post(url, data=b"like=1", content_type="text/plain"), 400, "invalid_input", "like")
    assert_error(client.post(url, content_type="multipart/form-data", data={
        "like": str(daisy[0]), "unlike_image": (io.BytesIO(b"just notes"), "notes.txt")}), 400, "bad_image", "unlike_image")
    assert_error(client.post(url, content_type="multipart/form-data", data={"like": "x"}), 400, "invalid_input", "like")
    assert_error(client.post("/api/collections/nope/search/examples", json={"like": [1]}), 404, "not_found")
    spec = client.get("/api/openapi.json").get_json()
    content = spec["paths"]["/api/collections/{name}/search/examples"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}


def test_cli_like_unlike_threshold(flowers, ctx, tmp_path):
    from simsearch.cli import cli

    runner = CliRunner()

    def run(*args, code=0):
        r = runner.invoke(cli, [str(a) for a in args], env=flowers.env, catch_exceptions=False)
        assert r.exit_code == code, r.output
        return r.output

    daisy, dandelion = ids_of(ctx, "flowers", "daisy"), ids_of(ctx, "flowers", "dandelion")
    out = json.loads(run("search", "-c", "flowers", "--like", daisy[0], "--like", daisy[1], "--unlike", dandelion[0],
                         "-k", "6", "--threshold", "0.3", "--json"))
    api = X.search(ctx, "flowers", like=daisy[:2], unlike=dandelion[:1], k=6, threshold=0.3)
    assert [r["image_id"] for r in out["results"]] == [r["image_id"] for r in api["results"]]
    assert out["score_threshold"] == 0.3
    held_out = dataset_files(FLOWERS / "daisy", 1, start=PER_CLASS + 2)[0]
    text = run("search", held_out, "-c", "flowers", "--like", daisy[0], "--unlike", dandelion[0], "-k", "5")
    assert text.startswith(f"5 most like #{daisy[0]}, {held_out} and least like #{dandelion[0]} in flowers")
    assert "error: unlike: image" in run("search", "-c", "flowers", "--like", daisy[0], "--unlike", daisy[0], code=2)
    assert "--like: missing.jpg is no image id" in run("search", "-c", "flowers", "--like", "missing.jpg", code=2)
    assert "give an IMAGE" in run("search", "-c", "flowers", code=2)
    assert "--box" in run("search", held_out, "-c", "flowers", "--like", daisy[0], "--box", "0,0,1,1", code=2)
    assert "min_percentile must be <= 100" in run("search", "-c", "flowers", "--like", daisy[0], "--min-percentile", 101, code=2)


def test_on_both_databases(ctx_both, tmp_path):
    """The op's queries (examples' rows, vectors, hits) on SQLite and PostgreSQL (``settings``: both)."""
    from simsearch.ingest import Ingester, files_from_folder

    files, _ = files_from_folder(copy_subset(tmp_path / "f", 4, dataset=FLOWERS), labels="folders")
    Ingester(ctx_both, spaces=[SPACE]).run("f", files, source="f")
    tulips, roses = ids_of(ctx_both, "f", "tulip"), ids_of(ctx_both, "f", "rose")
    out = X.search(ctx_both, "f", like=tulips[:2], unlike=roses[:1], k=5, label="tulip")
    assert [r["label"] for r in out["results"]] == ["tulip", "tulip"] and out["exact"]
    with pytest.raises(InvalidInput):
        X.search(ctx_both, "f", like=[10**9])


@pytest.fixture
def ctx_both(settings):
    from simsearch.context import AppContext

    app_ctx = AppContext.open(settings)
    yield app_ctx
    app_ctx.close()
