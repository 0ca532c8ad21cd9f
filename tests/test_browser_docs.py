"""The API documentation page (/api/docs) in headless Chromium: Swagger UI renders every operation
from /api/openapi.json, with Markdown descriptions, under the page's CSP, loading nothing from any
other origin; "Try it out" calls the server. The server has API keys set, so this also shows that a
visitor without a key can read the documentation (the page and its files are open reads)."""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlsplit

import pytest

from tests.conftest import upgraded
from tests.helpers.browser import LiveServer, shot, wait

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory, weights_dir):
    """The app, with an API key configured and no collection, on a live server."""
    from simsearch.config import Settings
    from simsearch.web import create_app, shutdown

    home = tmp_path_factory.mktemp("docs") / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                          weights_path=weights_dir)).replace(api_keys=("docs-test-key",))
    app = create_app(settings)
    server = LiveServer(app)
    yield server
    server.stop()
    shutdown(app)


def _operations(server) -> list[tuple[str, str]]:
    with urllib.request.urlopen(server.url + "/api/openapi.json", timeout=60) as resp:
        spec = json.loads(resp.read())
    return sorted((method.upper(), path) for path, ops in spec["paths"].items() for method in ops)


def test_docs_page_renders_every_operation_from_this_origin_only(browser, docs_server):
    from selenium.webdriver.common.by import By

    expected = _operations(docs_server)
    browser.get(docs_server.url + "/api/docs")

    def rendered(d):
        found = d.execute_script(
            "return Array.from(document.querySelectorAll('.opblock-summary')).map(s => ["
            " s.querySelector('.opblock-summary-method').textContent.trim(),"
            " s.querySelector('.opblock-summary-path').getAttribute('data-path')])")
        return sorted(map(tuple, found)) if len(found) >= len(expected) else False

    assert wait(browser, rendered, message="Swagger UI did not render the operations") == expected
    # Markdown in descriptions is rendered (backticks become <code>), not shown literally
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".information-container .info .renderedMarkdown code"),
         message="the description's Markdown was not rendered")
    assert "`" not in browser.find_element(By.CSS_SELECTOR, ".information-container .info").text
    shot(browser, "api-docs")

    # "Try it out" on GET /api/health: the browser calls the server and shows its answer
    block = browser.find_element(By.CSS_SELECTOR, '.opblock-summary-path[data-path="/api/health"]')
    block.click()
    op = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock.is-open .try-out__btn")[:1] or False)[0]
    op.click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock.is-open .execute")[:1] or False)[0].click()
    status = wait(browser, lambda d: [e.text for e in d.find_elements(
        By.CSS_SELECTOR, ".opblock.is-open .live-responses-table tr.response .response-col_status") if e.text.strip()][:1] or False)
    assert status == ["200"]

    origin = urlsplit(docs_server.url)
    entries = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat(performance.getEntriesByType('navigation').map(e => e.name))")
    assert any(u.endswith("/api/docs/assets/swagger-ui-bundle.js") for u in entries), entries
    assert any(u.endswith("/api/openapi.json") for u in entries), entries
    assert any("/api/health" in u for u in entries), entries  # the "Try it out" request
    foreign = [u for u in entries if not u.startswith("data:")
               and (urlsplit(u).scheme, urlsplit(u).netloc) != (origin.scheme, origin.netloc)]
    assert not foreign, f"requests to other origins: {foreign}"
