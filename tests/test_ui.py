"""The server-rendered pages, through Flask's test client (fast: no model, no browser)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from simsearch.store import repo
from simsearch.store.models import Embedding, Image

PAGES = ["", "/search", "/clusters", "/map", "/compare", "/ingest"]
SPACE = "efficientnet_lite0"


@pytest.fixture
def app(sqlite_settings):
    from simsearch.web import create_app, shutdown

    app = create_app(sqlite_settings)
    app.config["TESTING"] = True
    yield app
    shutdown(app)


@pytest.fixture
def client(app):
    return app.test_client()


def add_images(app, name="pets", labels=("cats", "cats", "dogs"), space=SPACE, dim=8):
    svc = app.extensions["simsearch"]
    rng = np.random.default_rng(0)
    with svc.db.session() as s:
        coll = repo.get_or_create_collection(s, name)
        for i, label in enumerate(labels):
            img = Image(collection_id=coll.id, content_hash=f"{name}-{space}-{i:040d}", source_path=f"/data/{label}/{i}.jpg",
                        width=10, height=10, label=label, meta={}, status="ok")
            s.add(img)
            s.flush()
            vec = rng.normal(size=dim).astype(np.float32)
            s.add(Embedding(image_id=img.id, space=space, dim=dim, vector=repo.vector_to_bytes(vec / np.linalg.norm(vec))))
    return name


def csrf_meta(html: str) -> str | None:
    m = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    return m.group(1) if m else None


def test_home_lists_collections_with_counts(app, client):
    resp = client.get("/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert csrf_meta(html)
    assert 'data-testid="no-collections"' in html and 'data-testid="create-collection"' in html
    add_images(app)
    html = client.get("/").get_data(as_text=True)
    assert 'data-testid="collection-card" data-name="pets"' in html
    counts = re.search(r'data-testid="card-counts">(.*?)</p>', html, re.S).group(1)
    assert re.sub(r"<[^>]+>|\s+", " ", counts).split() == ["3", "images", "2", "labels", "3", "files"]
    assert "Searches with EfficientNet-Lite0" in html  # the default space in words (spaces.describe)
    assert "No thumbnails" in html  # rows made here have none


@pytest.mark.parametrize("suffix", PAGES)
def test_every_collection_page_renders_with_the_csrf_meta_tag(app, client, suffix):
    add_images(app)
    resp = client.get(f"/c/pets{suffix}")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    html = resp.get_data(as_text=True)
    token = csrf_meta(html)
    assert token and len(token) >= 20
    assert 'data-collection="pets"' in html
    assert 'aria-current="page"' in html  # the nav marks where we are
    m = re.search(r'<script type="module" src="([^"]+)"', html)
    assert m, "each page loads its ES module"
    js = client.get(m.group(1))
    assert js.status_code == 200 and "javascript" in js.mimetype


def test_the_token_is_stable_within_a_session(app, client):
    add_images(app)
    first = csrf_meta(client.get("/c/pets").get_data(as_text=True))
    assert csrf_meta(client.get("/c/pets/map").get_data(as_text=True)) == first


def test_the_page_token_is_the_one_the_api_accepts(app, client):
    token = csrf_meta(client.get("/").get_data(as_text=True))
    origin = {"Origin": "http://localhost"}
    refused = client.post("/api/collections", json={"name": "new"}, headers=origin)
    assert refused.status_code == 403
    made = client.post("/api/collections", json={"name": "new"}, headers={**origin, "X-CSRF-Token": token})
    assert made.status_code == 201, made.get_json()


def test_browse_and_search_pages_show_labels_and_backbones(app, client):
    add_images(app)
    add_images(app, labels=("cats",), space="efficientnet_lite1")
    html = client.get("/c/pets").get_data(as_text=True)
    assert '<option value="cats">cats (3)</option>' in html and '<option value="dogs">dogs (1)</option>' in html
    html = client.get("/c/pets/search").get_data(as_text=True)
    # spaces in plain words, the name and explanation in the tooltip
    assert re.search(rf'<option value="{SPACE}" data-title="EfficientNet-Lite0" title="{SPACE}: Features of the EfficientNet-Lite0 [^"]+" selected>'
                     r'EfficientNet-Lite0 \(3\)</option>', html)
    assert ">EfficientNet-Lite1 (1)</option>" in html
    assert 'data-testid="query-file"' in html and 'accept="image/*"' in html


def test_internal_variants_are_offered_only_after_show_all(app, client):
    from simsearch import provenance

    add_images(app)
    add_images(app, space="efficientnet_lite0@gem3+flip")
    svc = app.extensions["simsearch"]
    with svc.db.session() as s:
        coll_id = repo.get_collection(s, "pets").id
    provenance.record(svc, coll_id, "efficientnet_lite0@gem3+flip", {"model": "efficientnet_lite0"}, provenance.INTERNAL)
    html = client.get("/c/pets/map").get_data(as_text=True)
    option = re.search(r'<option value="efficientnet_lite0@gem3\+flip"[^>]*>([^<]*)</option>', html)
    assert option and "data-internal" in option.group(0) and " hidden" in option.group(0)
    assert option.group(1) == "EfficientNet-Lite0, GeM pooling (p = 3), flip view (3, tuning variant)"
    assert 'data-show-all="map-backbone"' in html and "show all (1 tuning variant)" in html
    # without variants there is no toggle
    add_images(app, name="plain")
    html = client.get("/c/plain/map").get_data(as_text=True)
    assert 'data-testid="map-backbone"' in html and "data-show-all" not in html


def test_compare_page_lists_unembedded_backbones_with_a_reason(app, client):
    add_images(app)
    html = client.get("/c/pets/compare").get_data(as_text=True)
    assert f'name="backbones" value="{SPACE}" checked' in html
    assert 'data-testid="compare-needs-two"' in html  # only one backbone embedded
    # one line per backbone to add, with its action: a button to embed now, or the command that fetches the weights
    lite1 = re.search(r'<li data-testid="unavailable-backbone" data-backbone="efficientnet_lite1" data-weights="ok">(.*?)</li>', html, re.S)
    assert lite1 and "no vectors yet" in lite1.group(1) and 'data-testid="embed-backbone"' in lite1.group(1)
    assert "Embed 3 images" in lite1.group(1)
    # what it would cost, before it starts (nothing was embedded with it here: no rate yet)
    assert 'data-testid="embed-estimate">no time estimate yet' in lite1.group(1)
    resnet = re.search(r'<li data-testid="unavailable-backbone" data-backbone="resnet50" data-weights="(\w+)">(.*?)</li>', html, re.S)
    if resnet.group(1) == "missing":
        assert "simsearch compare -c pets --backbones efficientnet_lite0,resnet50" in resnet.group(2)
    assert "--embed" not in html and "--backbone " not in html  # the old hint named options that do not exist
    assert f'data-backbone="{SPACE}"' not in html.split('data-testid="compare-unavailable"')[1]


def test_empty_collection_pages_point_to_ingest(app, client):
    svc = app.extensions["simsearch"]
    with svc.db.session() as s:
        repo.get_or_create_collection(s, "empty")
    for suffix in ["", "/search", "/clusters", "/map"]:
        html = client.get(f"/c/empty{suffix}").get_data(as_text=True)
        assert 'data-testid="empty-collection"' in html and 'href="/c/empty/ingest"' in html


@pytest.mark.parametrize("suffix", PAGES)
def test_unknown_collection_is_a_404_page(app, client, suffix):
    add_images(app)
    resp = client.get(f"/c/nope{suffix}")
    assert resp.status_code == 404
    assert resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert 'data-testid="not-found"' in html and "no collection named &#39;nope&#39;" in html and "pets" in html
    assert csrf_meta(html)


def test_ingest_page_without_a_collection_asks_for_the_name(app, client):
    add_images(app)
    html = client.get("/ingest").get_data(as_text=True)
    assert 'data-testid="ingest-collection"' in html and '<option value="pets">' in html
    assert 'name="files" type="file" multiple' in html and 'name="archive" type="file"' in html


def test_static_assets_are_served(client):
    for path in ["/assets/css/app.css", "/assets/js/api.js", "/assets/js/scatter.js", "/assets/js/chart.js"]:
        resp = client.get(path)
        assert resp.status_code == 200, path


def test_login_page_and_sign_in_with_a_key(sqlite_settings):
    from simsearch.web import create_app, shutdown

    app = create_app(sqlite_settings.replace(api_keys=("s3cret",)))
    try:
        client = app.test_client()
        home = client.get("/")  # a server with keys is private: pages send a browser to sign in
        assert home.status_code == 302 and home.headers["Location"] == "/login?next=/"
        page = client.get("/login?next=/c/x")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        token = csrf_meta(html)
        assert 'data-testid="login-form"' in html and 'name="key"' in html and 'value="/c/x"' in html
        wrong = client.post("/login", data={"key": "nope", "csrf_token": token, "next": "/c/x"})
        assert wrong.status_code == 401 and 'data-testid="login-error"' in wrong.get_data(as_text=True)
        ok = client.post("/login", data={"key": "s3cret", "csrf_token": token, "next": "/c/x"})
        assert ok.status_code == 302 and ok.headers["Location"].endswith("/c/x")
        html = client.get("/").get_data(as_text=True)
        assert "Sign out" in html
        token = csrf_meta(html)
        made = client.post("/api/collections", json={"name": "after-login"},
                           headers={"Origin": "http://localhost", "X-CSRF-Token": token})
        assert made.status_code == 201
        # an open redirect is not followed
        evil = client.post("/login", data={"key": "s3cret", "csrf_token": csrf_meta(client.get("/login").get_data(as_text=True)),
                                           "next": "//evil.example/"})
        assert evil.headers["Location"].endswith("/") and "evil" not in evil.headers["Location"]
    finally:
        shutdown(app)
