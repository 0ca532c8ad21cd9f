"""Search by a region of the query image, and the default object search (simsearch.analysis.regions,
simsearch.search.embed_query): the pure functions, then the API over a small real collection of
flowers102 and oxford-buildings photos ("artefacts") on SQLite."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from simsearch.analysis import regions as R
from simsearch.errors import InvalidInput
from tests.conftest import dataset_files
from tests.helpers.api import assert_error
from tests.helpers.regions import FLOWERS102, OXFORD, SPACE, _search, artefacts  # noqa: F401  (artefacts: the fixture)


# ---- pure functions --------------------------------------------------------------------------------

def test_parse_box_accepts_fractions_and_names_the_field_when_wrong():
    assert R.parse_box("0.1,0.2,0.9,1") == (0.1, 0.2, 0.9, 1.0)
    assert R.parse_box(" 0 , 0 , 0.5 , 0.5 ") == (0.0, 0.0, 0.5, 0.5)
    assert R.parse_box([0, 0.25, 1, 0.75]) == (0.0, 0.25, 1.0, 0.75)
    for bad, why in (("0.1,0.2,0.9", "four numbers"), ("a,b,c,d", "four numbers"), ("0,0,1.5,1", "from 0 to 1"),
                     ("0,0,nan,1", "from 0 to 1"), ("0.5,0,0.2,1", "greater than x0"), ("0,0.4,1,0.4", "greater than"),
                     (None, "four numbers"), ("", "four numbers")):
        with pytest.raises(InvalidInput) as exc:
            R.parse_box(bad)
        assert exc.value.field == "box" and why in exc.value.message, (bad, exc.value.message)


def test_check_regions_takes_a_small_whole_number():
    assert R.check_regions(True) == R.REGIONS_DEFAULT and R.check_regions(False) == 0
    assert R.check_regions(0) == 0 and R.check_regions("2") == 2 and R.check_regions(R.REGIONS_MAX) == R.REGIONS_MAX
    for bad in (-1, R.REGIONS_MAX + 1, 1.5, "two", "1.0"):
        with pytest.raises(InvalidInput) as exc:
            R.check_regions(bad)
        assert exc.value.field == "regions"


def test_pixel_box_stays_inside_the_image():
    assert R.pixel_box((0.25, 0.5, 0.75, 1.0), 100, 40) == (25, 20, 75, 40)
    assert R.pixel_box((0.999, 0.999, 1.0, 1.0), 10, 10) == (9, 9, 10, 10)  # at least one pixel
    assert R.inset((0.0, 0.0, 1.0, 1.0), 0.1) == pytest.approx((0.1, 0.1, 0.9, 0.9))


def test_rectangle_proposals_find_a_framed_picture_on_a_textured_wall():
    rng = np.random.default_rng(0)
    wall = rng.normal(120, 12, (30, 40)).astype(np.float32)  # a textured wall, 40 x 30 cells
    wall[:, ::7] += 25  # vertical panelling: long lines that are no rectangle
    wall[8:24, 10:30] = 40  # a dark frame ...
    wall[10:22, 12:28] = rng.normal(200, 30, (12, 16))  # ... around a bright, busy picture
    found = R.rectangle_proposals(wall, 3)
    assert 1 <= len(found) <= 3
    frame, inner = (10 / 40, 8 / 30, 30 / 40, 24 / 30), (12 / 40, 10 / 30, 28 / 40, 22 / 30)
    best = found[0][0]
    assert max(R.iou(best, frame), R.iou(best, inner)) > 0.8, found
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True)
    assert all(R.iou(a, b) <= R.PROPOSAL_NMS for i, (a, _) in enumerate(found) for b, _ in found[i + 1:])
    assert R.rectangle_proposals(np.full((30, 40), 100, np.float32), 0) == []
    assert R.rectangle_proposals(np.zeros((2, 2), np.float32), 3) == []  # too small for any box


def test_surround_contrast_measures_how_a_box_differs_from_its_band():
    img = np.full((40, 60, 3), 200, np.uint8)  # a plain light wall
    img[10:30, 20:40] = (30, 60, 160)  # a blue picture
    boxes = np.array([(20 / 60, 10 / 40, 40 / 60, 30 / 40),  # the picture: nothing in common with the wall
                      (0.0, 0.0, 0.2, 0.2),  # a patch of wall: the same colours around it
                      (0.0, 0.0, 1.0, 1.0)])  # the whole image: no band at all
    c = R.surround_contrast(img, boxes)
    assert c.shape == (3,) and c[0] == pytest.approx(1.0) and c[1] == pytest.approx(0.0) and c[2] == 0.0
    with pytest.raises(InvalidInput):
        R.surround_contrast(img[..., 0], boxes)


def test_colour_contrast_prefers_the_picture_over_a_panel_of_the_wall():
    # two rectangles with equally clear sides: a panel outlined on the wall (the wall's colour inside
    # and out) and a picture whose colours differ from the wall, its outline a little weaker
    wall = np.full((30, 40, 3), 180, np.uint8)
    wall[3:14, 3:37] = 180
    for y in (3, 13):
        wall[y, 3:37] = 60
    wall[3:14, 3] = wall[3:14, 36] = 60  # the panel: a dark outline on the wall
    wall[17:28, 8:32] = (40, 140, 60)  # the picture: a green print, its edge is its outline
    gray = np.asarray(PILImage.fromarray(wall).convert("L"), np.float32)
    panel, picture = (3 / 40, 3 / 30, 37 / 40, 14 / 30), (8 / 40, 17 / 30, 32 / 40, 28 / 30)
    by_edges = R.rectangle_proposals(gray, 1)[0][0]
    by_both = R.rectangle_proposals(gray, 1, rgb=wall)[0][0]
    assert R.iou(by_edges, panel) > 0.6, by_edges
    assert R.iou(by_both, picture) > 0.6, by_both


def test_fuse_max_keeps_the_whole_image_as_the_prior():
    whole = (np.array([0.95, 0.60, 0.50]), np.array([1, 2, 3]))
    region = (np.array([0.70, 0.64, -1.0]), np.array([4, 2, -1]))  # -1: no result
    ids, scores, which = R.fuse_max([whole, region], [0.0, 0.05], 3)
    assert ids.tolist() == [1, 4, 2] and which.tolist() == [0, 1, 0]
    assert scores.tolist() == pytest.approx([0.95, 0.65, 0.60])  # 0.64 - 0.05 < 0.60: the whole image decides
    assert R.fuse_max([whole], [0.0], 2)[0].tolist() == [1, 2]
    with pytest.raises(InvalidInput):
        R.fuse_max([whole, region], [0.0], 3)


# ---- through the API --------------------------------------------------------------------------------

def _jpeg(im: PILImage.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _pasted(art: Path, background: Path, at=(0.45, 0.3), scale=0.4) -> tuple[bytes, str]:
    """``art`` pasted at ``scale`` of ``background``'s width (top-left corner at ``at``), and the
    box around it as the API takes it."""
    with PILImage.open(background) as bg, PILImage.open(art) as a:
        bg = bg.convert("RGB")
        w = int(bg.width * scale)
        h = int(w * a.height / a.width)
        x, y = int(at[0] * bg.width), int(at[1] * bg.height)
        bg.paste(a.convert("RGB").resize((w, h), PILImage.BILINEAR), (x, y))
        box = (x / bg.width, y / bg.height, (x + w) / bg.width, (y + h) / bg.height)
        return _jpeg(bg), ",".join(f"{v:.4f}" for v in box)


def test_box_and_regions_errors_name_the_field(artefacts):
    client, _, paths = artefacts
    data = paths[0].read_bytes()
    for box in ("0.5,0,0.2,1", "abc", "0,0,1", "0,0,2,1", "-0.1,0,1,1"):
        assert_error(_search(client, data, box=box), 400, field="box")
    for regions in ("-1", "9", "x", "1.5"):
        assert_error(_search(client, data, regions=regions), 400, field="regions")
    form = {"image": (io.BytesIO(data), "q.jpg"), "box": "0.9,0.1,0.2,0.8"}
    assert_error(client.post("/api/collections/art/search", data=form, content_type="multipart/form-data"), 400, field="box")
    # a bad box is reported even when the image is no image (the parameters come first)
    assert_error(_search(client, b"not an image", box="1,1,0,0"), 400, field="box")


def test_a_box_around_a_pasted_image_finds_it_first(artefacts):
    client, ids, paths = artefacts
    art = paths[9]  # an oxford-buildings landmark, pasted into an unrelated photo of Oxford
    background = dataset_files(OXFORD / "oxford", 1, start=3)[0]
    data, box = _pasted(art, background)
    boxed = _search(client, data, box=box, k=3)
    assert boxed.status_code == 200, boxed.get_json()
    hits = boxed.get_json()["results"]
    assert hits[0]["image_id"] == ids[art.name], hits
    plain = _search(client, data, regions=0, k=12).get_json()["results"]
    plain_score = next(h["score"] for h in plain if h["image_id"] == ids[art.name])
    assert hits[0]["score"] > plain_score + 0.1  # the region matches far better than the whole photo
    # the same through a multipart form (what the browser sends)
    form = {"image": (io.BytesIO(data), "wall.jpg"), "box": box, "k": "3"}
    res = client.post("/api/collections/art/search", data=form, content_type="multipart/form-data")
    assert res.status_code == 200 and res.get_json()["results"][0]["image_id"] == ids[art.name]


def test_a_close_copy_keeps_its_rank_and_score(artefacts):
    client, ids, paths = artefacts
    for art in (paths[2], paths[10]):
        with PILImage.open(art) as im:
            copy = _jpeg(im.resize((im.width // 2, im.height // 2)), quality=70)
        default = _search(client, copy, k=5).get_json()["results"]
        plain = _search(client, copy, regions=0, k=5).get_json()["results"]
        assert default[0]["image_id"] == plain[0]["image_id"] == ids[art.name]
        assert default[0]["score"] == pytest.approx(plain[0]["score"], abs=1e-4)  # the whole image decided


def test_regions_zero_is_the_plain_search(artefacts):
    """regions=0 without verification embeds and searches exactly as the search did before region search."""
    from simsearch.search import embed_bytes, search_vector

    client, _, paths = artefacts
    data = dataset_files(FLOWERS102 / sorted(p.name for p in FLOWERS102.iterdir())[0], 1, start=3)[0].read_bytes()
    ctx = client.application.extensions["simsearch"]
    vec, _ = embed_bytes(ctx, SPACE, data, "q.jpg")
    coll_id = client.get("/api/collections/art").get_json()["id"]
    expected = [(h.image_id, round(h.score, 4)) for h in search_vector(ctx, coll_id, SPACE, vec, 6)]
    got = _search(client, data, regions=0, verify="false", k=6).get_json()["results"]
    assert [(h["image_id"], round(h["score"], 4)) for h in got] == expected


def test_the_label_filter_holds_for_every_region(artefacts):
    client, _, paths = artefacts
    data, box = _pasted(paths[9], dataset_files(OXFORD / "oxford", 1, start=3)[0])
    label = paths[1].parent.name  # a flowers102 species: one image in the collection
    for params in ({"label": label}, {"label": label, "box": box}, {"label": label, "regions": R.REGIONS_MAX}):
        hits = _search(client, data, k=5, **params).get_json()["results"]
        assert [h["label"] for h in hits] == [label], (params, hits)
    assert _search(client, data, label="no-such-label").get_json()["results"] == []


def test_cli_search_takes_a_box_and_regions(tmp_path, weights_dir):
    """`simsearch search --box` finds a pasted picture first; a bad box or regions is one line naming it."""
    import json
    import shutil

    from click.testing import CliRunner

    from simsearch.cli import cli

    folder = tmp_path / "art"
    folder.mkdir()
    landmarks = sorted(p for p in OXFORD.iterdir() if p.is_dir() and p.name != "oxford")[:4]
    for d in landmarks:
        shutil.copy(dataset_files(d, 1)[0], folder / f"{d.name}.jpg")
    env = {"SIMSEARCH_HOME": str(tmp_path / "home"), "SIMSEARCH_DATABASE_URL": f"sqlite:///{tmp_path / 'home' / 'db.sqlite'}",
           "SIMSEARCH_WEIGHTS_DIR": str(weights_dir), "SIMSEARCH_REDIS_URL": ""}
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    run("ingest", folder, "--collection", "art")
    art = folder / f"{landmarks[2].name}.jpg"
    data, box = _pasted(art, dataset_files(OXFORD / "oxford", 1, start=3)[0])
    query = tmp_path / "wall.jpg"
    query.write_bytes(data)
    out = json.loads(run("search", query, "-c", "art", "-k", "2", "--box", box, "--json").output)
    assert Path(out["results"][0]["path"]).name == art.name
    plain = json.loads(run("search", query, "-c", "art", "-k", "4", "--regions", "0", "--json").output)
    assert len(plain["results"]) == 4
    bad = run("search", query, "-c", "art", "--box", "0.9,0,0.1,1", code=2)
    assert bad.output.startswith("error:") and "box" in bad.output and len(bad.output.strip().splitlines()) == 1
    bad = run("search", query, "-c", "art", "--regions", "9", code=2)
    assert "regions" in bad.output and len(bad.output.strip().splitlines()) == 1
