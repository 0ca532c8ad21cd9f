"""No absolute server path in a response unless SIMSEARCH_EXPOSE_PATHS is set (issue 19, item 6).

Every test using ``make_app`` has its responses scanned for the data folder, the test's folders and
the weights folder (tests/conftest.py); these tests make the cases the issue found."""

from __future__ import annotations

import os

import pytest

from tests.conftest import copy_subset, record_responses, server_paths_in
from tests.helpers.api import assert_error


@pytest.fixture
def allowed(tmp_path):
    """A folder to ingest from: 2 images, a text file, a FIFO named like an image, a plain FIFO,
    and a link to an image outside the allowed root."""
    folder = copy_subset(tmp_path / "allowed" / "pets", 1)
    outside = copy_subset(tmp_path / "outside", 1)
    (folder / "cats" / "escape.jpg").symlink_to(next((outside / "cats").iterdir()))
    (folder / "notes.txt").write_text("not an image")
    os.mkfifo(folder / "dogs" / "pipe.jpg")
    os.mkfifo(folder / "fifo")
    return folder


def test_server_path_ingest_shows_ignored_files_inside_the_folder(make_app, tmp_path, allowed):
    client = make_app(SIMSEARCH_ALLOW_SERVER_PATHS=str(tmp_path / "allowed")).test_client()
    resp = client.post("/api/collections/srv/ingest", json={"server_path": "pets"})
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["total"] == 2
    assert sorted(body["ignored"]) == ["cats/escape.jpg (links outside the allowed folder)", "dogs/pipe.jpg", "fifo",
                                       "notes.txt"]
    assert str(tmp_path) not in resp.get_data(as_text=True)


def test_a_folder_without_images_is_refused_without_its_path(make_app, tmp_path):
    folder = tmp_path / "allowed" / "empty"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipe.jpg")
    (folder / "a.txt").write_text("x")
    client = make_app(SIMSEARCH_ALLOW_SERVER_PATHS=str(tmp_path / "allowed")).test_client()
    err = assert_error(client.post("/api/collections/srv/ingest", json={"server_path": "empty"}), 400, field="server_path")
    assert sorted(err["details"]["ignored"]) == ["a.txt", "pipe.jpg"]


def test_the_scanner_finds_a_path_and_ignores_an_echo(make_app, settings):
    """The check every API test runs after itself: a response showing the data folder is found; a
    response repeating what the request sent is not a leak."""
    app = make_app()
    seen = []
    record_responses(app, seen)
    home = str(settings.home)
    client = app.test_client()
    client.get("/api/collections/" + "x" * 3)
    client.post("/api/collections", json={"name": "a", "description": home})  # an echo of the client's own text
    assert server_paths_in(seen, [home]) == []
    seen.append(("GET /leak", "/leak", f'{{"path": "{home}/uploads/1/a.jpg"}}'))
    assert server_paths_in(seen, [home]) == [f'GET /leak: ...{{"path": "{home}/uploads/1/a.jpg"}}...']
