"""Limits are declared once (simsearch/limits.py): the CLI refuses what the API refuses, with the
same message. Before, cluster k was capped at 200 by the API but not the CLI, and batch_size at
1-256 by the API but not the CLI."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from simsearch.cli import cli


@pytest.fixture
def runner(sqlite_settings, monkeypatch):
    monkeypatch.setenv("SIMSEARCH_HOME", str(sqlite_settings.home))
    monkeypatch.setenv("SIMSEARCH_DATABASE_URL", sqlite_settings.database_url)
    return CliRunner()


@pytest.fixture
def api(sqlite_settings):
    from simsearch.web import create_app, shutdown

    app = create_app({"SETTINGS": sqlite_settings, "TESTING": True})
    yield app.test_client()
    shutdown(app)


def cli_error(runner, *args) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: "), result.output
    return line.removeprefix("error: ")


def api_error(resp, field: str) -> str:
    assert resp.status_code == 400, resp.get_data(as_text=True)
    err = resp.get_json()["error"]
    assert err["code"] == "invalid_input" and err["field"] == field, err
    return err["message"]


@pytest.mark.parametrize("k", ["201", "1", "many"])
def test_cluster_k_is_refused_alike(runner, api, k):
    api_message = api_error(api.get(f"/api/collections/pets/clusters?k={k}"), "k")
    assert cli_error(runner, "cluster", "-c", "pets", "--k", k) == api_message
    assert "'auto' or a whole number >= 2 and <= 200" in api_message


@pytest.mark.parametrize("n", ["257", "0"])
def test_batch_size_is_refused_alike(runner, api, tmp_path, n):
    form = {"files": [(io.BytesIO(b"x"), "a.jpg")], "batch_size": n}
    api_message = api_error(api.post("/api/collections/pets/ingest", data=form, content_type="multipart/form-data"),
                            "batch_size")
    (tmp_path / "imgs").mkdir()
    assert cli_error(runner, "ingest", str(tmp_path / "imgs"), "-c", "pets", "--batch-size", n) == api_message
    assert api_message == f"batch_size must be {'<= 256' if n == '257' else '>= 1'}, not {n}"


def test_search_k_is_refused_alike(runner, api, tmp_path):
    api_message = api_error(api.get("/api/images/1/similar?k=1001"), "k")
    assert cli_error(runner, "similar", "1", "-k", "1001") == api_message == "k must be <= 1000, not 1001"
    query = tmp_path / "q.jpg"
    query.write_bytes(b"x")
    assert cli_error(runner, "search", str(query), "-c", "pets", "-k", "0") == "k must be >= 1, not 0"


def test_a_bf16_space_is_a_space_to_read(api):
    """Vectors embedded in bfloat16 (precision auto on an AMX CPU) live in ``<backbone>+bf16``:
    reads may name that space (a 404 where the collection has none), a misspelt suffix is a 400."""
    from pydantic import TypeAdapter, ValidationError

    from simsearch import limits

    space = TypeAdapter(limits.Space)
    assert space.validate_python("efficientnet_lite0+bf16") == "efficientnet_lite0+bf16"
    assert space.validate_python("efficientnet_lite0@gem3+flip+bf16") == "efficientnet_lite0@gem3+flip+bf16"
    with pytest.raises(ValidationError):
        space.validate_python("efficientnet_lite0+bf17")
    assert api.post("/api/collections", json={"name": "c"}).status_code == 201
    resp = api.get("/api/collections/c/map?backbone=efficientnet_lite0%2Bbf16")
    assert resp.status_code in (404, 409), resp.get_data(as_text=True)  # no vectors there: not a 400
    assert resp.get_json()["error"]["code"] != "invalid_input"
    assert "unknown backbone" in api_error(api.get("/api/collections/c/map?backbone=efficientnet_lite0%2Bbf17"), "backbone")
