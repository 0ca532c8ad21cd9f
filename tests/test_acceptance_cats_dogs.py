"""Acceptance on the whole cats-dogs set (400 images, EfficientNet-Lite0): the figures the dataset's README
gives for a correct pipeline (silhouette peaks at k = 2, ARI at k = 2 about 0.89, precision@10 about 0.97),
then the backbone comparison report over all three Lite models and an unavailable ResNet50."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from simsearch.ops import analysis
from simsearch.cli import cli
from tests.conftest import CATS_DOGS

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def env(tmp_path_factory, weights_dir):
    """A data directory with all of cats-dogs ingested once (labels from the folders)."""
    base = tmp_path_factory.mktemp("acceptance")
    env = {"SIMSEARCH_HOME": str(base / "home"), "SIMSEARCH_DATABASE_URL": f"sqlite:///{base / 'home' / 'db.sqlite'}",
           "SIMSEARCH_WEIGHTS_DIR": str(weights_dir), "SIMSEARCH_REDIS_URL": ""}
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["ingest", str(CATS_DOGS), "--collection", "cats-dogs", "--labels", "folders", "--json"],
                           env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["added"] == 400 and report["failed"] == 0, report
    print(f"\ningested 400 images with efficientnet_lite0 in {time.perf_counter() - t0:.1f} s")
    return env


@pytest.fixture
def ctx(env):
    from simsearch.config import Settings
    from simsearch.context import AppContext

    app_ctx = AppContext.open(Settings.from_env(home=env["SIMSEARCH_HOME"], database_url=env["SIMSEARCH_DATABASE_URL"],
                                                weights_path=Path(env["SIMSEARCH_WEIGHTS_DIR"])))
    yield app_ctx
    app_ctx.close()


def test_cats_dogs_figures(ctx):
    ev = analysis.evaluate(ctx, "cats-dogs", "efficientnet_lite0").to_dict()
    sw, lab = ev["silhouette"], ev["labels"]
    at2 = lab["at_n_labels"]
    print("\nsilhouette by k: " + ", ".join(f"{k}: {s:.3f}" for k, s in zip(sw["ks"], sw["scores"])))
    print(f"best k {ev['best_k']}; at k=2: ARI {at2['ari']:.3f}, NMI {at2['nmi']:.3f}, homogeneity {at2['homogeneity']:.3f}, "
          f"completeness {at2['completeness']:.3f}; kNN precision@10 {lab['knn_precision_at_10']:.3f}")
    assert ev["n_images"] == ev["n_labelled"] == 400 and ev["n_labels"] == 2
    assert ev["best_k"] == 2
    assert at2["k"] == 2 and at2["ari"] >= 0.8
    assert lab["knn_precision_at_10"] >= 0.9
    assert lab["at_best_k"]["ari"] == pytest.approx(at2["ari"])  # best k is the number of labels

    view = analysis.clusters(ctx, "cats-dogs").to_dict()
    assert view["k"] == 2 and sum(c["size"] for c in view["clusters"]) == 400
    assert all(150 <= c["size"] <= 250 for c in view["clusters"]), [c["size"] for c in view["clusters"]]


def test_compare_all_lite_backbones_and_unavailable_resnet50(env, tmp_path, monkeypatch):
    from simsearch.embedding.backbones import keras_apps

    monkeypatch.setattr(keras_apps, "keras_cache_dirs", lambda: [])
    monkeypatch.setattr(keras_apps, "DOWNLOAD_HOST", "keras-weights.invalid")
    monkeypatch.delenv("SIMSEARCH_WEIGHTS_RESNET50", raising=False)
    out = tmp_path / "report.html"
    names = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50"]
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["compare", "-c", "cats-dogs", "--backbones", ",".join(names), "--out", str(out)],
                           env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    print(f"\ncompare took {time.perf_counter() - t0:.1f} s\n{r.output}")

    report = json.loads(out.with_suffix(".json").read_text())
    panels = {p["backbone"]: p for p in report["backbones"]}
    assert list(panels) == names
    assert panels["resnet50"]["available"] is False and "weights" in panels["resnet50"]["reason"]
    for name in names[:3]:
        p = panels[name]
        assert p["available"] and p["n_images"] == 400, (name, p.get("reason"))
        assert p["labels"]["knn_precision_at_10"] >= 0.9, (name, p["labels"])
        assert len(p["map"]["x"]) == 400
    assert {(o["a"], o["b"]) for o in report["neighbour_overlap"]} == {
        (a, b) for i, a in enumerate(names[:3]) for b in names[i + 1:3]}
    assert all(0 < o["jaccard"] <= 1 and o["n"] == 400 for o in report["neighbour_overlap"])

    html = out.read_text()
    for panel in ("backbones", "silhouette", "scores", "maps", "overlap"):
        assert f'<section id="{panel}">' in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert html.count('class="map-panel"') == 3
    row = re.search(r'<tr class="backbone-row" data-backbone="resnet50">(.*?)</tr>', html, re.S).group(1)
    assert "unavailable" in row and "pretrained ImageNet weights are not available" in row
    print(f"report: {out} ({len(html) / 1e6:.1f} MB)")
