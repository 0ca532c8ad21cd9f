"""Sampled comparison and tuning through the API (synthetic labelled vectors, no model: quick):
`GET comparison` evaluates a seeded sample by label (stratified or whole labels) by default and says so in its
`sample` field, `sample=all` evaluates every image, a bad sample is a 400 naming the field; the
tune job takes the same option and reports the sample it scored on."""

from __future__ import annotations

import pytest

from tests.helpers.analysis import accepted, add_vectors, poll

SPACE = "efficientnet_lite0"


@pytest.fixture
def client(make_app):
    app = make_app()
    add_vectors(app.extensions["simsearch"], per_group=15)  # 3 labelled groups, 45 images
    return app.test_client()


def _result(client, url: str) -> dict:
    first = client.get(url)
    assert first.status_code in (200, 202), first.get_data(as_text=True)[:300]
    if first.status_code == 202:
        assert poll(client, first.get_json()["job_id"], timeout=300)["status"] == "done"
    resp = client.get(url)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return resp.get_json()


def test_comparison_is_on_a_sample_unless_all_is_asked(client):
    got = _result(client, f"/api/collections/synth/comparison?backbones={SPACE}&sample=36")
    assert got["sample"] == {"size": 36, "of": 45, "seed": 0, "stratified_by": "label", "cap": 36,
                             "rule": "stratified", "labels": 3}  # 11 of each label fit: stratified, 12 each
    assert got["n_images"] == 45 and got["backbones"][0]["n_images"] == 36
    assert got["backbones"][0]["labels"]["per_label"] and {r["n"] for r in got["backbones"][0]["labels"]["per_label"]} == {12}
    few = _result(client, f"/api/collections/synth/comparison?backbones={SPACE}&sample=21")
    assert few["sample"] | {"size": None} == {"size": None, "of": 45, "seed": 0, "stratified_by": "label", "cap": 21,
                                              "rule": "whole labels", "labels": 2}  # 3 x 11 > 21: two labels of 10
    assert {r["n"] for r in few["backbones"][0]["labels"]["per_label"]} == {10} and few["sample"]["size"] == 20
    whole = _result(client, f"/api/collections/synth/comparison?backbones={SPACE}&sample=all")
    assert whole["sample"]["size"] == 45 and whole["sample"]["cap"] is None and whole["sample"]["rule"] == "all" and whole["backbones"][0]["n_images"] == 45
    default = _result(client, f"/api/collections/synth/comparison?backbones={SPACE}")
    assert default["sample"]["cap"] == 2000 and default["sample"]["size"] == 45  # a small collection: all of it


@pytest.mark.parametrize("bad", ["5", "x", "1.5"])
def test_a_bad_comparison_sample_is_a_400_naming_it(client, bad):
    resp = client.get(f"/api/collections/synth/comparison?backbones={SPACE}&sample={bad}")
    assert resp.status_code == 400 and "sample" in resp.get_data(as_text=True)


def test_the_tune_job_scores_on_the_sample_asked_for(client):
    job = poll(client, accepted(client.post("/api/collections/synth/tune",
                                            json={"folds": 3, "sample": 24, "variants": False}))["job_id"], timeout=300)
    assert job["status"] == "done", job
    report = client.get("/api/collections/synth/spaces").get_json()["last_tuning"]["report"]
    assert report["sample"] == {"size": 22, "of": 45, "seed": 0, "stratified_by": "label", "cap": 24,
                                "rule": "whole labels", "labels": 2}  # 3 x 11 > 24: two whole labels, 11 each
    assert {c["cv_images"] for c in report["candidates"]} == {22}
    for bad in (5, "some", True):
        resp = client.post("/api/collections/synth/tune", json={"sample": bad})
        assert resp.status_code == 400 and "sample" in resp.get_data(as_text=True), bad


def test_a_backbone_named_without_precision_is_compared_where_this_server_embeds_it(make_app, settings):
    """On a CPU that computes bf16 ingest stores ``efficientnet_lite0+bf16``: ``backbones=efficientnet_lite0``
    (what a user writes) compares those vectors instead of embedding the collection again in fp32."""
    app = make_app(settings.replace(precision="bf16"))
    add_vectors(app.extensions["simsearch"], per_group=15, space=f"{SPACE}+bf16")
    got = _result(app.test_client(), f"/api/collections/synth/comparison?backbones={SPACE}")
    assert [p["backbone"] for p in got["backbones"]] == [f"{SPACE}+bf16"]
    assert got["backbones"][0]["n_images"] == 45 and got["backbones"][0].get("error") is None
