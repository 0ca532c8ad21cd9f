"""The API contract declared once (simsearch/web/schemas): the OpenAPI document is generated from
the same models that validate requests, every response is documented, unknown query parameters
are refused by name."""

from __future__ import annotations

import pytest


@pytest.fixture
def client(sqlite_settings):
    from simsearch.web import create_app, shutdown

    app = create_app({"SETTINGS": sqlite_settings, "TESTING": True})
    yield app.test_client()
    shutdown(app)


@pytest.fixture
def spec(client):
    return client.get("/api/openapi.json").get_json()


@pytest.mark.parametrize("url", ["/api/health?verbose=1", "/api/collections?sort=name", "/api/jobs?limit=5&colection=x",
                                 "/api/collections/pets/images?pagesize=3", "/api/images/1/similar?topk=3",
                                 "/api/collections/pets/clusters?n=3"])
def test_unknown_query_parameters_are_refused_by_name(client, url):
    resp = client.get(url)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    err = resp.get_json()["error"]
    unknown = [k for k in url.split("?")[1].split("&") if k.split("=")[0] in ("verbose", "sort", "colection", "pagesize", "topk", "n")][0]
    name = unknown.split("=")[0]
    assert err["code"] == "invalid_input" and err["field"] == name and f"unknown query parameter '{name}'" in err["message"]


def test_json_bodies_are_typed_strictly(client):
    resp = client.post("/api/collections", json={"name": "a", "description": 5})
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == "description"
    resp = client.post("/api/collections", json={"name": "a", "colour": "red"})
    assert resp.status_code == 400 and "unknown field 'colour'" in resp.get_json()["error"]["message"]
    client.post("/api/collections", json={"name": "a"})
    resp = client.post("/api/collections/a/labels", json={"image_ids": ["1"], "label": "x"})
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == "image_ids"
    resp = client.post("/api/collections/a/labels", json={"image_ids": [1.0], "label": "x"})  # JSON's 1.0 is the number 1
    assert resp.status_code == 404 and resp.get_json()["error"]["details"]["missing"] == [1]


def test_every_response_is_documented(spec):
    schemas = spec["components"]["schemas"]
    for name in ("Clusters", "Map", "Evaluation", "Comparison", "Job", "Image", "SearchResult"):
        assert schemas[name].get("additionalProperties") is not True and schemas[name]["properties"], name
        assert schemas[name]["required"], name
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert codes & {"200", "201", "202"}, (path, method)
            assert "400" in codes, (path, method)  # at least unknown query parameters
            for code, resp in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_search_documents_both_ways_to_send_the_image(spec):
    content = spec["paths"]["/api/collections/{name}/search"]["post"]["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "image/*", "application/octet-stream"}
    ingest = spec["paths"]["/api/collections/{name}/ingest"]["post"]["requestBody"]["content"]
    assert set(ingest) == {"multipart/form-data", "application/json"}


def test_links_name_real_operations(spec):
    ids = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    found = 0
    for ops in spec["paths"].values():
        for op in ops.values():
            for resp in op["responses"].values():
                for link in (resp.get("links") or {}).values():
                    assert link["operationId"] in ids, link
                    found += 1
    assert found >= 8
