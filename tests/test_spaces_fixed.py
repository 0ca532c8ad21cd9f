"""Spaces that cannot be mixed up (issue #18 item 5): every page and command uses the collection's
default space after `compare` and `tune`; tune's internal variants stay out of the pickers;
vectors carry a fingerprint of the model that made them (an ingest, an import or a search by
image that would mix two models is refused; foreign vectors go to a space named for them);
scores come with a percentile that reads the same in every space; tune's criterion penalises a
projection that scatters the raw space's neighbourhoods."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from conftest import CATS_DOGS, copy_subset

MAX = "efficientnet_lite0@max"
LITE0 = "efficientnet_lite0"
PAGES = {"search": "search-backbone", "map": "map-backbone", "clusters": "clusters-backbone",
         "duplicates": "dups-backbone"}


def selected(html: str, select_id: str) -> tuple[str | None, list[str]]:
    """(the preselected option, every option) of the <select id=...> in a page."""
    block = re.search(rf'<select id="{select_id}".*?</select>', html, re.S).group(0)
    options = re.findall(r'<option value="([^"]*)"', block)
    chosen = re.findall(r'<option value="([^"]*)"[^>]* selected>', block)
    return (chosen[0] if chosen else None), options


def pages_default(client, name: str) -> dict[str, str | None]:
    out = {}
    for page, sel in PAGES.items():
        resp = client.get(f"/c/{name}/{page}")
        assert resp.status_code == 200, page
        out[page] = selected(resp.get_data(as_text=True), sel)[0]
    compare = client.get(f"/c/{name}/compare").get_data(as_text=True)
    boxes = re.findall(r'name="backbones" value="([^"]+)"', compare)
    out["compare (first)"] = boxes[0] if boxes else None
    return out


def commands_default(ctx, name: str, image_id: int) -> dict[str, str]:
    from simsearch.ops import analysis
    from simsearch.ops.search import by_image
    from simsearch.ops.vectors_io import export_stream

    return {"similar": by_image(ctx, image_id, k=3)["backbone"], "export": export_stream(ctx, name)[0]["backbone"],
            "clusters": analysis.clusters(ctx, name, k=2).backbone}


@pytest.mark.model
def test_compare_leaves_the_default_space_of_every_page_and_command(make_app, sqlite_settings, tmp_path):
    """A collection embedded with efficientnet_lite0@max (not the settings' default backbone):
    `compare` embeds efficientnet_lite0 too, and yet the pages preselect, and the commands use,
    @max as before (it used to switch to the settings' default)."""
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.ops import comparison

    app = make_app(sqlite_settings)
    ctx, client = app.extensions["simsearch"], app.test_client()
    files, _ = files_from_folder(copy_subset(tmp_path / "pets", 4), labels="folders")
    Ingester(ctx, spaces=[MAX]).run("pets", files, source="test")
    first = client.get("/api/collections/pets/spaces").get_json()["spaces"][0]
    assert pages_default(client, "pets") == dict.fromkeys([*PAGES, "compare (first)"], MAX)
    comparison.compare(ctx, "pets", [MAX, LITE0], embed=True, with_maps=False)
    spaces = client.get("/api/collections/pets/spaces").get_json()
    assert {s["name"] for s in spaces["spaces"]} == {MAX, LITE0} and spaces["default_space"] == MAX
    assert pages_default(client, "pets") == dict.fromkeys([*PAGES, "compare (first)"], MAX)
    assert set(commands_default(ctx, "pets", 1).values()) == {MAX}
    assert first["fingerprint"]["model"] == LITE0 and first["fingerprint"]["pooling"] == "max"
    assert len(first["fingerprint"]["weights_sha256"]) == 64  # recorded by the ingest


@pytest.mark.model
@pytest.mark.slow
def test_tune_leaves_the_default_and_keeps_its_variants_out_of_the_pickers(make_app, sqlite_settings, tmp_path):
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.ops.tune import tune

    app = make_app(sqlite_settings)
    ctx, client = app.extensions["simsearch"], app.test_client()
    files, _ = files_from_folder(copy_subset(tmp_path / "pets", 6), labels="folders")
    Ingester(ctx, spaces=[MAX]).run("pets", files, source="test")
    report = tune(ctx, "pets", folds=2, variants=True)
    assert report.embedding is not None  # variants were embedded: the collection had more spaces meanwhile
    assert report.default_space == MAX
    assert pages_default(client, "pets") == dict.fromkeys([*PAGES, "compare (first)"], MAX)
    assert set(commands_default(ctx, "pets", 1).values()) == {MAX}
    rows = client.get("/api/collections/pets/spaces").get_json()["spaces"]
    internal = {r["name"] for r in rows if r["internal"]}
    _, options = selected(client.get("/c/pets/search").get_data(as_text=True), PAGES["search"])
    assert set(options) == {r["name"] for r in rows} - internal
    kept_variants = {r["name"] for r in rows if r["kind"] == "backbone"} - {MAX}
    chosen_bases = set((report.created or {}).get("bases") or [])
    assert internal == kept_variants - {report.chosen}  # a variant kept only as a derived space's base is internal
    assert internal <= chosen_bases


def test_a_collection_that_gets_a_second_space_keeps_the_one_it_used(ctx):
    from simsearch.space_defaults import keep_default, resolve_space
    from tests.helpers.db import add_images

    coll_id, _, _ = add_images(ctx.db, name="ext", n=4, dim=8, space="clip-a")
    assert resolve_space(ctx, coll_id, None) == "clip-a"
    assert keep_default(ctx, "ext", ["clip-a"]) is None  # nothing new: nothing pinned
    assert keep_default(ctx, "ext", ["clip-a", "clip-b"]) == "clip-a"
    add_images(ctx.db, name="ext", n=4, dim=8, space="clip-b", seed=1)
    assert resolve_space(ctx, coll_id, None) == "clip-a"  # without the pin: "several spaces, choose one"


# ---- fingerprints ---------------------------------------------------------------------------------


def npz_bytes(**arrays) -> io.BytesIO:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    return buf


@pytest.mark.model
def test_imports_that_would_mix_models_are_refused_and_foreign_vectors_get_their_own_space(sqlite_settings, tmp_path):
    from simsearch.context import AppContext
    from simsearch.errors import Conflict, InvalidInput
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.ops.vectors_io import export_stream, import_vectors
    from simsearch.space_defaults import resolve_space

    ctx = AppContext.open(sqlite_settings)
    try:
        files, _ = files_from_folder(copy_subset(tmp_path / "pets", 3), labels="folders")
        Ingester(ctx, spaces=[LITE0]).run("pets", files, source="test")
        _, chunks = export_stream(ctx, "pets")
        with np.load(io.BytesIO(b"".join(chunks)), allow_pickle=False) as f:
            got = {k: f[k] for k in f.files}
        fp = json.loads(str(got["fingerprint"][0]))
        assert (fp["model"], fp["dim"], fp["space"]) == (LITE0, 1280, LITE0)
        arrays = {k: got[k] for k in ("vectors", "keys", "labels")}

        # another backbone's export renamed: efficientnet_lite1 has 1280 dimensions too
        with pytest.raises(Conflict, match=r"holds vectors of efficientnet_lite0 .*not of efficientnet_lite1 .*"
                                           r"import them under their own name \(efficientnet_lite0\)"):
            import_vectors(ctx, npz_bytes(**arrays, fingerprint=got["fingerprint"]), "other", "efficientnet_lite1")
        # no fingerprint: not into a backbone's space, unless vouched for
        with pytest.raises(InvalidInput, match="does not say which model made its vectors"):
            import_vectors(ctx, npz_bytes(**arrays), "other", "efficientnet_lite1")
        # the file's own space, when the server runs that model
        out = import_vectors(ctx, npz_bytes(**arrays, fingerprint=got["fingerprint"]), "copy", None)
        assert out["backbone"] == LITE0 and out["vectors_added"] == 6

        # vectors of the same backbone with other weights: foreign here
        other = dict(fp, weights_sha256="ab" * 32)
        foreign = np.array([json.dumps(other)])
        with pytest.raises(Conflict, match=r"weights abababab.*import them under their own name \(efficientnet_lite0.w-abababab\)"):
            import_vectors(ctx, npz_bytes(**arrays, fingerprint=foreign), "pets", LITE0)
        out = import_vectors(ctx, npz_bytes(**arrays, fingerprint=foreign), "pets", None)
        assert out["backbone"] == "efficientnet_lite0.w-abababab" and out["imported_space"]
        with pytest.raises(Conflict, match="but this collection's efficientnet_lite0.w-abababab vectors are of"):
            import_vectors(ctx, npz_bytes(**arrays, fingerprint=got["fingerprint"]), "pets", out["backbone"])
        with ctx.db.session() as s:
            from simsearch.store import repo

            coll_id = repo.get_collection(s, "pets").id
        assert resolve_space(ctx, coll_id, None) == LITE0  # the foreign space is not the default
    finally:
        ctx.close()


@pytest.mark.model
def test_search_by_upload_and_ingest_are_refused_when_the_model_changed(sqlite_settings, tmp_path):
    from simsearch import provenance
    from simsearch.context import AppContext
    from simsearch.errors import Conflict
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.ops.search import by_image, by_upload

    ctx = AppContext.open(sqlite_settings)
    try:
        folder = copy_subset(tmp_path / "pets", 3)
        files, _ = files_from_folder(folder, labels="folders")
        Ingester(ctx, spaces=[LITE0]).run("pets", files, source="test")
        image = (CATS_DOGS / "cats").iterdir().__next__().read_bytes()
        assert len(by_upload(ctx, "pets", image, "cat.jpg", k=3)["results"]) == 3
        made, origin = provenance.recorded(ctx, 1, LITE0)
        assert origin == "embedded" and made == provenance.of_space(ctx, LITE0)
        # the collection's vectors were made with other weights than the server has now
        provenance.record(ctx, 1, LITE0, dict(made, weights_sha256="cd" * 32), "embedded", replace=True)
        with pytest.raises(Conflict, match=r"search by image refused: the efficientnet_lite0 vectors were made by "
                                           r"efficientnet_lite0 \(.*weights cdcdcdcd\), this server embeds with"):
            by_upload(ctx, "pets", image, "cat.jpg", k=3)
        assert len(by_image(ctx, 1, k=3)["results"]) == 3  # by id: one model's vectors, still fine
        more, _ = files_from_folder(copy_subset(tmp_path / "more", 5), labels="folders")
        with pytest.raises(Conflict, match="one space cannot hold two models' vectors"):
            Ingester(ctx, spaces=[LITE0]).run("pets", more, source="test")
    finally:
        ctx.close()


def test_fingerprints_differ_on_the_model_and_on_weights_only_when_both_are_known():
    from simsearch.provenance import differs, foreign_name

    a = {"model": "m", "pooling": "avg", "views": [], "precision": "fp32", "dim": 4, "weights_sha256": "1" * 64}
    assert not differs(a, dict(a)) and not differs(a, dict(a, weights_sha256=None))
    assert differs(a, dict(a, weights_sha256="2" * 64)) and differs(a, dict(a, model="n"))
    assert differs(a, dict(a, pooling="max")) and differs(a, dict(a, views=("flip",)))
    assert not differs(a, None) and not differs({"dim": 4}, a)  # nothing said about the model: nothing to compare
    assert foreign_name(dict(a, space="m@gem3+flip")) == "m_gem3_flip.w-11111111"


# ---- calibrated scores ----------------------------------------------------------------------------


def test_percentile_reads_the_same_in_a_raw_and_a_collapsed_space(ctx, tmp_path):
    """Two spaces over the same 3 x 40 clustered items: the second squeezed towards one direction
    (every cosine above 0.9). Their cosines differ; their percentiles of a hit agree."""
    from simsearch.ops.search import by_image
    from simsearch.ops.vectors_io import import_vectors

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 16))
    x = np.repeat(centres, 40, axis=0) + 0.6 * rng.standard_normal((120, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    squeezed = x + 4.0 * np.eye(16)[0]  # the collapse: all vectors near one axis
    keys = np.array([f"item-{i}" for i in range(120)])
    labels = np.array(["abc"[i // 40] for i in range(120)])
    for space, v in (("raw-s", x), ("squeezed-s", squeezed)):
        import_vectors(ctx, npz_bytes(vectors=v.astype(np.float32), keys=keys, labels=labels), "c", space)
    stats = {}
    for space in ("raw-s", "squeezed-s"):
        cos, pct = [], []
        for q in range(1, 121, 6):
            res = by_image(ctx, q, backbone=space, k=10)["results"]
            assert [r["percentile"] for r in res] == sorted((r["percentile"] for r in res), reverse=True)
            assert all(0 <= r["percentile"] <= 100 for r in res)
            cos += [r["score"] for r in res]
            pct += [r["percentile"] for r in res]
        stats[space] = (np.mean(cos), np.mean(pct))
    assert stats["squeezed-s"][0] - stats["raw-s"][0] > 0.2  # the cosines say different things
    assert abs(stats["squeezed-s"][1] - stats["raw-s"][1]) < 10  # the percentiles do not
    assert 35 < stats["raw-s"][1] < 65  # a top-10 hit is a typical top-10 neighbour


def test_percentile_function_places_scores_in_the_reference():
    from simsearch.analysis.calibration import neighbour_quantiles, percentile

    q = neighbour_quantiles(np.linspace(0.5, 0.9, 1001))
    assert np.allclose(percentile(q, [0.5, 0.7, 0.9, 0.2, 0.99]), [0, 50, 100, 0, 100], atol=0.2)


# ---- tune's criterion -----------------------------------------------------------------------------


def test_a_projection_that_scatters_neighbourhoods_scores_below_the_raw_space():
    """Labels that are random with respect to the raw structure: a projection onto the label axes
    raises P@10 but keeps almost none of the raw neighbours; the criterion prefers the raw space."""
    from simsearch.analysis import tuning
    from simsearch.analysis.transforms import fit_discriminant

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 32))
    y = np.repeat(np.arange(6), 50)
    x[:, :3] += 0.9 * rng.standard_normal((6, 3))[y]  # weak label signal on 3 axes, the rest is structure
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tr, te = np.arange(300) % 5 != 0, np.arange(300) % 5 == 0
    raw_top = tuning._top(x[te], x[tr], 10)
    assert tuning.preservation(raw_top, x[te], x[tr]) == 1.0
    lin = fit_discriminant(x[tr], y[tr], 2, 0.1)
    D, Q = lin.apply(x[tr]), lin.apply(x[te])
    raw = tuning.CandidateScore(tuning.Family(), p_at_10=[tuning.precision_at(x[te], y[te], x[tr], y[tr])],
                                kept=[1.0])
    proj = tuning.CandidateScore(tuning.Family("discriminant"), p_at_10=[tuning.precision_at(Q, y[te], D, y[tr])],
                                 kept=[tuning.preservation(raw_top, Q, D)])
    assert proj.p_at_10[0] > raw.p_at_10[0]  # better by label precision alone
    assert proj.kept[0] < 0.5 and proj.mean < raw.mean  # and worse at what the space serves
    assert tuning.select([raw, proj]) is raw


def test_cli_imports_foreign_vectors_into_a_space_named_for_them_and_lists_what_made_each(tmp_path, weights_dir):
    from click.testing import CliRunner

    from simsearch.cli import cli

    env = {"SIMSEARCH_HOME": str(tmp_path / "home"), "SIMSEARCH_DATABASE_URL": f"sqlite:///{tmp_path / 'home' / 'db.sqlite'}",
           "SIMSEARCH_WEIGHTS_DIR": str(weights_dir), "SIMSEARCH_REDIS_URL": ""}
    runner = CliRunner()
    x = np.random.default_rng(0).standard_normal((12, 4)).astype(np.float32)
    made = {"model": "clip-vit-b32", "weights_sha256": "ef" * 32, "dim": 4, "space": "clip-vit-b32"}
    np.savez(tmp_path / "v.npz", vectors=x, keys=np.array([f"k{i}" for i in range(12)]),
             fingerprint=np.array([json.dumps(made)]))
    np.savez(tmp_path / "bare.npz", vectors=x, keys=np.array([f"k{i}" for i in range(12)]))
    out = runner.invoke(cli, ["import-vectors", str(tmp_path / "v.npz"), "-c", "ext"], env=env, catch_exceptions=False)
    assert out.exit_code == 0 and "added to clip-vit-b32.w-efefefef" in out.output, out.output
    out = runner.invoke(cli, ["import-vectors", str(tmp_path / "bare.npz"), "-c", "ext"], env=env)
    assert out.exit_code != 0 and out.output.count("\n") == 1  # one line, naming the cause
    assert "does not say which model made its vectors" in out.output
    out = runner.invoke(cli, ["spaces", "list", "-c", "ext"], env=env, catch_exceptions=False)
    assert "* clip-vit-b32.w-efefefef: imported, 12 vectors, made by clip-vit-b32 (4-d, weights efefefef)" in out.output


def test_api_refuses_a_file_without_fingerprint_into_a_backbone_space_unless_vouched_for(make_app):
    app = make_app()
    client = app.test_client()
    x = np.random.default_rng(0).standard_normal((3, 1280)).astype(np.float32)
    body = npz_bytes(vectors=x, keys=np.array(["a", "b", "c"])).getvalue()
    url = f"/api/collections/v/vectors?backbone={LITE0}"
    resp = client.post(url, data=body, content_type="application/octet-stream")
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == "space"
    assert "does not say which model made its vectors" in resp.get_json()["error"]["message"]
    resp = client.post(url + "&same_model=true", data=body, content_type="application/octet-stream")
    assert resp.status_code == 200 and resp.get_json()["backbone"] == LITE0
    spaces = client.get("/api/collections/v/spaces").get_json()["spaces"]
    assert spaces[0]["fingerprint"]["model"] == LITE0  # recorded as the backbone's, as vouched
