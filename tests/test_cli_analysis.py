"""The analysis commands as a user meets them: cluster, evaluate, map, compare (CliRunner, SQLite)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image as PILImage

from simsearch.cli import cli
from tests.conftest import copy_subset

PANELS = ("backbones", "silhouette", "scores", "maps", "overlap")


@pytest.fixture(scope="module")
def home(tmp_path_factory, weights_dir):
    """A data directory with collection 'pets' (10 cats + 10 dogs, EfficientNet-Lite0), made once."""
    base = tmp_path_factory.mktemp("cli_analysis")
    env = {"SIMSEARCH_HOME": str(base / "home"), "SIMSEARCH_DATABASE_URL": f"sqlite:///{base / 'home' / 'db.sqlite'}",
           "SIMSEARCH_WEIGHTS_DIR": str(weights_dir), "SIMSEARCH_REDIS_URL": ""}
    root = copy_subset(base / "pets", 10)
    r = CliRunner().invoke(cli, ["ingest", str(root), "--collection", "pets", "--labels", "folders", "--json"], env=env,
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["added"] == 20
    return env


@pytest.fixture
def run(home):
    runner = CliRunner()

    def _run(*args, code=0):
        result = runner.invoke(cli, [str(a) for a in args], env=home, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return _run


@pytest.mark.model
def test_help_lists_the_analysis_commands(run):
    out = run("--help").output
    for command in ("cluster", "evaluate", "map", "compare"):
        assert re.search(rf"^\s+{command}\s", out, re.M), out


@pytest.mark.model
def test_cluster(run):
    data = json.loads(run("cluster", "--collection", "pets", "--json").output)
    assert data["auto"] is True and data["k"] == data["silhouette"]["best_k"] and data["n_images"] == 20
    assert sum(c["size"] for c in data["clusters"]) == 20
    for c in data["clusters"]:
        reps = c["representative_images"]
        assert [r["image_id"] for r in reps] == c["representatives"] and reps
        assert all(Path(r["path"]).is_file() and r["label"] in ("cats", "dogs") for r in reps)
        assert sum(c["label_counts"].values()) == c["size"]

    text = run("cluster", "-c", "pets").output
    assert f"k = {data['k']} clusters (chosen by silhouette)" in text and re.search(r"^\s+2\s+-?\d\.\d{4}", text, re.M)
    assert "cluster 0:" in text and reps[0]["path"] in text

    three = json.loads(run("cluster", "-c", "pets", "--k", "3", "--representatives", "2", "--json").output)
    assert three["k"] == 3 and three["auto"] is False and len(three["clusters"]) == 3
    assert all(len(c["representative_images"]) <= 2 for c in three["clusters"])
    assert "k = 3 clusters (as asked)" in run("cluster", "-c", "pets", "--k", "3").output

    assert "k must be 'auto' or a whole number >= 2" in run("cluster", "-c", "pets", "--k", "1", code=2).output
    assert "k must be" in run("cluster", "-c", "pets", "--k", "many", code=2).output
    assert "no collection named 'cats'" in run("cluster", "-c", "cats", code=2).output


@pytest.mark.model
def test_evaluate(run):
    ev = json.loads(run("evaluate", "--collection", "pets", "--json").output)
    assert ev["n_labels"] == 2 and ev["best_k"] in ev["silhouette"]["ks"]
    lab = ev["labels"]
    assert lab["at_n_labels"]["k"] == 2 and {"ari", "nmi", "homogeneity", "completeness"} <= set(lab["at_best_k"])
    assert 0.5 <= lab["knn_precision_at_10"] <= 1

    text = run("evaluate", "-c", "pets").output
    assert f"best k by silhouette: {ev['best_k']}" in text
    assert f"at k = number of labels (2): ARI {lab['at_n_labels']['ari']:.3f}" in text
    assert f"kNN precision@10 (leave-one-out, labelled images): {lab['knn_precision_at_10']:.3f}" in text


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    with PILImage.open(io.BytesIO(data)) as im:
        im.verify()
    with PILImage.open(io.BytesIO(data)) as im:
        return im.size


@pytest.mark.model
def test_map_png_and_coordinates(run, tmp_path):
    out, coords = tmp_path / "map.png", tmp_path / "coords.csv"
    data = json.loads(run("map", "-c", "pets", "--out", out, "--coords", coords, "--json").output)
    assert data["method"] == "tsne" and data["n"] == 20 and len(data["x"]) == len(data["paths"]) == 20
    assert data["out"] == str(out) and data["coords_file"] == str(coords)
    w, h = _png_size(out)
    assert (w, h) == (1400, 1200)
    assert out.stat().st_size > 50_000  # a scatter with 20 thumbnails, not an empty canvas
    with PILImage.open(out) as im:  # thumbnails are photos: far more colours than a plain scatter
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 5000
    rows = list(csv.DictReader(coords.open()))
    assert [r["image_id"] for r in rows] == [str(i) for i in data["ids"]]
    assert {r["label"] for r in rows} == {"cats", "dogs"}
    assert float(rows[0]["x"]) == pytest.approx(data["x"][0], rel=1e-5) and Path(rows[0]["path"]).is_file()

    cj = tmp_path / "coords.json"
    text = run("map", "-c", "pets", "--method", "pca", "--out", tmp_path / "pca.png", "--coords", cj, "--thumbnails", "0").output
    assert "pca map of 20 images" in text and "computed in" in text
    points = json.loads(cj.read_text())["points"]
    assert len(points) == 20 and {"image_id", "x", "y", "label", "cluster", "path"} <= set(points[0])
    assert "from the cache" in run("map", "-c", "pets", "--method", "pca", "--out", tmp_path / "pca.png").output
    assert _png_size(tmp_path / "pca.png") == (1400, 1200)

    assert "--coords must end in .csv or .json" in run("map", "-c", "pets", "--out", out, "--coords", tmp_path / "c.txt", code=2).output
    assert "--out must be a .png" in run("map", "-c", "pets", "--out", tmp_path / "m.jpg", code=2).output


@pytest.mark.model
def test_compare_report(run, tmp_path, offline_keras_weights):
    out = tmp_path / "reports" / "report.html"
    result = run("compare", "-c", "pets", "--backbones", "efficientnet_lite0,efficientnet_lite1,resnet50", "--out", out, "--json")
    summary = json.loads(result.output)
    panels = {p["backbone"]: p for p in summary["backbones"]}
    assert panels["efficientnet_lite0"]["available"] and panels["efficientnet_lite1"]["available"]
    reason = panels["resnet50"]["reason"]
    assert panels["resnet50"]["available"] is False and "resnet50" in reason and "weights" in reason
    assert summary["report"]["html"] == str(out) and out.is_file()

    html = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I), "external resource in the report"
    assert not re.search(r"<link\b|<script\b[^>]*\bsrc=|@import|url\(\s*['\"]?https?:", html, re.I)
    srcs = re.findall(r"""\bsrc\s*=\s*["']([^"']*)""", html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    for panel in PANELS:
        assert f'<section id="{panel}">' in html, panel
    # two charts, plus two maps (by label and by cluster) per available backbone
    assert len(srcs) == 2 + 2 * 2
    assert html.count('class="map-panel"') == 2 and 'data-backbone="resnet50"' in html
    row = re.search(r'<tr class="backbone-row" data-backbone="resnet50">(.*?)</tr>', html, re.S).group(1)
    assert "unavailable" in row and "resnet50: pretrained ImageNet weights are not available" in row
    assert "1280" in html and "2048" in html  # dimensions
    assert "embedding time" in html and " ms" in html
    matrix = re.search(r'<table class="matrix">(.*?)</table>', html, re.S).group(1)
    jac = summary["neighbour_overlap"][0]["jaccard"]
    assert f"{jac:.3f}" in matrix and matrix.count("1.000") == 2

    report = json.loads(out.with_suffix(".json").read_text())
    assert report["collection"] == "pets" and report["html"] == str(out)
    rp = {p["backbone"]: p for p in report["backbones"]}
    assert rp["resnet50"]["reason"] == reason
    assert len(rp["efficientnet_lite1"]["map"]["x"]) == 20 and rp["efficientnet_lite1"]["silhouette"]["ks"][0] == 2
    assert report["neighbour_overlap"] == summary["neighbour_overlap"]

    text = run("compare", "-c", "pets", "-b", "efficientnet_lite0,resnet50", "--out", tmp_path / "r2.html").output
    assert "resnet50" in text and "unavailable: resnet50: pretrained ImageNet weights" in text
    assert f"wrote {tmp_path / 'r2.html'}" in text and (tmp_path / "r2.json").is_file()
    assert "unknown backbone 'alexnet'" in run("compare", "-c", "pets", "-b", "alexnet", code=2).output


def test_spread_subset_takes_one_point_per_grid_cell():
    import numpy as np

    from simsearch.reports.map_plot import spread_subset

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=1000), rng.normal(size=1000)
    pick = spread_subset(x, y, 150)
    assert 0 < len(pick) <= 144 and len(set(pick.tolist())) == len(pick)  # 12 x 12 grid
    g = 12
    cells = {(min(int((x[i] - x.min()) / ((x.max() - x.min()) / g)), g - 1),
              min(int((y[i] - y.min()) / ((y.max() - y.min()) / g)), g - 1)) for i in pick}
    assert len(cells) == len(pick)  # never two thumbnails in one cell
    occupied = {(min(int((a - x.min()) / ((x.max() - x.min()) / g)), g - 1),
                 min(int((b - y.min()) / ((y.max() - y.min()) / g)), g - 1)) for a, b in zip(x, y)}
    assert cells == occupied  # and every occupied cell gets one
    assert spread_subset(x, y, 150).tolist() == pick.tolist()
    assert len(spread_subset([1.0, 1.0, 1.0], [2.0, 2.0, 2.0], 150)) == 1  # all on one spot
    assert len(spread_subset([], [], 10)) == 0 and len(spread_subset(x, y, 0)) == 0


def test_cluster_colours_follow_the_majority_label():
    from simsearch.reports.map_plot import categories, cluster_colours

    labels = ["dogs", "dogs", "cats", "cats", "cats", "cats", None]
    clusters = [1, 1, 0, 0, 0, 2, 2]
    _, lab_colours = categories(labels)
    col = cluster_colours(clusters, labels)
    assert col["cluster 1"] == lab_colours["dogs"] and col["cluster 0"] == lab_colours["cats"]
    assert col["cluster 2"] not in (lab_colours["dogs"], lab_colours["cats"])  # cats already taken by a larger cluster


def test_compare_says_what_it_compared_on_and_all_is_an_option(run, tmp_path):
    out = tmp_path / "s.html"
    text = run("compare", "-c", "pets", "-b", "efficientnet_lite0", "--out", out, "--sample", "20").output
    assert "compared on all 20 images" in text and "Scored on all\n    20 images." in out.read_text()
    got = json.loads(run("compare", "-c", "pets", "-b", "efficientnet_lite0", "--out", out, "--all", "--json").output)
    assert got["sample"] == {"size": 20, "of": 20, "seed": 0, "stratified_by": "label", "cap": None, "rule": "all",
                             "labels": 2}
    assert got["backbones"][0]["n_images"] == 20
    assert "--sample" in run("compare", "-c", "pets", "-b", "efficientnet_lite0", "--sample", "5", code=2).output
