"""Browsing a collection over the API (SQLite and PostgreSQL): the images list sorted and filtered
(label, path text, size, date added, ingest job), several images removed or exported at once,
and the home page's collection cards."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import CATS_DOGS, copy_subset
from tests.helpers.api import assert_error, ingest_folder

pytestmark = pytest.mark.model


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def pets(app, tmp_path):
    """'pets': 4 cats and 4 dogs (labels from folders) in one ingest job, then 2 more cats in a
    second; returns {file name: image record}."""
    first = copy_subset(tmp_path / "pets", 4)
    ingest_folder(app, first)
    more = tmp_path / "more" / "cats"
    more.mkdir(parents=True)
    for n in (5, 6):
        shutil.copy(CATS_DOGS / "cats" / f"cat.{n}.jpg", more / f"cat.{n}.jpg")
    ingest_folder(app, more.parent)
    images = app.test_client().get("/api/collections/pets/images?per_page=100").get_json()["images"]
    return {Path(i["path"]).name: i for i in images}


def listed(client, query: str) -> list[str]:
    resp = client.get(f"/api/collections/pets/images?per_page=100&{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [Path(i["path"]).name for i in resp.get_json()["images"]]


def test_sort_by_each_key(client, app, pets):
    ids = {name: rec["id"] for name, rec in pets.items()}
    assert listed(client, "") == sorted(ids, key=ids.get)
    assert listed(client, "sort=-id") == sorted(ids, key=ids.get, reverse=True)
    # sizes are listed, and sort (ties by id)
    sizes = {name: rec["size"] for name, rec in pets.items()}
    assert all(isinstance(v, int) and v > 0 for v in sizes.values())
    assert listed(client, "sort=size") == sorted(ids, key=lambda n: (sizes[n], ids[n]))
    assert listed(client, "sort=-size") == sorted(ids, key=lambda n: (-sizes[n], -ids[n]))
    pixels = {name: rec["width"] * rec["height"] for name, rec in pets.items()}
    assert listed(client, "sort=pixels") == sorted(ids, key=lambda n: (pixels[n], ids[n]))
    # by the path as stored: the second job's folder (<tmp>/more/) before the first's (<tmp>/pets/)
    assert listed(client, "sort=path") == ["cat.5.jpg", "cat.6.jpg", *(f"cat.{n}.jpg" for n in range(1, 5)),
                                           *(f"dog.{n}.jpg" for n in range(1, 5))]
    assert listed(client, "sort=-path")[0] == "dog.4.jpg"
    # date added: the second job's images last, newest first with '-added'
    svc = app.extensions["simsearch"]
    from simsearch.store.models import Image

    with svc.db.session() as s:  # spread the dates so the order is the dates', not the ids'
        base = datetime(2026, 1, 1, tzinfo=timezone.utc)
        for k, name in enumerate(sorted(ids, key=lambda n: -ids[n])):
            s.get(Image, ids[name]).created_at = base + timedelta(days=k)
    assert listed(client, "sort=added") == sorted(ids, key=lambda n: -ids[n])
    assert listed(client, "sort=-added") == sorted(ids, key=ids.get)
    page = client.get("/api/collections/pets/images?sort=-added").get_json()
    assert page["sort"] == "-added"
    labels = listed(client, "sort=label")
    assert [pets[n]["label"] for n in labels] == ["cats"] * 6 + ["dogs"] * 4


def test_filters_by_label_path_size_date_and_run(client, app, pets):
    assert sorted(listed(client, "label=dogs")) == [f"dog.{n}.jpg" for n in (1, 2, 3, 4)]
    assert listed(client, "path=DOG.3") == ["dog.3.jpg"]  # any case
    assert sorted(listed(client, "path=cat.")) == [f"cat.{n}.jpg" for n in range(1, 7)]
    assert listed(client, "path=nothing-like-it") == []
    # the path as shown: a folder above the ingested one (where the server keeps it) never matches
    server_folder = Path(next(iter(pets.values()))["path"]).parts
    assert not any(p.startswith("/") for p in server_folder)
    top = app.extensions["simsearch"].settings.home.parent.name  # the test's tmp folder, above both sources
    assert listed(client, f"path={top}") == []
    sizes = sorted(rec["size"] for rec in pets.values())
    mid = sizes[len(sizes) // 2]
    assert sorted(listed(client, f"min_size={mid}")) == sorted(n for n, r in pets.items() if r["size"] >= mid)
    assert sorted(listed(client, f"max_size={mid}")) == sorted(n for n, r in pets.items() if r["size"] <= mid)
    assert listed(client, f"min_size={mid}&max_size={mid}") == [n for n, r in pets.items() if r["size"] == mid]
    # unlabelled images: label one off
    client.patch(f"/api/images/{pets['dog.2.jpg']['id']}", json={"label": None})
    assert listed(client, "labelled=false") == ["dog.2.jpg"]
    assert len(listed(client, "labelled=true")) == 9
    # date added
    from simsearch.store.models import Image

    with app.extensions["simsearch"].db.session() as s:
        s.get(Image, pets["cat.1.jpg"]["id"]).created_at = datetime(2020, 5, 1, 12, tzinfo=timezone.utc)
    assert listed(client, "added_before=2020-05-01") == ["cat.1.jpg"]  # a date: to its end
    assert listed(client, "added_before=2020-05-01T11:00:00Z") == []
    assert "cat.1.jpg" not in listed(client, "added_after=2020-05-02")
    assert len(listed(client, "added_after=2020-05-01&added_before=2020-05-01T23:00:00%2B00:00")) == 1
    # the ingest job: the second brought cat.5 and cat.6
    jobs = client.get("/api/jobs?collection=pets").get_json()["jobs"]
    second = max(j["id"] for j in jobs if j["kind"] == "ingest")
    assert sorted(listed(client, f"run={second}")) == ["cat.5.jpg", "cat.6.jpg"]
    assert sorted(listed(client, f"run={second}&label=cats&sort=-id")) == ["cat.5.jpg", "cat.6.jpg"]
    page = client.get(f"/api/collections/pets/images?run={second}&path=cat&min_size=1").get_json()
    assert page["filters"]["run"] == second and page["filters"]["path"] == "cat" and page["filters"]["min_size"] == 1
    assert_error(client.get("/api/collections/pets/images?run=999999"), 404, "not_found", "run")
    # filters that contradict each other are no error: nothing matches them all
    assert listed(client, f"min_size={mid + 1}&max_size={mid}") == []
    assert listed(client, "added_after=2026-02-01&added_before=2026-01-01") == []
    assert listed(client, "label=cats&labelled=false") == []
    assert len(listed(client, "path=%20%20")) == 10  # a blank text: no filter


@pytest.mark.parametrize("query, field", [
    ("sort=colour", "sort"), ("sort=--id", "sort"), ("min_size=-1", "min_size"), ("max_size=big", "max_size"),
    ("added_after=yesterday", "added_after"), ("added_before=2026-13-01", "added_before"),
    ("run=0", "run"), ("run=abc", "run"), ("labelled=maybe", "labelled"), ("path=" + "x" * 1001, "path"),
])
def test_bad_sort_and_filter_values_are_400_naming_the_field(client, pets, query, field):
    assert_error(client.get(f"/api/collections/pets/images?{query}"), 400, "invalid_input", field)


def test_remove_several_images_keeps_their_files(client, app, pets):
    gone = [pets["cat.2.jpg"], pets["dog.4.jpg"]]
    ids = [g["id"] for g in gone]
    home = app.extensions["simsearch"].settings.home
    files = [p for p in home.parent.rglob("*.jpg") if p.name in ("cat.2.jpg", "dog.4.jpg")]
    assert files
    # all or none: an unknown id removes nothing
    err = assert_error(client.post("/api/collections/pets/images/remove", json={"image_ids": [*ids, 999999]}),
                       404, "not_found", "image_ids")
    assert err["details"]["missing"] == [999999]
    assert client.get("/api/collections/pets").get_json()["images_ok"] == 10
    resp = client.post("/api/collections/pets/images/remove", json={"image_ids": ids})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"collection": "pets", "removed": 2, "image_ids": sorted(ids)}
    assert client.get("/api/collections/pets").get_json()["images_ok"] == 8
    assert "cat.2.jpg" not in listed(client, "")
    assert all(p.exists() for p in files)  # the files on disk are untouched
    # the index follows: a search never returns them
    hits = client.get(f"/api/images/{pets['cat.1.jpg']['id']}/similar?k=20").get_json()["results"]
    assert not {h["image_id"] for h in hits} & set(ids) and len(hits) == 7
    assert_error(client.post("/api/collections/pets/images/remove", json={"image_ids": []}), 400, "invalid_input", "image_ids")
    assert_error(client.post("/api/collections/pets/images/remove", json={"image_ids": ["a"]}), 400, "invalid_input")
    assert_error(client.post("/api/collections/nope/images/remove", json={"image_ids": [1]}), 404, "not_found", "collection")


def test_label_and_export_a_selection_with_every_path(client, app, pets, tmp_path):
    # a second file with the bytes of cat.1 makes it an image with two paths
    copy = tmp_path / "copies" / "cats"
    copy.mkdir(parents=True)
    src = next(p for p in (tmp_path / "pets" / "cats").iterdir() if p.name == "cat.1.jpg")
    shutil.copy(src, copy / "cat-again.jpg")
    ingest_folder(app, copy.parent)
    cat = pets["cat.1.jpg"]["id"]
    dog = pets["dog.1.jpg"]["id"]
    assert client.get(f"/api/images/{cat}").get_json()["file_count"] == 2
    # label both at once
    resp = client.post("/api/collections/pets/labels", json={"image_ids": [cat, dog], "label": "favourites"})
    assert resp.get_json()["updated"] == 2
    assert sorted(listed(client, "label=favourites")) == ["cat.1.jpg", "dog.1.jpg"]
    # CSV: one row per file, the first file first
    rows = list(csv.reader(io.StringIO(client.post("/api/collections/pets/selection",
                                                   json={"image_ids": [cat, dog]}).get_data(as_text=True))))
    assert rows[0][:4] == ["id", "path", "label", "first"]  # then group, width, ... (tests/test_exports.py)
    assert [(int(r[0]), Path(r[1]).name, r[2], r[3]) for r in rows[1:]] == [
        (cat, "cat.1.jpg", "favourites", "yes"), (cat, "cat-again.jpg", "favourites", "no"),
        (dog, "dog.1.jpg", "favourites", "yes")]
    assert not any(r[1].startswith("/") for r in rows[1:])
    got = client.post("/api/collections/pets/selection", json={"image_ids": [cat, dog], "format": "json"}).get_json()
    assert [(r["id"], [Path(f["path"]).name for f in r["files"]], r["file_count"]) for r in got] == [
        (cat, ["cat.1.jpg", "cat-again.jpg"], 2), (dog, ["dog.1.jpg"], 1)]
    # the path filter finds an image by any of its files
    assert listed(client, "path=again") == ["cat.1.jpg"]


def test_collection_cards(app, pets):
    from simsearch.ops import browse

    (card,) = browse.cards(app.extensions["simsearch"])
    assert card["name"] == "pets" and card["images_ok"] == 10 and card["labels"] == 2 and card["files"] == 10
    assert card["default_space"] == "efficientnet_lite0"
    # covers: the first image of each label, then the first images
    first = {lab: min(r["id"] for r in pets.values() if r["label"] == lab) for lab in ("cats", "dogs")}
    assert card["covers"][:2] == [first["cats"], first["dogs"]] and len(card["covers"]) == 4
    assert len(set(card["covers"])) == 4
    runs = browse.ingest_runs(app.extensions["simsearch"], "pets")
    assert [r["images"] for r in runs] == [2, 8]
