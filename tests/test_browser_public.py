"""A public server in a real browser (headless Chromium): API keys set and SIMSEARCH_PUBLIC_SEARCH
on. An anonymous visitor searches by upload and sees results; deleting is refused (401) and every
other page sends to the sign-in page until the visitor signs in with a key. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.conftest import CATS_DOGS, copy_subset, dataset_files, upgraded
from tests.helpers.browser import LiveServer, by_testid, shot, visible, wait

pytestmark = [pytest.mark.browser, pytest.mark.model]

KEY = "museum-key"
PER_CLASS = 8

FETCH = """
const [method, url, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const token = document.querySelector('meta[name="csrf-token"]').content;
fetch(url, {method, headers: {'X-CSRF-Token': token, Accept: 'application/json'}, credentials: 'same-origin'})
  .then(async (r) => done({status: r.status, body: await r.json()}))
  .catch((e) => done({status: 0, body: String(e)}));
"""


@pytest.fixture(scope="module")
def public(tmp_path_factory, weights_dir):
    from simsearch.config import Settings
    from simsearch.ingest import Ingester, files_from_folder
    from simsearch.web import create_app, shutdown

    base = tmp_path_factory.mktemp("public")
    home = base / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                          weights_path=weights_dir))
    settings = settings.replace(api_keys=(KEY,), public_search=True, public_search_per_minute=20)
    app = create_app(settings)
    files, ignored = files_from_folder(copy_subset(base / "art", PER_CLASS), labels="folders")
    report = Ingester(app.extensions["simsearch"], spaces=["efficientnet_lite0"], batch_size=8).run(
        "art", files, source=str(base / "art"), ignored=ignored)
    assert report.added == 2 * PER_CLASS
    server = LiveServer(app)
    yield server
    server.stop()
    shutdown(app)


def _expected_401s(driver) -> None:
    """Chromium logs each refused request as a console error: these were expected."""
    logged = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert all("401" in e["message"] for e in logged), logged


def test_anonymous_visitor_searches_by_upload_but_cannot_change_anything(public, browser):
    browser.delete_all_cookies()
    browser.get(public.url + "/c/art/search")
    assert by_testid(browser, "sign-in").is_displayed()  # anonymous
    assert "Search is open to everyone" in by_testid(browser, "public-note").text
    query = dataset_files(CATS_DOGS / "dogs", 1, start=PER_CLASS + 20)[0]
    by_testid(browser, "query-file").send_keys(str(query))
    wait(browser, lambda d: len(by_testid(d, "result", many=True)) >= 10, message="search results for a visitor")
    labels = [r.get_attribute("data-label") for r in by_testid(browser, "result", many=True)[:5]]
    assert labels[0] == "dogs" and labels.count("dogs") >= 3, labels  # real results (8 dogs among 16 images)
    assert f"most similar to {query.name}" in browser.find_element("id", "search-status").text
    shot(browser, "20-public-search-anonymous")
    victim = by_testid(browser, "result", many=True)[0].get_attribute("data-id")

    # deleting an image from the same page, with the page's CSRF token: 401, the image stays
    out = browser.execute_async_script(FETCH, "DELETE", f"/api/images/{victim}")
    assert out["status"] == 401 and out["body"]["error"]["code"] == "unauthorized", out
    assert "log in with an API key" in out["body"]["error"]["message"]
    keyed = urllib.request.Request(f"{public.url}/api/images/{victim}", headers={"X-API-Key": KEY})
    with urllib.request.urlopen(keyed, timeout=30) as resp:
        assert json.loads(resp.read())["id"] == int(victim)

    # every other page of a private server sends the visitor to the sign-in page
    browser.get(public.url + "/")
    wait(browser, lambda d: "/login?next=/" in d.current_url, message="sent to sign in")
    assert by_testid(browser, "login-form").is_displayed()
    shot(browser, "21-public-home-needs-sign-in")
    _expected_401s(browser)

    # signed in with the key, the same delete works
    browser.get(public.url + "/login?next=/c/art/search")
    browser.find_element("id", "api-key").send_keys(KEY)
    by_testid(browser, "login-form").submit()
    wait(browser, lambda d: d.current_url.endswith("/c/art/search"), message="signed in")
    out = browser.execute_async_script(FETCH, "DELETE", f"/api/images/{victim}")
    assert out["status"] == 200 and out["body"] == {"deleted": int(victim)}, out
    shot(browser, "22-public-signed-in")
    browser.delete_all_cookies()
