"""A public server: API keys set, SIMSEARCH_PUBLIC_SEARCH on. Anonymous clients may search by
upload (rate-limited per address: 429 with Retry-After) and see the results; every change, and
every other read, needs a key (tests/test_security_access.py)."""

from __future__ import annotations

import re

import pytest

from simsearch.web.ratelimit import RateLimiter
from tests.conftest import CATS_DOGS, copy_subset, dataset_files
from tests.helpers.api import assert_error, ingest_folder

KEY = "museum-key"
WRITES = [("post", "/api/collections", {"json": {"name": "a"}}),
          ("patch", "/api/collections/pets", {"json": {"name": "b"}}),
          ("delete", "/api/collections/pets", {}),
          ("post", "/api/collections/pets/labels", {"json": {"image_ids": [1], "label": "x"}}),
          ("post", "/api/collections/pets/ingest", {"json": {"server_path": "/"}}),
          ("patch", "/api/images/1", {"json": {"name": "x.jpg"}}),
          ("delete", "/api/images/1", {})]


def _public(make_app, settings, per_minute=30, **more):
    return make_app(settings.replace(api_keys=(KEY,), public_search=True, public_search_per_minute=per_minute, **more))


def _jpeg(n: int = 0) -> bytes:
    return dataset_files(CATS_DOGS / "cats", 1, start=100 + n)[0].read_bytes()


def test_settings_defaults_and_validation(monkeypatch):
    from simsearch.config import Settings
    from simsearch.errors import InvalidInput

    s = Settings.from_env()
    assert (s.public_search, s.public_search_per_minute, s.proxy_hops) == (False, 30, 0)
    monkeypatch.setenv("SIMSEARCH_PUBLIC_SEARCH", "1")
    monkeypatch.setenv("SIMSEARCH_PUBLIC_SEARCH_PER_MINUTE", "5")
    s = Settings.from_env()
    assert (s.public_search, s.public_search_per_minute) == (True, 5)
    monkeypatch.setenv("SIMSEARCH_PUBLIC_SEARCH_PER_MINUTE", "-1")
    with pytest.raises(InvalidInput, match="SIMSEARCH_PUBLIC_SEARCH_PER_MINUTE"):
        Settings.from_env()


def test_without_public_search_an_anonymous_search_is_401(make_app, settings):
    client = make_app(settings.replace(api_keys=(KEY,))).test_client()
    assert_error(client.post("/api/collections/pets/search", data=_jpeg(), content_type="image/jpeg"), 401, "unauthorized")


def test_public_search_leaves_every_change_behind_a_key(make_app, settings):
    client = _public(make_app, settings).test_client()
    assert client.get("/api/collections").status_code == 401
    for method, url, kw in WRITES:
        err = assert_error(getattr(client, method)(url, **kw), 401, "unauthorized", "api_key")
        assert "API key" in err["message"], (method, url)
    # a wrong key is refused on the public endpoint too (not silently treated as anonymous)
    resp = client.post("/api/collections/pets/search", data=_jpeg(), content_type="image/jpeg",
                       headers={"Authorization": "Bearer wrong"})
    assert_error(resp, 401, "unauthorized")
    # anonymous searches get past the key check: to the view, which says the collection is unknown
    assert_error(client.post("/api/collections/pets/search", data=_jpeg(), content_type="image/jpeg"), 404, "not_found")


def test_anonymous_searches_are_rate_limited_with_retry_after(make_app, settings):
    client = _public(make_app, settings, per_minute=3).test_client()
    for _ in range(3):  # a burst of per_minute passes the limiter (404: no such collection)
        assert_error(client.post("/api/collections/nope/search", data=b"x", content_type="image/jpeg"), 404)
    resp = client.post("/api/collections/nope/search", data=b"x", content_type="image/jpeg")
    err = assert_error(resp, 429, "too_many_requests")
    wait = int(resp.headers["Retry-After"])
    assert 1 <= wait <= 20 and err["details"] == {"retry_after": wait, "per_minute": 3}
    assert "at most 3 a minute" in err["message"]
    # another address has its own bucket; a keyed client is never limited
    other = client.post("/api/collections/nope/search", data=b"x", content_type="image/jpeg",
                        environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert_error(other, 404)
    for _ in range(5):
        keyed = client.post("/api/collections/nope/search", data=b"x", content_type="image/jpeg",
                            headers={"X-API-Key": KEY})
        assert_error(keyed, 404)
    # the results' thumbnails are not counted (the view answers: no such image)
    assert_error(client.get("/api/images/1/thumbnail"), 404, "not_found")


def test_rate_limit_zero_means_unlimited_and_proxy_hops_trusts_forwarded_for(make_app, settings):
    client = _public(make_app, settings, per_minute=0).test_client()
    for _ in range(40):
        assert_error(client.post("/api/collections/nope/search", data=b"x", content_type="image/jpeg"), 404)
    proxied = _public(make_app, settings, per_minute=1, proxy_hops=1).test_client()
    send = lambda addr: proxied.post("/api/collections/nope/search", data=b"x", content_type="image/jpeg",  # noqa: E731
                                     headers={"X-Forwarded-For": addr})
    assert_error(send("203.0.113.1"), 404)
    assert_error(send("203.0.113.1"), 429)
    assert_error(send("203.0.113.2"), 404)  # another visitor behind the same proxy


def test_token_bucket_refills_over_time():
    now = [0.0]
    limiter = RateLimiter(6, clock=lambda: now[0])  # one token every 10 s
    for _ in range(6):
        limiter.take("a")
    with pytest.raises(Exception) as exc:
        limiter.take("a")
    assert exc.value.retry_after == 10
    now[0] = 9.0
    with pytest.raises(Exception) as exc:
        limiter.take("a")
    assert exc.value.retry_after == 1
    now[0] = 10.5
    limiter.take("a")  # refilled
    limiter.take("b")


def test_browser_visitor_searches_with_the_csrf_token_but_cannot_write(make_app, settings):
    client = _public(make_app, settings).test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    # the page's token is still required: another site cannot make visitors' browsers search
    assert_error(client.post("/api/collections/nope/search", data=b"x", content_type="image/jpeg"), 403, "csrf_failed")
    resp = client.post("/api/collections/nope/search", data=b"x", content_type="image/jpeg", headers={"X-CSRF-Token": token})
    assert_error(resp, 404)
    resp = client.post("/api/collections", json={"name": "a"}, headers={"X-CSRF-Token": token})
    assert_error(resp, 401, "unauthorized")


@pytest.mark.model
def test_anonymous_search_by_upload_finds_results(make_app, settings, tmp_path):
    app = _public(make_app, settings)
    ingest_folder(app, copy_subset(tmp_path / "pets", 4))
    client = app.test_client()
    query = dataset_files(CATS_DOGS / "dogs", 1, start=150)[0]
    resp = client.post("/api/collections/pets/search?k=4", data=query.read_bytes(), content_type="image/jpeg")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    hits = resp.get_json()["results"]
    assert len(hits) == 4 and sum(h["label"] == "dogs" for h in hits) >= 3
    # ...while deleting one of the hits still needs the key
    assert_error(client.delete(f"/api/images/{hits[0]['image_id']}"), 401)
    assert client.delete(f"/api/images/{hits[0]['image_id']}", headers={"X-API-Key": KEY}).status_code == 200
