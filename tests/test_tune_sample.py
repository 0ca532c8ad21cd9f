"""Sampled tuning: the stratified sampler (sizes, every label kept, seeded, a cap that does not
grow with the collection), and `simsearch tune` scoring on the sample, then fitting on (and
embedding the chosen variant for) the whole collection; `--all` scores on every image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import FLOWERS, copy_subset
from simsearch.ops.sampling import ALL, CAP, MIN_PER_LABEL, STRATIFIED, WHOLE_LABELS, per_label_limit, rule, \
    stratified_sample


def _labels(sizes: dict[str, int]) -> np.ndarray:
    return np.repeat(list(sizes), list(sizes.values()))


def test_a_small_collection_is_sampled_whole():
    labels = _labels({"a": 5, "b": 7})
    assert stratified_sample(labels, 12).tolist() == list(range(12))
    assert rule(labels, 12) == rule(labels, None) == ALL


def test_few_labels_are_stratified_to_the_cap_whatever_the_collection_size():
    for scale in (1, 10, 100):
        labels = _labels({"a": 900 * scale, "b": 300 * scale, "c": 40 * scale, "d": 3, "e": 1})
        pick = stratified_sample(labels, 200, seed=3)
        assert rule(labels, 200) == STRATIFIED
        assert len(pick) == 200 and len(set(pick.tolist())) == 200
        got = dict(zip(*np.unique(labels[pick], return_counts=True)))
        assert set(got) == {"a", "b", "c", "d", "e"}
        assert got["d"] == 3 and got["e"] == 1  # a small label whole
        assert got["a"] > got["b"] > got["c"] >= MIN_PER_LABEL  # the rest in proportion
    assert len(stratified_sample(_labels({"a": 10**6, "b": 10**6}), CAP)) == CAP


def test_many_labels_are_sampled_as_whole_labels_up_to_the_cap_whatever_the_collection_size():
    limit = per_label_limit(500)
    assert limit == 50
    for scale in (1, 10, 100):
        sizes = {f"l{i:03d}": 8 + (i * 7) % 43 * scale for i in range(102)}  # 102 labels, 8 to 50 (x scale)
        labels = _labels(sizes)
        assert rule(labels, 500) == WHOLE_LABELS
        pick = stratified_sample(labels, 500, seed=0)
        got = dict(zip(*np.unique(labels[pick], return_counts=True)))
        assert len(pick) <= 500 and len(pick) > 500 - limit  # filled but for less than one label's room
        assert len(got) >= 500 // limit
        assert all(n == min(sizes[lab], limit) for lab, n in got.items())  # each label whole (up to the limit)
    # no more than the cap, however many labels (the old rule kept two of each: 2,000 for 1,000 labels)
    many = _labels({f"l{i}": 5 for i in range(1000)})
    pick = stratified_sample(many, 120)
    assert len(pick) == 120 and set(np.unique(many[pick], return_counts=True)[1]) == {5}


def test_every_sampled_label_has_enough_images_for_the_evaluation():
    """Random collections and caps: the sample never exceeds the cap, and every label in it has at
    least MIN_PER_LABEL images or all it has (the cap leaving room for two labels at least)."""
    rng = np.random.default_rng(7)
    for _ in range(60):
        n_labels = int(rng.integers(2, 400))
        sizes = {f"l{i}": int(rng.integers(1, 120)) for i in range(n_labels)}
        labels = _labels(sizes)
        cap = int(rng.integers(22, 3000))
        pick = stratified_sample(labels, cap, seed=int(rng.integers(0, 99)))
        assert len(pick) == min(cap, len(labels)) if rule(labels, cap) != WHOLE_LABELS else len(pick) <= cap
        assert len(np.unique(pick)) == len(pick) and np.all(np.diff(pick) > 0)
        for lab, n in zip(*np.unique(labels[pick], return_counts=True)):
            assert n >= min(sizes[lab], MIN_PER_LABEL), (cap, lab, n, sizes[lab])
        assert len(np.unique(labels[pick])) >= 2


def test_the_sample_is_seeded_and_unlabelled_images_are_a_label_of_their_own():
    labels = list(_labels({"a": 400, "b": 400})) + [None] * 200
    one, two = stratified_sample(labels, 100, seed=1), stratified_sample(labels, 100, seed=1)
    assert np.array_equal(one, two) and np.all(np.diff(one) > 0)
    assert not np.array_equal(one, stratified_sample(labels, 100, seed=2))
    got = [labels[i] for i in one]
    assert got.count("a") == got.count("b") == 38 and got.count(None) == 24  # 11 each, then 67 by what is left
    many = [f"l{i}" for i in range(100) for _ in range(20)] + [None] * 500
    a, b = stratified_sample(many, 400, seed=5), stratified_sample(many, 400, seed=5)
    assert np.array_equal(a, b) and not np.array_equal(a, stratified_sample(many, 400, seed=6))
    kept = [many[i] for i in a]
    assert kept.count(None) in (0, per_label_limit(400))  # the unlabelled: one label, whole up to the limit


def test_bad_caps_are_refused():
    with pytest.raises(ValueError):
        stratified_sample(_labels({"a": 5}), 0)
    with pytest.raises(ValueError):
        stratified_sample(_labels({"a": 5}), 2.5)


# ---- through the store ----------------------------------------------------------------------------


@pytest.fixture
def fl_ctx(sqlite_settings, tmp_path):
    from simsearch.context import AppContext
    from simsearch.ingest import Ingester, files_from_folder

    folder = copy_subset(tmp_path / "flowers", 8, dataset=FLOWERS)  # 5 species x 8
    ctx = AppContext.open(sqlite_settings)
    files, _ = files_from_folder(folder, labels="folders")
    Ingester(ctx, spaces=[ctx.new_space("efficientnet_lite0")]).run("fl", files, source=str(folder))
    yield ctx
    ctx.close()


def _counts(ctx) -> dict[str, int]:
    from simsearch.store import repo

    with ctx.db.session() as s:
        return repo.vector_counts(s, repo.get_collection(s, "fl").id)


def test_tune_scores_on_the_sample_and_fits_on_every_image(fl_ctx, monkeypatch):
    from simsearch.analysis import tuning
    from simsearch.ops.tune import tune

    everything = tune(fl_ctx, "fl", folds=3, sample="all", variants=False)
    assert everything.sample == {"size": 40, "of": 40, "seed": 0, "stratified_by": "label", "cap": None,
                                 "rule": "all", "labels": 5}
    assert {c["cv_images"] for c in everything.candidates} == {40}
    # a derived space chosen (the last candidate scored, a transform): scored on 16 (at a cap of 20, five
    # labels of 8 cannot keep 11 each: two whole labels), fitted on all 40
    monkeypatch.setattr(tuning, "select", lambda scores, complexity=None: scores[-1])
    report = tune(fl_ctx, "fl", folds=3, sample=20, variants=False, set_default=True)
    assert report.sample == {"size": 16, "of": 40, "seed": 0, "stratified_by": "label", "cap": 20,
                             "rule": "whole labels", "labels": 2}
    assert {c["cv_images"] for c in report.candidates} == {16}
    assert report.created is not None and report.created["report"]["cv_sample"] == {"size": 16}
    assert report.created["report"]["fitted_on"]["images"] == 40
    assert _counts(fl_ctx)[report.chosen] == 40 and report.default_space == report.chosen


def test_variants_embed_only_the_sample_then_the_chosen_one_for_all(fl_ctx):
    from simsearch.ops.tune import tune, variant_spaces

    report = tune(fl_ctx, "fl", folds=3, sample=20, variants=True)
    assert report.embedding["images"] == 16  # the variant pass: the sampled images only (two whole labels)
    counts = _counts(fl_ctx)
    kept = [sp for sp in variant_spaces("efficientnet_lite0") if sp in counts]
    chosen_bases = next(c["bases"] for c in report.candidates if c["space"] == report.chosen)
    assert kept == [sp for sp in chosen_bases if sp in variant_spaces("efficientnet_lite0")]
    for sp in kept:  # the chosen variant covers the whole collection, embedded once more for the rest
        assert counts[sp] == 40 and report.embedding["collection_pass"]["images"] == 24


def test_a_variant_chosen_on_the_sample_is_embedded_for_the_whole_collection_once(fl_ctx, monkeypatch):
    """Whatever the cross-validation prefers on 40 images, the path of a chosen variant: the
    choice is made to fall on the last candidate scored (a variant's, with the projection)."""
    from simsearch.analysis import tuning
    from simsearch.derived import derived_name
    from simsearch.ops.tune import tune, variant_spaces

    monkeypatch.setattr(tuning, "select", lambda scores, complexity=None: scores[-1])
    report = tune(fl_ctx, "fl", folds=3, sample=20, variants=True)
    variant = variant_spaces("efficientnet_lite0")[-1]
    assert report.chosen == derived_name([variant], "discriminant") and report.created["bases"] == [variant]
    rest = report.embedding["collection_pass"]
    assert report.embedding["images"] == 16 and rest == {
        "images": 24, "seconds": rest["seconds"], "spaces": [variant], "job_id": rest["job_id"]}
    from simsearch.ops import jobs as jobs_ops

    job = jobs_ops.get(fl_ctx, rest["job_id"])  # the collection pass is a re-embedding job, run in the tuning
    assert (job["kind"], job["status"], job["added"], job["backbones"]) == ("reembed", "done", 24, [variant])
    counts = _counts(fl_ctx)
    assert counts[variant] == counts[report.chosen] == 40
    assert not set(variant_spaces("efficientnet_lite0")[:-1]) & set(counts)  # the others removed again
    assert report.created["report"]["fitted_on"]["images"] == 40


def test_cli_tune_says_what_it_scored_on_and_all_is_an_option(sqlite_settings, fl_ctx, monkeypatch):
    from click.testing import CliRunner

    from simsearch.cli import cli

    monkeypatch.setenv("SIMSEARCH_HOME", str(sqlite_settings.home))
    monkeypatch.setenv("SIMSEARCH_DATABASE_URL", sqlite_settings.database_url)
    monkeypatch.setenv("SIMSEARCH_WEIGHTS_DIR", str(sqlite_settings.weights_dir))
    runner = CliRunner()
    r = runner.invoke(cli, ["tune", "-c", "fl", "--folds", "3", "--no-variants", "--sample", "20"])
    assert r.exit_code == 0, r.output
    assert "scored on 16 of 40 images (seeded sample, seed 0: whole labels, 2 of 5 labels)" in r.output
    r = runner.invoke(cli, ["tune", "-c", "fl", "--folds", "3", "--no-variants", "--all", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["sample"]["size"] == 40
    r = runner.invoke(cli, ["tune", "-c", "fl", "--sample", "5"])
    assert r.exit_code == 2 and "--sample" in r.output


def test_tune_samples_the_labelled_images_only(fl_ctx):
    """Images without a label are no stratum for tune: they are left out of the sample (and of the
    cross-validation) and counted as unlabelled; the sample is drawn from the labelled ones."""
    from sqlalchemy import update

    from simsearch.ops.tune import tune
    from simsearch.store.models import Image

    with fl_ctx.db.session() as s:
        first = min(s.scalars(Image.__table__.select().with_only_columns(Image.label)).all())
        s.execute(update(Image).where(Image.label == first).values(label=None))  # one species, unlabelled
        s.commit()
    report = tune(fl_ctx, "fl", folds=3, sample=36, variants=False)
    assert report.n_labelled == 32 and report.n_labels == 4
    assert report.sample == {"size": 32, "of": 32, "seed": 0, "stratified_by": "label", "cap": 36, "rule": "all",
                             "labels": 4}
    assert {c["cv_images"] for c in report.candidates} == {32}
    small = tune(fl_ctx, "fl", folds=3, sample=24, variants=False)  # 4 x 8 > 24: whole labels of the labelled
    assert small.sample["rule"] == "whole labels" and small.sample["size"] == 24 and small.sample["labels"] == 3
