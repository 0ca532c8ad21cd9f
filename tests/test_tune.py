"""Derived spaces and `simsearch tune`: the transforms see only training rows, the chosen space is
stored and searched through (by id and by upload, with the same query vector), a collection
without labels tunes unsupervised, removing a derived space leaves its base intact, and its
vectors can be exported."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from conftest import FLOWERS, copy_subset


# ---- pure functions -------------------------------------------------------------------------------


def _clusters(n_per: int = 12, classes: int = 3, dim: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 0.6
    y = np.repeat(np.arange(classes), n_per)
    X = centres[y] + rng.normal(size=(len(y), dim))
    return X.astype(np.float32), np.array([f"c{i}" for i in y])


def test_transforms_are_fitted_only_on_the_training_folds(monkeypatch):
    from simsearch.analysis import tuning

    X, y = _clusters()
    X[:, -1] = np.arange(len(X)) * 1e-3  # a row's id, read back from what the fits get
    row_ids = lambda rows: set(np.rint(np.asarray(rows)[:, -1] * 1e3).astype(int).tolist())  # noqa: E731
    folds = tuning.stratified_folds(np.unique(y, return_inverse=True)[1], 4, 0)
    seen = {"fold": None, "fits": 0}
    real_choose, real_basis = tuning.choose, tuning.principal_basis

    def spy_choose(Xtr, ytr, fams, **kw):
        ids = row_ids(Xtr)
        seen["fold"] = next(f for f in range(4) if ids == set(np.flatnonzero(folds != f).tolist()))
        return real_choose(Xtr, ytr, fams, **kw)

    def spy_basis(Xfit):
        held_out = set(np.flatnonzero(folds == seen["fold"]).tolist())
        assert not row_ids(Xfit) & held_out, "a transform saw a held-out row"
        seen["fits"] += 1
        return real_basis(Xfit)

    monkeypatch.setattr(tuning, "choose", spy_choose)
    monkeypatch.setattr(tuning, "principal_basis", spy_basis)
    scores = tuning.cross_validate(X, y, n_folds=4, inner_folds=2)
    assert seen["fits"] >= 4 * 3  # the inner folds' fits and each outer fold's own
    by_name = {s.family.name: s for s in scores}
    assert len(by_name["discriminant"].p_at_10) == 4
    # separable clusters: the supervised projection is at least as good as the raw vectors
    assert by_name["discriminant"].mean >= by_name["raw"].mean - 0.05


def test_stratified_folds_keep_every_label_in_every_fold():
    from simsearch.analysis import tuning

    y = np.repeat([0, 1, 2], [10, 7, 5])
    folds = tuning.stratified_folds(y, 5, 3)
    assert np.bincount(folds).max() - np.bincount(folds).min() <= 1
    for c in range(3):
        assert len(set(folds[y == c])) == min(5, (y == c).sum())
    assert (folds == tuning.stratified_folds(y, 5, 3)).all()  # seeded


def test_one_standard_error_rule_prefers_the_simpler_candidate():
    from simsearch.analysis.tuning import CandidateScore, Family, select

    raw = CandidateScore(Family(), p_at_10=[0.80, 0.84, 0.82, 0.78, 0.86])
    fancy = CandidateScore(Family("discriminant", "qe"), p_at_10=[0.81, 0.85, 0.83, 0.80, 0.86])
    assert select([fancy, raw]) is raw  # a gain within the spread
    better = CandidateScore(Family("discriminant"), p_at_10=[0.95, 0.96, 0.94, 0.95, 0.96])
    assert select([raw, fancy, better]) is better


def test_whitening_and_projection_apply_to_new_rows_and_round_trip():
    from simsearch.analysis.transforms import Linear, fit_discriminant, fit_whitening

    X, y = _clusters()
    for lin in (fit_whitening(X, 8, 0.5), fit_discriminant(X, y, 4, 0.5)):
        out = lin.apply(X[:3])
        assert out.shape == (3, lin.out_dim) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
        again = Linear.from_bytes(lin.to_bytes())
        assert np.allclose(again.apply(X[:3]), out)
    from simsearch.errors import InvalidInput

    with pytest.raises(InvalidInput) as exc:
        fit_discriminant(X, ["one"] * len(X))
    assert exc.value.field == "labels"


def test_query_expansion_leaves_out_the_query_itself():
    from simsearch.analysis.rerank import alpha_qe, expand

    X, _ = _clusters()
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    q = X[:1]
    with_self = alpha_qe(q, X, 3)  # X holds q itself: left out as a duplicate
    without = alpha_qe(q, X[1:], 3)
    assert np.allclose(with_self, without, atol=1e-6)
    sims = X[1:] @ q[0]
    top = np.argsort(-sims)[:3]
    assert np.allclose(expand(q[0], X[1:][top], sims[top], 3.0), without[0], atol=1e-6)


# ---- through the store ----------------------------------------------------------------------------


@pytest.fixture
def flowers_small(tmp_path):
    return copy_subset(tmp_path / "flowers", 6, dataset=FLOWERS)  # 5 species x 6


def _ingest(ctx, folder, name, labels=True):
    from simsearch.ingest import Ingester, files_from_folder

    files, _ = files_from_folder(folder, labels="folders" if labels else None)
    Ingester(ctx, spaces=[ctx.new_space("efficientnet_lite0")]).run(name, files, source=str(folder))


def _store_projection(ctx, collection: str) -> str:
    """A supervised projection of the collection's raw space, stored as tune stores one, and made the default."""
    from simsearch.analysis import tuning
    from simsearch import derived, space_defaults
    from simsearch.store import repo

    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
    ids, (x,) = derived.base_vectors(ctx, coll_id, ["efficientnet_lite0"])
    with ctx.db.session() as s:
        labels = np.asarray(repo.labels_for(s, ids), dtype=str)
    setting = tuning.Setting(tuning.Family("discriminant"), dims=4, shrinkage=0.5)
    name = derived.derived_name(["efficientnet_lite0"], "discriminant")
    derived.save(ctx, coll_id, name, ["efficientnet_lite0"], setting.to_dict(), tuning.fit(x, labels, setting), None)
    space_defaults.set_default(ctx, collection, name)
    return name


def test_tune_stores_a_derived_space_searched_by_id_and_upload_alike(ctx, flowers_small):
    from simsearch.ops import search as ops_search
    from simsearch.ops.tune import tune
    from simsearch.ops.vectors_io import export_stream
    from simsearch.search import vector_of_upload
    from simsearch import derived
    from simsearch.store import repo

    _ingest(ctx, flowers_small, "fl")
    report = tune(ctx, "fl", set_default=True, folds=3)
    assert report.mode == "labelled" and report.n_labels == 5
    names = {c["space"] for c in report.candidates}
    assert "efficientnet_lite0" in names and "efficientnet_lite0.discriminant" in names
    for c in report.candidates:
        assert len(c["p_at_10_folds"]) == 3 and 0 <= c["p_at_10_mean"] <= 1
    assert report.default_space == report.chosen
    name = report.chosen
    if report.created is None:  # the raw space won on this tiny set: store the projection anyway to test the paths
        name = _store_projection(ctx, "fl")
    with ctx.db.session() as s:
        coll = repo.get_collection(s, "fl")
        counts = repo.vector_counts(s, coll.id)
        img = s.scalars(__import__("sqlalchemy").select(repo.Image).where(repo.Image.collection_id == coll.id)
                        .order_by(repo.Image.id).limit(1)).one()
    assert counts[name] == counts["efficientnet_lite0"] == 30
    d = derived.get(ctx, coll.id, name)
    data = open(img.source_path, "rb").read()
    by_id = derived.vector_of_image(ctx, d, img.id)
    by_upload, _ = vector_of_upload(ctx, d, data, img.source_path)
    assert np.allclose(by_id, by_upload, atol=2e-3)
    # both paths search the default (derived) space and agree on the neighbours
    up = ops_search.by_upload(ctx, "fl", data, "q.jpg", k=5)
    same = ops_search.by_image(ctx, img.id, k=5)
    assert up["backbone"] == same["backbone"] == name
    assert up["results"][0]["image_id"] == img.id
    assert [r["image_id"] for r in up["results"][1:5]] == [r["image_id"] for r in same["results"][:4]]
    # its vectors can be exported like any space's
    info, chunks = export_stream(ctx, "fl", name)
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as z, z.open("vectors.npy") as f:
        vectors = np.lib.format.read_array(f)
    assert info["backbone"] == name and vectors.shape == (30, d.linear.out_dim)


def test_removing_a_derived_space_leaves_the_raw_one(ctx, flowers_small):
    from simsearch.errors import NotFound
    from simsearch.ops import search as ops_search
    from simsearch.ops.tune import tune
    from simsearch import derived, space_defaults
    from simsearch.store import repo

    _ingest(ctx, flowers_small, "fl", labels=False)  # no labels: an unsupervised whitening
    report = tune(ctx, "fl", set_default=True)
    assert report.mode == "unlabelled" and report.n_labelled == 0
    assert report.created["recipe"]["transform"] == "whiten"
    assert all(0 <= c["stability"] <= 1 for c in report.candidates)
    name = report.chosen
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, "fl").id
        before = repo.load_vectors(s, coll_id, "efficientnet_lite0")
    assert space_defaults.default_space(ctx, coll_id) == name
    out = derived.remove(ctx, "fl", name)
    assert out["vectors_deleted"] == 30 and out["was_default"]
    with ctx.db.session() as s:
        after = repo.load_vectors(s, coll_id, "efficientnet_lite0")
        assert name not in repo.spaces_of(s, coll_id)
    assert (before[0] == after[0]).all() and np.array_equal(before[1], after[1])
    assert space_defaults.default_space(ctx, coll_id) is None
    assert ops_search.by_image(ctx, int(after[0][0]), k=3)["backbone"] == "efficientnet_lite0"
    with pytest.raises(NotFound):
        derived.remove(ctx, "fl", name)


def test_cli_tune_reports_a_table_and_sets_the_default(sqlite_settings, flowers_small, monkeypatch):
    from click.testing import CliRunner

    from simsearch.cli import cli

    monkeypatch.setenv("SIMSEARCH_HOME", str(sqlite_settings.home))
    monkeypatch.setenv("SIMSEARCH_DATABASE_URL", sqlite_settings.database_url)
    monkeypatch.setenv("SIMSEARCH_WEIGHTS_DIR", str(sqlite_settings.weights_dir))
    runner = CliRunner()
    r = runner.invoke(cli, ["ingest", str(flowers_small), "-c", "fl", "--labels", "folders", "--no-progress"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["tune", "-c", "fl", "--folds", "3", "--set-default"])
    assert r.exit_code == 0, r.output
    assert "P@10 mean±std" in r.output and "efficientnet_lite0.discriminant" in r.output
    assert "default space:" in r.output
    r = runner.invoke(cli, ["tune", "-c", "fl", "--folds", "1"])
    assert r.exit_code == 2 and "error: folds must be between 2 and 20" in r.output
    r = runner.invoke(cli, ["spaces", "list", "-c", "fl", "--json"])
    assert r.exit_code == 0, r.output
    derived_names = {d["name"] for d in json.loads(r.output)}
    r = runner.invoke(cli, ["collections", "--json"])
    assert r.exit_code == 0, r.output
    base = next(sp for sp in next(c for c in json.loads(r.output) if c["name"] == "fl")["backbones"]
                if sp not in derived_names)
    # A backbone space is the collection's own: refused as the API refuses it (409 Conflict, exit
    # status 1), not "no such derived space" (404, exit status 2): the CLI calls the same operation.
    r = runner.invoke(cli, ["spaces", "remove", "-c", "fl", base])
    assert r.exit_code == 1 and "is not a derived space" in r.output, r.output
