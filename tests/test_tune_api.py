"""The tuning endpoints (synthetic labelled vectors, no model: quick): POST /tune starts a job of
kind tune that the client polls, whose report lands in GET /spaces with the new default; the
default can be chosen and a derived space removed, a backbone's space cannot; bad input is a
400/404/409 naming the field; writes need the API key when keys are set."""

from __future__ import annotations

import pytest

from tests.helpers.analysis import accepted, add_vectors, poll

SPACE = "efficientnet_lite0"


@pytest.fixture
def client(make_app):
    app = make_app()
    add_vectors(app.extensions["simsearch"], per_group=10)  # 3 labelled groups, 30 images
    return app.test_client()


def test_tune_job_stores_the_best_space_and_the_page_data_follow(client):
    body = accepted(client.post("/api/collections/synth/tune", json={"folds": 3, "set_default": True}))
    job = poll(client, body["job_id"], timeout=300)
    assert job["status"] == "done", job
    assert job["kind"] == "tune" and job["result_url"] == "/api/collections/synth/spaces"
    out = client.get("/api/collections/synth/spaces").get_json()
    report = out["last_tuning"]["report"]
    assert out["last_tuning"]["status"] == "done" and report["mode"] == "labelled"
    assert out["default_space"] == report["chosen"] and out["default_chosen"]
    # the variants need the image files, which synthetic vectors never had: said, not hidden
    assert any("variants not tried" in n for n in report["notes"])
    rows = {r["name"]: r for r in out["spaces"]}
    assert rows[SPACE]["kind"] == "backbone"
    for c in report["candidates"]:
        assert 0 <= c["p_at_10_mean"] <= 1 and c["p_at_10_std"] >= 0 and c["embed_seconds"] == 0
    chosen = report["chosen"]
    assert rows[chosen]["default"] and (rows[chosen]["kind"] == "derived") == (chosen != SPACE)

    # the default goes back to the backbone's space, then a derived space is removed
    resp = client.put("/api/collections/synth/default-space", json={"space": SPACE})
    assert resp.status_code == 200 and resp.get_json() == {"collection": "synth", "default_space": SPACE}
    assert client.get("/api/collections/synth/spaces").get_json()["default_space"] == SPACE
    if chosen != SPACE:
        resp = client.delete(f"/api/collections/synth/spaces/{chosen}")
        assert resp.status_code == 200 and resp.get_json()["vectors_deleted"] == 30
        assert chosen not in {r["name"] for r in client.get("/api/collections/synth/spaces").get_json()["spaces"]}


def test_tuning_requests_are_checked(client, make_app):
    err = lambda resp: (resp.status_code, resp.get_json()["error"].get("field"))  # noqa: E731
    assert err(client.post("/api/collections/synth/tune", json={"folds": 1})) == (400, "folds")
    assert err(client.post("/api/collections/synth/tune", json={"set_default": "yes"})) == (400, "set_default")
    assert err(client.post("/api/collections/synth/tune", json={"colour": 1}))[0] == 400
    assert err(client.post("/api/collections/nope/tune", json={}))[0] == 404
    assert err(client.put("/api/collections/synth/default-space", json={"space": "resnet50"})) == (404, "space")
    assert err(client.delete(f"/api/collections/synth/spaces/{SPACE}")) == (409, "space")  # the collection's own
    assert err(client.delete("/api/collections/synth/spaces/nothing.here")) == (404, "space")
    client.post("/api/collections", json={"name": "tiny"})
    add_vectors(client.application.extensions["simsearch"], collection="tiny", per_group=2, groups=2)
    assert err(client.post("/api/collections/tiny/tune", json={})) == (409, "collection")  # 4 images


def test_tuning_writes_need_the_api_key(make_app, settings):
    keyed = make_app(settings.replace(api_keys=("key-one",))).test_client()
    for method, url, kw in [("post", "/api/collections/synth/tune", {"json": {}}),
                            ("put", "/api/collections/synth/default-space", {"json": {"space": None}}),
                            ("delete", "/api/collections/synth/spaces/x.whiten", {})]:
        assert getattr(keyed, method)(url, **kw).status_code == 401
    assert keyed.get("/api/collections/synth/spaces").status_code == 401  # reads need the key too
    assert keyed.get("/api/collections/synth/spaces", headers={"X-API-Key": "key-one"}).status_code == 404


def test_a_derived_space_is_compared_like_a_backbone(client):
    """The compare page lists every space with vectors; a derived one (here the whitening that
    tuning an unlabelled collection fits) is compared with its base like a backbone."""
    from simsearch.store.models import Image

    ctx = client.application.extensions["simsearch"]
    with ctx.db.session() as s:
        s.query(Image).update({Image.label: None})
    job = poll(client, accepted(client.post("/api/collections/synth/tune", json={}))["job_id"], timeout=300)
    assert job["status"] == "done", job
    derived = [r["name"] for r in client.get("/api/collections/synth/spaces").get_json()["spaces"] if r["kind"] == "derived"]
    assert len(derived) == 1 and derived[0].endswith("whiten"), derived
    url = f"/api/collections/synth/comparison?backbones={SPACE},{derived[0]}"
    first = client.get(url)
    assert first.status_code in (200, 202), first.get_data(as_text=True)[:300]
    if first.status_code == 202:
        assert poll(client, first.get_json()["job_id"], timeout=300)["status"] == "done"
    resp = client.get(url)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert [p["backbone"] for p in resp.get_json()["backbones"]] == [SPACE, derived[0]]


def test_a_tune_job_not_asked_to_set_the_default_leaves_it_and_the_pages_follow(client):
    import re

    before = client.get("/api/collections/synth/spaces").get_json()["default_space"]
    job = poll(client, accepted(client.post("/api/collections/synth/tune", json={"folds": 3}))["job_id"], timeout=300)
    assert job["status"] == "done", job
    out = client.get("/api/collections/synth/spaces").get_json()
    assert out["default_space"] == before == SPACE  # (pinned before the variants were tried: the same space)
    for page, sel in (("search", "search-backbone"), ("map", "map-backbone"), ("clusters", "clusters-backbone")):
        html = client.get(f"/c/synth/{page}").get_data(as_text=True)
        block = re.search(rf'<select id="{sel}".*?</select>', html, re.S).group(0)
        assert re.findall(r'<option value="([^"]*)"[^>]* selected>', block) == [SPACE], page
