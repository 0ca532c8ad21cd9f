"""A server with API keys is private by default (issue 19, item 5): every read needs a key or a
signed-in session, unless SIMSEARCH_PUBLIC_READS opens them (SIMSEARCH_PUBLIC_SEARCH opens only
what a search needs); and no client can queue jobs without end: a cap per client and overall (429).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from simsearch.store.models import IngestRun
from tests.helpers.api import assert_error
from tests.helpers.jobs import REDIS_URL, rq_queue  # noqa: F401 (fixture)
from tests.helpers.races import at_once, imported, no_500

KEY, OTHER = "key-one", "key-two"
AUTH = {"Authorization": f"Bearer {KEY}"}

# Every read of the API that shows what the server holds (ids: the collection's first image).
READS = ["/api/collections", "/api/collections/pets", "/api/collections/pets/images", "/api/images/{id}",
         "/api/images/{id}/thumbnail", "/api/images/{id}/file", "/api/images/{id}/similar",
         "/api/collections/pets/vectors", "/api/collections/pets/clusters?k=2", "/api/collections/pets/map",
         "/api/collections/pets/map.bin", "/api/collections/pets/evaluation", "/api/collections/pets/comparison",
         "/api/collections/pets/duplicates", "/api/collections/pets/atlas/efficientnet_lite0/0-0-0",
         "/api/collections/pets/spaces", "/api/jobs", "/api/jobs/1", "/api/backbones"]
PAGES = ["/", "/c/pets", "/c/pets/search", "/c/pets/map", "/c/pets/compare", "/ingest"]
OPEN = ["/api/health", "/api/docs", "/api/docs/assets/swagger-ui-bundle.js", "/api/openapi.json", "/login"]


@pytest.fixture
def keyed(make_app, settings):
    """A server with two keys and a collection 'pets' of imported vectors; returns (app, first id)."""
    app = make_app(settings.replace(api_keys=(KEY, OTHER)))
    client = app.test_client()
    client.environ_base.update({"HTTP_AUTHORIZATION": f"Bearer {KEY}"})
    ids = imported(client, "pets")
    return app, ids[0]


def _login(client, key: str = KEY) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"key": key, "csrf_token": token}).status_code == 302


def test_every_read_needs_a_key(keyed):
    app, first = keyed
    client = app.test_client()
    for url in READS:
        url = url.format(id=first)
        err = assert_error(client.get(url), 401, "unauthorized", "api_key")
        assert "API key" in err["message"], url
        assert_error(client.get(url, headers={"X-API-Key": "wrong"}), 401, "unauthorized")
        assert client.get(url, headers=AUTH).status_code != 401, url
        assert client.get(url, headers={"X-API-Key": OTHER}).status_code != 401, url


def test_pages_send_a_browser_to_the_sign_in_page(keyed):
    app, _ = keyed
    client = app.test_client()
    for page in PAGES:
        resp = client.get(page)
        assert resp.status_code == 302 and resp.headers["Location"] == f"/login?next={page}", (page, resp.headers)
    for url in OPEN:
        assert client.get(url).status_code == 200, url
    assert "needs an API key to browse, search and make changes" in client.get("/login").get_data(as_text=True)


def test_a_signed_in_browser_reads_everything(keyed):
    app, first = keyed
    client = app.test_client()
    _login(client)
    for page in PAGES:
        assert client.get(page).status_code == 200, page
    for url in READS:
        assert client.get(url.format(id=first)).status_code != 401, url
    client.post("/logout", data={"csrf_token": re.search(r'name="csrf-token" content="([^"]+)"',
                                                         client.get("/").get_data(as_text=True)).group(1)})
    assert_error(client.get("/api/collections"), 401)


def test_public_reads_open_every_read_and_no_write(make_app, settings):
    app = make_app(settings.replace(api_keys=(KEY,), public_reads=True))
    client = app.test_client()
    assert client.post("/api/collections", json={"name": "pets"}, headers=AUTH).status_code == 201
    assert client.get("/api/collections").status_code == 200
    assert client.get("/c/pets").status_code == 200
    script = app.test_client()  # (no session cookie: not a browser)
    assert_error(script.post("/api/collections", json={"name": "x"}), 401)
    assert_error(script.delete("/api/collections/pets"), 401)


def test_without_keys_reads_are_open(make_app):
    client = make_app().test_client()
    assert client.get("/api/collections").status_code == 200
    assert client.get("/").status_code == 200


def test_public_search_opens_the_search_and_its_results_only(make_app, settings):
    app = make_app(settings.replace(api_keys=(KEY,), public_search=True, public_search_per_minute=3))
    client = app.test_client()
    ids = imported(_keyed_client(app), "pets")
    assert client.get("/c/pets/search").status_code == 200
    assert client.get(f"/api/images/{ids[0]}/similar?k=2").status_code == 200
    # no thumbnail for imported vectors: the view answers (404), the key check let it through
    assert_error(client.get(f"/api/images/{ids[0]}/thumbnail"), 404, "not_found")
    for url in ("/api/collections", f"/api/images/{ids[0]}", f"/api/images/{ids[0]}/file", "/api/collections/pets/vectors",
                "/api/collections/pets/images", "/api/collections/pets/map"):
        assert_error(client.get(url), 401, "unauthorized")
    assert client.get("/c/pets").headers["Location"] == "/login?next=/c/pets"
    # similar images are searches: rate-limited with them (3 a minute here; one used above)
    for _ in range(2):
        assert client.get(f"/api/images/{ids[0]}/similar?k=2").status_code == 200
    assert_error(client.get(f"/api/images/{ids[0]}/similar?k=2"), 429, "too_many_requests")


def _keyed_client(app, key: str = KEY):
    client = app.test_client()
    client.environ_base.update({"HTTP_AUTHORIZATION": f"Bearer {key}"})
    return client


# ---- caps on unfinished jobs ---------------------------------------------------------------------

@pytest.fixture
def queued_only(make_app, settings, rq_queue):  # noqa: F811
    """A keyed server whose jobs stay queued (an RQ queue no worker takes from), with a collection
    'pets' of imported vectors; caps: 3 per client, 5 in all."""
    def make(**more):
        options = {"api_keys": (KEY, OTHER), "redis_url": REDIS_URL, "jobs": "rq", "queue": rq_queue,
                   "max_queued_jobs_per_client": 3, "max_queued_jobs": 5, **more}
        app = make_app(settings.replace(**options))
        imported(_keyed_client(app), "pets", n=16)
        return app
    return make


def _clusters(k: int, key: str = KEY, addr: str | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    env = {"REMOTE_ADDR": addr} if addr else {}
    return lambda c: c.get(f"/api/collections/pets/clusters?k={k}", headers=headers, environ_base=env)


def test_parallel_analysis_requests_queue_at_most_the_cap(queued_only):
    app = queued_only()
    answers = at_once(app, *[_clusters(k) for k in range(2, 12)])  # ten different analyses at once
    no_500(answers)
    assert sorted(r.status_code for r in answers) == [202] * 3 + [429] * 7, [r.get_json() for r in answers]
    refused = next(r for r in answers if r.status_code == 429)
    err = assert_error(refused, 429, "too_many_requests")
    assert refused.headers["Retry-After"] == "10" and err["details"]["limit"] == 3
    assert "SIMSEARCH_MAX_QUEUED_JOBS_PER_CLIENT" in err["message"]
    # asking again for a queued analysis creates nothing and is not refused
    queued_k = next(k for k, r in zip(range(2, 12), answers) if r.status_code == 202)
    again = _clusters(queued_k)(app.test_client())
    assert again.status_code == 202
    with app.extensions["simsearch"].db.session() as s:
        who = s.scalars(select(IngestRun.requested_by).where(IngestRun.kind == "clusters")).all()
    assert len(who) == 3 and len(set(who)) == 1 and who[0].startswith("key:") and KEY not in who[0]


def test_the_overall_cap_counts_every_client(queued_only):
    app = queued_only()
    calls = [_clusters(k, KEY) for k in range(2, 6)] + [_clusters(k, OTHER) for k in range(6, 10)]
    answers = at_once(app, *calls)
    no_500(answers)
    assert sorted(r.status_code for r in answers) == [202] * 5 + [429] * 3, [r.get_json() for r in answers]
    mine = [r.status_code for r in answers[:4]].count(202)
    theirs = [r.status_code for r in answers[4:]].count(202)
    assert mine <= 3 and theirs <= 3 and mine + theirs == 5
    over = [r.get_json()["error"] for r in answers if r.status_code == 429]
    assert any("SIMSEARCH_MAX_QUEUED_JOBS)" in e["message"] for e in over), over


def test_anonymous_clients_are_capped_by_address(queued_only):
    app = queued_only(public_reads=True)
    calls = [_clusters(k, None, "10.0.0.1") for k in range(2, 6)] + [_clusters(k, None, "10.0.0.2") for k in (6, 7)]
    answers = at_once(app, *calls)
    no_500(answers)
    assert [r.status_code for r in answers[4:]] == [202, 202]
    assert sorted(r.status_code for r in answers[:4]) == [202] * 3 + [429]


def test_ingest_and_finished_jobs(queued_only, tmp_path):
    """Every kind of job counts; a finished one does not."""
    from simsearch.store.models import utcnow

    app = queued_only()
    client = _keyed_client(app)
    for k in (2, 3):
        assert client.get(f"/api/collections/pets/clusters?k={k}").status_code == 202
    jpeg = (tmp_path / "a.jpg")
    from PIL import Image as PILImage

    PILImage.new("RGB", (32, 32), "red").save(jpeg)
    up = lambda: client.post("/api/collections/pets/ingest", data={"files": [(open(jpeg, "rb"), "a.jpg")]},  # noqa: E731
                             content_type="multipart/form-data")
    assert up().status_code == 202
    assert_error(up(), 429, "too_many_requests")
    with app.extensions["simsearch"].db.session() as s:
        for run in s.scalars(select(IngestRun).where(IngestRun.kind == "clusters")):
            run.status, run.finished_at = "done", utcnow()
    assert up().status_code == 202
    assert not list((app.extensions["simsearch"].settings.home / "uploads").glob(".staging-*"))  # refused: no leftovers


def test_caps_of_zero_mean_no_cap(queued_only):
    app = queued_only(max_queued_jobs_per_client=0, max_queued_jobs=0)
    answers = [_clusters(k)(app.test_client()) for k in range(2, 8)]
    assert [r.status_code for r in answers] == [202] * 6


def test_a_refused_server_path_ingest_leaves_no_folder(queued_only, tmp_path):
    from PIL import Image as PILImage

    folder = tmp_path / "allowed" / "pics"
    folder.mkdir(parents=True)
    PILImage.new("RGB", (32, 32), "red").save(folder / "a.jpg")
    app = queued_only(allow_server_paths=tmp_path / "allowed", max_queued_jobs_per_client=1)
    client = _keyed_client(app)
    assert client.post("/api/collections/pics/ingest", json={"server_path": "pics"}).status_code == 202
    assert_error(client.post("/api/collections/pics/ingest", json={"server_path": "pics"}), 429, "too_many_requests")
    assert not list((app.extensions["simsearch"].settings.home / "uploads").glob(".staging-*"))
