"""Hostile or broken requests get a 4xx naming the field, never a 500, on SQLite and PostgreSQL:
ids out of the columns' range, NUL characters, deeply nested JSON, wrong JSON types, chunked bodies
over the size limit, foreign Host and Origin headers (issue 8, "fail safely")."""

from __future__ import annotations

import http.client
import json
import re
import threading

import pytest

from tests.helpers.api import assert_error

BIG_IDS = [2**31, 2**31 + 5, 2**63, 2**63 + 1, 10**30]


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    c = app.test_client()
    assert c.post("/api/collections", json={"name": "pets", "description": "d"}).status_code == 201
    return c


# ---- ids beyond what the id columns hold ------------------------------------------------------

@pytest.mark.parametrize("image_id", BIG_IDS)
def test_ids_beyond_the_column_range_are_404(client, image_id):
    for url in (f"/api/images/{image_id}", f"/api/images/{image_id}/similar", f"/api/images/{image_id}/thumbnail",
                f"/api/jobs/{image_id}"):
        assert_error(client.get(url), 404, "not_found")
    assert_error(client.delete(f"/api/images/{image_id}"), 404, "not_found")


def test_label_ids_beyond_the_column_range_are_missing_not_500(client):
    resp = client.post("/api/collections/pets/labels", json={"image_ids": [1, 2**31, 2**63, 10**30], "label": "x"})
    err = assert_error(resp, 404, "not_found", "image_ids")
    assert err["details"]["missing"] == [1, 2**31, 2**63, 10**30]
    assert_error(client.post("/api/collections/pets/labels", json={"image_ids": [-(2**70)], "label": "x"}),
                 404, "not_found", "image_ids")


# ---- NUL characters -----------------------------------------------------------------------------

@pytest.mark.parametrize("method,url,kwargs,field", [
    ("get", "/api/collections/pets/images?label=a%00b", {}, "label"),
    ("get", "/api/collections/pets/images?meta.x=a%00b", {}, "meta.x"),
    ("get", "/api/collections/pets/images?status=ok&meta%00=1", {}, "meta\\x00"),
    ("get", "/api/jobs?collection=pe%00ts", {}, "collection"),
    ("get", "/api/collections/pe%00ts", {}, "name"),
    ("get", "/api/collections/pe%00ts/images", {}, "name"),
    ("delete", "/api/collections/pe%00ts", {}, "name"),
    ("post", "/api/collections", {"json": {"name": "x", "description": "a\x00b"}}, "description"),
    ("post", "/api/collections", {"json": {"name": "a\x00b"}}, "name"),
    ("post", "/api/collections/pets/labels", {"json": {"image_ids": [1], "label": "a\x00b"}}, "label"),
    ("post", "/api/collections/pets/labels", {"json": {"image_ids": [1], "label": "x", "meta": {"x": "\x00"}}}, "meta.x"),
    ("post", "/api/collections/pets/ingest", {"data": {"label": "a\x00b"}, "content_type": "multipart/form-data"}, "label"),
    ("post", "/api/collections", {"data": '{"name": "x", "description": "a\\ud800"}', "content_type": "application/json"},
     "description"),
    ("post", "/api/collections/pets/labels", {"data": '{"image_ids": [1], "label": "\\udfff"}',
                                              "content_type": "application/json"}, "label"),
])
def test_nul_characters_are_refused_naming_the_field(client, method, url, kwargs, field):
    err = assert_error(getattr(client, method)(url, **kwargs), 400, "invalid_input", field)
    assert "NUL" in err["message"] or "surrogate" in err["message"]


# ---- JSON: depth and types ------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json_is_400(client, depth):
    body = '{"name": "deep", "description": ' + "[" * depth + "]" * depth + "}"
    for url in ("/api/collections", "/api/collections/pets/labels", "/api/collections/pets/ingest"):
        err = assert_error(client.post(url, data=body, content_type="application/json"), 400, "invalid_input", "body")
        assert "nested" in err["message"]
    assert client.get("/api/collections/deep").status_code == 404


def test_server_path_that_cannot_be_a_path_is_400(make_app, tmp_path):
    client = make_app(SIMSEARCH_ALLOW_SERVER_PATHS=str(tmp_path)).test_client()
    for raw in ("x" * 5000, "a/" * 3000):
        resp = client.post("/api/collections/pets/ingest", json={"server_path": raw})
        assert_error(resp, 400, "invalid_input", "server_path")


@pytest.mark.parametrize("url,body", [
    ("/api/collections", {"name": 5}),
    ("/api/collections", {"name": ["a"]}),
    ("/api/collections", {"name": "ok", "description": {"a": 1}}),
    ("/api/collections", []),
    ("/api/collections", "name"),
    ("/api/collections", None),
    ("/api/collections/pets/labels", {"image_ids": "1", "label": "x"}),
    ("/api/collections/pets/labels", {"image_ids": [1.5], "label": "x"}),
    ("/api/collections/pets/labels", {"image_ids": [True], "label": "x"}),
    ("/api/collections/pets/labels", {"image_ids": [{"id": 1}], "label": "x"}),
    ("/api/collections/pets/labels", {"image_ids": [1], "label": ["x"]}),
    ("/api/collections/pets/labels", {"image_ids": [1], "label": 7}),
    ("/api/collections/pets/ingest", {"server_path": 5}),
    ("/api/collections/pets/ingest", {"server_path": ["/"]}),
    ("/login", {"key": 5}),
    ("/login", {"key": None}),
])
def test_wrong_json_types_are_400(client, url, body):
    resp = client.post(url, data=json.dumps(body), content_type="application/json")
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.get_data(as_text=True)[:300])


# ---- chunked bodies -----------------------------------------------------------------------------------

class Served:
    def __init__(self, app):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def chunked_post(self, path: str, body: bytes, content_type: str) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", content_type)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for i in range(0, len(body), 1000):
                piece = body[i:i + 1000]
                conn.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        finally:
            conn.close()

    def stop(self):
        self.server.shutdown()
        self.thread.join(10)


def test_chunked_bodies_are_held_to_the_size_limit(make_app):
    app = make_app(MAX_CONTENT_LENGTH=4000)
    served = Served(app)
    try:
        big = json.dumps({"name": "big", "description": "x" * 9000}).encode()
        status, body = served.chunked_post("/api/collections", big, "application/json")
        assert status == 413 and body["error"]["code"] == "payload_too_large", body
        status, body = served.chunked_post("/api/collections/big/search?k=3", b"\xff\xd8\xff" + bytes(9000), "image/jpeg")
        assert status == 413, body
        small = json.dumps({"name": "small", "description": "x" * 3000}).encode()
        status, body = served.chunked_post("/api/collections", small, "application/json")
        assert status == 201 and body["description"] == "x" * 3000, body  # under the limit: all of it arrives
    finally:
        served.stop()
    client = app.test_client()
    assert client.get("/api/collections/big").status_code == 404
    assert client.get("/api/collections/small").status_code == 200


# ---- Host and Origin (DNS rebinding, CSRF) ----------------------------------------------------------------

def _token(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)


def test_foreign_host_names_are_refused(make_app, settings):

    app = make_app()
    c = app.test_client()
    for host in ("localhost", "localhost:5000", "127.0.0.1:5000", "[::1]:8000", "LOCALHOST."):
        assert c.get("/api/health", headers={"Host": host}).status_code == 200, host
    # a rebinding page: its own name, pointed at 127.0.0.1, is same-origin with us
    rebind = {"Host": "rebind.attacker.example:5000", "Origin": "http://rebind.attacker.example:5000"}
    page = c.get("/login", headers=rebind)  # the page that would hand out a CSRF token
    assert page.status_code == 400 and b"csrf_token" not in page.data and b"not served here" in page.data
    assert_error(c.get("/api/health", headers=rebind), 400, "bad_host", "host")
    assert_error(c.get("/api/collections", headers=rebind), 400, "bad_host")
    assert_error(c.post("/api/collections", json={"name": "a"}, headers=rebind), 400, "bad_host")
    assert_error(c.get("/api/health", headers={"Host": "10.1.2.3"}), 400, "bad_host")  # not bound to every interface
    assert c.get("/api/collections/a").status_code == 404

    extra = make_app(settings.replace(allowed_hosts=("search.example.org", ".corp.example"))).test_client()
    for host in ("search.example.org", "search.example.org:443", "corp.example", "img.corp.example"):
        assert extra.get("/api/health", headers={"Host": host}).status_code == 200, host
    for host in ("example.org", "evilcorp.example", "search.example.org.evil"):
        assert_error(extra.get("/api/health", headers={"Host": host}), 400, "bad_host")
    anyhost = make_app(settings.replace(allowed_hosts=("*",))).test_client()
    assert anyhost.get("/api/health", headers={"Host": "whatever.example"}).status_code == 200
    bound = make_app(SIMSEARCH_BIND_HOST="192.168.7.7").test_client()
    assert bound.get("/api/health", headers={"Host": "192.168.7.7:5000"}).status_code == 200
    assert_error(bound.get("/api/health", headers={"Host": "192.168.7.8"}), 400, "bad_host")
    everywhere = make_app(SIMSEARCH_BIND_HOST="0.0.0.0").test_client()
    assert everywhere.get("/api/health", headers={"Host": "192.168.7.8:5000"}).status_code == 200  # an IP cannot be rebound
    assert_error(everywhere.get("/api/health", headers={"Host": "rebind.attacker.example"}), 400, "bad_host")


def test_allowed_hosts_come_from_the_environment(monkeypatch, tmp_path):
    from simsearch.config import Settings

    monkeypatch.setenv("SIMSEARCH_ALLOWED_HOSTS", " a.example , b.example:8000,")
    assert Settings.from_env(home=tmp_path).allowed_hosts == ("a.example", "b.example:8000")


def test_cookie_writes_from_a_foreign_origin_are_refused(client):
    token = _token(client)
    ok = client.post("/api/collections", json={"name": "a"}, headers={"X-CSRF-Token": token, "Origin": "http://localhost"})
    assert ok.status_code == 201
    for origin in ("http://evil.example", "http://localhost.evil.example", "null", "http://localhost:9999"):
        resp = client.post("/api/collections", json={"name": "b"}, headers={"X-CSRF-Token": token, "Origin": origin})
        assert_error(resp, 403, "csrf_failed")
    assert client.get("/api/collections/b").status_code == 404
