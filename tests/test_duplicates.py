"""The duplicate finder on transformed copies of real photos (the real default backbone).

One module-level collection: 16 photos (8 cats-dogs, 8 flowers, none of them among the
calibration benchmark's originals), each with 2 exact copies (a JPEG comment or an Exif block
inserted: other bytes, the same pixels) and 4 near copies (resized to 50%, JPEG quality 50, cropped
5% a side, flipped + JPEG 70), among 16 more photos without copies. The exact and near tiers must
reach precision and recall >= 0.95 over pairs of images (printed); the API, the CLI and the
browser page are exercised on the same collection.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from simsearch.analysis.duplicates import candidate_pairs, group_labels, groups_from_pairs, pair_precision_recall
from simsearch.errors import InvalidInput
from tests.conftest import CATS_DOGS, FLOWERS, dataset_files, upgraded
from tests.helpers import benchmarks
from tests.helpers.api import get_until_done

COLLECTION = "dups"
EXACT = ("meta_comment", "meta_exif")
NEAR = ("resize50", "jpeg50", "crop5", "hflip_jpeg70")


# ---- the pure maths -------------------------------------------------------------------------------


def test_groups_are_connected_components_sorted_by_size_then_similarity():
    # 0-1-2 chained (0~2 below the threshold), 3-4 strong, 5 alone, 6-7 below the threshold
    i, j, s = [0, 1, 0, 3, 6], [1, 2, 2, 4, 7], [0.9, 0.92, 0.5, 0.99, 0.6]
    groups = groups_from_pairs(8, i, j, s, 0.85)
    assert [g.members.tolist() for g in groups] == [[0, 1, 2], [3, 4]]
    assert groups[0].pair_scores.tolist() == pytest.approx([0.92, 0.9])  # strongest first
    assert groups[0].max_score == pytest.approx(0.92) and groups[0].min_score == pytest.approx(0.9)
    assert groups[1].pair_index.tolist() == [3]  # positions in the pairs given
    assert group_labels(8, groups).tolist() == [0, 0, 0, 1, 1, -1, -1, -1]
    # equal sizes: the stronger group first; a mask keeps only some pairs
    assert [g.members.tolist() for g in groups_from_pairs(8, i, j, s, 0.85, mask=[False, True, True, True, True])] \
        == [[3, 4], [1, 2]]
    assert groups_from_pairs(8, i, j, s, 0.999) == []
    with pytest.raises(InvalidInput, match="pair rows"):
        groups_from_pairs(3, [0], [5], [0.9], 0.5)


def test_pair_precision_recall_counts_pairs():
    # predicted {0,1,2}, {3,4}; true {0,1}, {2,3,4}
    got = pair_precision_recall([0, 0, 0, 1, 1, -1], [0, 0, 1, 1, 1, -1])
    assert (got["predicted_pairs"], got["true_pairs"], got["true_positive_pairs"]) == (4, 4, 2)
    assert got["precision"] == 0.5 and got["recall"] == 0.5
    assert pair_precision_recall([-1, -1], [-1, -1])["precision"] == 1.0  # nothing predicted, nothing true


def test_candidate_pairs_match_brute_force_without_an_n_by_n_matrix():
    import faiss

    rng = np.random.default_rng(0)
    base = rng.standard_normal((60, 32)).astype(np.float32)
    X = np.concatenate([base, base[:20] + 0.05 * rng.standard_normal((20, 32)).astype(np.float32)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    asked = []

    def search(q, k):
        asked.append(len(q))
        return index.search(q, k)

    i, j, s = candidate_pairs(X, search, k=5, floor=0.8, block=16)
    assert max(asked) == 16  # searched in blocks
    S = X @ X.T
    want = {(a, b) for a in range(len(X)) for b in range(a + 1, len(X)) if S[a, b] >= 0.8}
    assert set(zip(i.tolist(), j.tolist())) == want and len(i) == len(want) == 20
    assert np.allclose(s, S[i, j], atol=1e-5) and (i < j).all()



def test_a_group_larger_than_k_is_searched_wider_until_every_member_meets_the_others():
    """An image with 40 copies of 4 kinds and k = 5: without widening, most copies meet only their
    own kind; with ``widen_above`` every copy is paired with it, and ordinary rows (whose 5th
    neighbour is far) are not searched again."""
    import faiss

    rng = np.random.default_rng(1)
    base = rng.standard_normal((200, 64)).astype(np.float32)
    # 4 kinds of copy (a crop, a colour change...) of 10 each: a copy's nearest are its own kind
    kinds = 0.25 * rng.standard_normal((4, 64)).astype(np.float32)
    copies = base[0] + np.repeat(kinds, 10, axis=0) + 0.02 * rng.standard_normal((40, 64)).astype(np.float32)
    X = np.concatenate([base, copies])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    widths = []

    def search(q, k):
        widths.append((len(q), k))
        return index.search(q, k)

    group = set(range(200, 240)) | {0}
    narrow = candidate_pairs(X, search, k=5, floor=0.9, block=64)
    met = {b for a, b in zip(*narrow[:2]) if a == 0}
    assert len(met) < 40  # the gap the widening closes
    widths.clear()
    i, j, _ = candidate_pairs(X, search, k=5, floor=0.9, block=64, widen_above=0.9, max_k=64)
    assert {b for a, b in zip(i.tolist(), j.tolist()) if a == 0} == group - {0}
    assert {(int(a), int(b)) for a, b in zip(i, j)} <= {(a, b) for a in group for b in group if a < b}
    wider = [(n, k) for n, k in widths if k > 6]
    assert wider and all(n <= 41 for n, _ in wider)  # only the group's rows were searched again
    assert max(k for _, k in widths) <= 65

# ---- the collection of copies ---------------------------------------------------------------------


def _originals():
    """8 cats-dogs (from the 101st of each class) and 8 flowers (from the 31st of 4 species): outside
    the calibration's originals; 16 more photos of the same classes, without copies."""
    with_copies, alone = [], []
    for cls in ("cats", "dogs"):
        with_copies += [(cls, f) for f in dataset_files(CATS_DOGS / cls, 4, start=100)]
        alone += [(cls, f) for f in dataset_files(CATS_DOGS / cls, 4, start=150)]
    for cls in ("daisy", "rose", "sunflower", "tulip"):
        with_copies += [(cls, f) for f in dataset_files(FLOWERS / cls, 2, start=30)]
        alone += [(cls, f) for f in dataset_files(FLOWERS / cls, 2, start=45)]
    return with_copies, alone


@pytest.fixture(scope="module")
def collection(tmp_path_factory, weights_dir):
    """An app (in-process job runner) over the ingested copies; yields (app, truth) where truth
    maps each image id to (source number or -1, transform or '')."""
    from simsearch.config import Settings
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.store.models import Image
    from simsearch.web import create_app, shutdown
    from sqlalchemy import select

    cal = benchmarks.load("duplicates_calibration")
    base = tmp_path_factory.mktemp("dups")
    folder = base / "photos"
    with_copies, alone = _originals()
    for n, (cls, path) in enumerate(with_copies + alone):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        data = path.read_bytes()
        (folder / cls / f"s{n:02d}.jpg").write_bytes(data)
        if n < len(with_copies):
            for t in EXACT + NEAR:
                (folder / cls / f"s{n:02d}__{t}.jpg").write_bytes(cal.make_copy(data, t))
    home = base / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                          weights_path=weights_dir))
    app = create_app({"SETTINGS": settings, "TESTING": True})
    ctx = app.extensions["simsearch"]
    files, _ = files_from_folder(folder, labels="folders")
    report = Ingester(ctx, spaces=["efficientnet_lite0"], batch_size=16).run(COLLECTION, files, source=str(folder))
    assert report.added == len(files) == len(with_copies) * 7 + len(alone), report.to_dict()
    with ctx.db.session() as s:
        paths = dict(s.execute(select(Image.id, Image.source_path)).all())
    truth = {}
    for image_id, path in paths.items():
        stem = path.rsplit("/", 1)[-1][:-4]
        n, _, t = stem.partition("__")
        n = int(n[1:])
        truth[image_id] = (n if n < len(with_copies) else -1, t)
    app.config["SIMSEARCH_HOME"] = str(home)
    yield app, truth
    shutdown(app)


def _score(groups: list[dict], truth: dict, members: tuple[str, ...]) -> dict:
    ids = sorted(truth)
    row = {i: r for r, i in enumerate(ids)}
    predicted = np.full(len(ids), -1)
    for g_no, g in enumerate(groups):
        predicted[[row[img["id"]] for img in g["images"]]] = g_no
    true = np.array([truth[i][0] if truth[i][1] in members else -1 for i in ids])
    return pair_precision_recall(predicted, true)


def test_exact_and_near_tiers_reach_precision_and_recall_095(collection):
    from simsearch.ops import duplicates as dup

    app, truth = collection
    client = app.test_client()
    figures = {}
    for tier, members in (("exact", ("",) + EXACT), ("near", ("",) + EXACT + NEAR)):
        resp = get_until_done(client, f"/api/collections/{COLLECTION}/duplicates?tier={tier}&per_page=500")
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        assert body["tier"] == tier and body["n_images"] == len(truth)
        figures[tier] = _score(body["groups"], truth, members)
        figures[tier]["groups"] = body["total_groups"]
    print(f"\nduplicate tiers on {len(truth)} images (16 photos x 6 copies + 16 photos), near threshold "
          f"{dup.NEAR_THRESHOLD}:")
    for tier, f in figures.items():
        print(f"  {tier}: precision {f['precision']:.3f}  recall {f['recall']:.3f}  ({f['true_positive_pairs']} of "
              f"{f['predicted_pairs']} predicted pairs true, {f['true_pairs']} true pairs, {f['groups']} groups)")
    assert figures["exact"]["groups"] == 16
    for tier in ("exact", "near"):
        assert figures[tier]["precision"] >= 0.95 and figures[tier]["recall"] >= 0.95, figures


def test_the_api_pages_groups_explains_tiers_and_refuses_bad_input(collection):
    app, truth = collection
    client = app.test_client()
    url = f"/api/collections/{COLLECTION}/duplicates"
    body = get_until_done(client, url + "?tier=exact&per_page=5").get_json()
    assert body["cached"] is True and body["pages"] == 4 and len(body["groups"]) == 5  # 16 groups of 3
    g = body["groups"][0]
    assert g["size"] == 3 and g["max_similarity"] >= 0.9999 and all(p["identical"] for p in g["pairs"])
    assert {truth[img["id"]][0] for img in g["images"]} == {truth[g["images"][0]["id"]][0]}  # one source
    assert all(img["thumbnail_url"] == f"/api/images/{img['id']}/thumbnail" for img in g["images"])
    assert "Same pixels" in body["meaning"] and body["threshold"] is None
    assert body["tiers"]["exact"] == {"groups": 16, "images": 48, "files": 48}  # (no byte-identical files here)
    assert get_until_done(client, url + "?tier=exact&threshold=0.7").get_json()["total_groups"] == 16  # ignored by exact
    page4 = get_until_done(client, url + "?tier=exact&per_page=5&page=4").get_json()
    assert len(page4["groups"]) == 1 and page4["groups"][0]["group"] == 16
    assert get_until_done(client, url + "?tier=exact&per_page=5&page=9").get_json()["groups"] == []
    # near: every group is one source with its copies; a stricter threshold splits or drops pairs
    near = get_until_done(client, url).get_json()
    assert near["tier"] == "near" and "Calibrated" in near["meaning"]
    strict = get_until_done(client, url + "?tier=near&threshold=0.99").get_json()
    assert strict["grouped_images"] < near["grouped_images"] and strict["threshold"] == 0.99
    similar = get_until_done(client, url + "?tier=similar&threshold=0.7").get_json()
    assert similar["grouped_images"] >= near["grouped_images"]
    for query, field in (("tier=bogus", "tier"), ("threshold=0.5", "threshold"), ("threshold=1.5", "threshold"),
                         ("tier=exact&threshold=1.01", "threshold"), ("threshold=nan", "threshold"),
                         ("per_page=501", "per_page"), ("page=0", "page"), ("colour=red", "colour")):
        resp = client.get(f"{url}?{query}")
        assert resp.status_code == 400, (query, resp.get_json())
        assert resp.get_json()["error"]["field"] == field, (query, resp.get_json())
    assert client.get("/api/collections/nope/duplicates").status_code == 404


def test_the_cli_prints_every_tier_and_json(collection):
    from simsearch.cli import cli

    app, truth = collection
    home = app.config["SIMSEARCH_HOME"]
    env = {"SIMSEARCH_HOME": home, "SIMSEARCH_DATABASE_URL": f"sqlite:///{home}/simsearch.db", "SIMSEARCH_REDIS_URL": ""}
    r = CliRunner().invoke(cli, ["duplicates", "--collection", COLLECTION, "--per-page", "2"], env=env,
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    print(r.output)
    assert re.search(r"^exact \(identical pixels\): 16 groups, 48 images$", r.output, re.M)
    assert re.search(r"^near \(cosine >= 0\.\d+\): \d+ groups", r.output, re.M)
    assert re.search(r"^similar \(cosine >= 0\.\d+\): \d+ groups", r.output, re.M)
    assert "page 1 of 8" in r.output and "Same pixels" in r.output
    r = CliRunner().invoke(cli, ["duplicates", "-c", COLLECTION, "--tier", "near", "--threshold", "0.95", "--json"],
                           env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["tier"] == "near" and data["threshold"] == 0.95 and data["cached"] is True
    for args, message in ((["--threshold", "2"], "threshold must be <= 1"),
                          (["--tier", "exact", "--threshold", "0.5"], "threshold must be >= 0.7"),
                          (["--per-page", "0"], "per_page must be >= 1")):
        r = CliRunner().invoke(cli, ["duplicates", "-c", COLLECTION, *args], env=env)
        assert r.exit_code == 2 and r.output.startswith(f"error: {message}"), r.output
    r = CliRunner().invoke(cli, ["duplicates", "-c", "nope"], env=env)
    assert r.exit_code == 2 and "error:" in r.output


@pytest.mark.browser
def test_the_duplicates_page_shows_groups_and_what_each_tier_means(collection):
    from simsearch.ops import duplicates as dup
    from tests.helpers.browser import LiveServer, by_testid, chromium, console_errors, shot, visible, wait

    app, truth = collection
    server = LiveServer(app)
    try:
        with chromium() as driver:
            driver.get(server.url + f"/c/{COLLECTION}")
            driver.find_element("css selector", '[data-testid="nav-duplicates"]').click()
            wait(driver, lambda d: len(by_testid(d, "dup-group", many=True)) >= 16, message="near groups")
            assert "same pixels" in by_testid(driver, "tier-meanings").text.lower()
            for tier in ("exact", "near", "similar"):
                assert by_testid(driver, f"meaning-{tier}").text.strip()
            assert "resizing" in by_testid(driver, "meaning-near").text
            first = by_testid(driver, "dup-group", many=True)[0]
            thumbs = first.find_elements("css selector", '[data-testid="dup-image"] img')
            assert len(thumbs) >= 2
            wait(driver, lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", t)
                                       for t in thumbs), message="thumbnails loaded")
            assert by_testid(driver, "dups-meaning").text.startswith(f"Near (cosine ≥ {dup.NEAR_THRESHOLD:.3f})")
            driver.execute_script("arguments[0].scrollIntoView()", by_testid(driver, "dups-meaning"))
            shot(driver, "12-duplicates-near")
            by_testid(driver, "tier-exact").click()
            wait(driver, lambda d: "Exact (identical pixels)" in by_testid(d, "dups-meaning").text, message="exact tier")
            wait(driver, lambda d: len(by_testid(d, "dup-group", many=True)) == 16, message="16 exact groups")
            assert by_testid(driver, "dups-threshold").get_attribute("disabled")
            assert "tier=exact" in driver.current_url
            assert "identical pixels" in by_testid(driver, "dup-group", many=True)[0].text
            driver.execute_script("arguments[0].scrollIntoView()", by_testid(driver, "dups-meaning"))
            shot(driver, "13-duplicates-exact")
            by_testid(driver, "tier-similar").click()
            wait(driver, lambda d: "Similar (cosine" in by_testid(d, "dups-meaning").text, message="similar tier")
            box = by_testid(driver, "dups-threshold")
            box.clear()
            box.send_keys("0.99")
            driver.find_element("css selector", "#dups-form button[type=submit]").click()
            wait(driver, lambda d: "0.990" in by_testid(d, "dups-meaning").text, message="threshold applied")
            assert "threshold=0.99" in driver.current_url
            visible(driver, "dups-groups")(driver)
            severe = console_errors(driver)
            assert not severe, severe
    finally:
        server.stop()

