"""Every page fits a 1280-px window (issue 21, item 9): no sideways scrolling, nothing sticking out
or cut by a box, selects that show their whole text, file pickers inside their panel; the map says
so when a zoom shows no image; spaces shown in plain words with the grammar's names as tooltips.

Each page is loaded at 1280 x 900 CSS pixels after its script has drawn its content (search
results, clusters, the map, the comparison...), then checked by tests/helpers/layout.py.
Screenshots go to artifacts/screenshots/layout-*.png.
"""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import CATS_DOGS, dataset_files
from tests.helpers.browser import (  # noqa: F401 (fixtures)
    COLLECTION,
    PER_CLASS,
    SPACE,
    SPACE_MAX,
    _no_js_errors,
    browser,
    by_testid,
    live,
    map_ready,
    shot,
    visible,
    wait,
)
from tests.helpers.layout import WIDTH, layout_problems, reset_width, set_width

pytestmark = [pytest.mark.browser, pytest.mark.model]
C = f"/c/{COLLECTION}"


@pytest.fixture
def window(browser):
    set_width(browser)
    yield browser
    reset_width(browser)


def _count(testid, n=1):
    return lambda d: len(by_testid(d, testid, many=True)) >= n


def _search(d):
    query = dataset_files(CATS_DOGS / "dogs", 1, start=PER_CLASS + 5)[0]
    by_testid(d, "query-file").send_keys(str(query))
    wait(d, _count("result", 12), message="search results")


def _compare(d):
    d.find_element("css selector", "#compare-form button[type=submit]").click()
    wait(d, _count("per-label-row", 2), timeout=300, message="per-label table")
    wait(d, _count("compare-row", 2), message="metrics table")


def _idle(testid):
    return lambda d: not by_testid(d, testid).is_displayed()


PAGES = {  # page -> (path, what shows its content is drawn)
    "home": ("/", lambda d: wait(d, _count("collection-card"), message="collections")),
    "browse": (C, lambda d: wait(d, _count("tile", 2 * PER_CLASS), message="browse grid")),
    "search": (f"{C}/search", _search),
    "clusters": (f"{C}/clusters", lambda d: wait(d, _count("cluster-row", 2), timeout=300, message="cluster rows")),
    "map": (f"{C}/map", lambda d: wait(d, map_ready, timeout=300, message="map drawn")),
    "duplicates": (f"{C}/duplicates", lambda d: wait(d, lambda x: by_testid(x, "dups-status").text.strip()
                                                     and not by_testid(x, "analysis-progress").is_displayed(),
                                                     timeout=300, message="duplicates listed")),
    "compare": (f"{C}/compare", _compare),
    "spaces": (f"{C}/spaces", lambda d: wait(d, _count("space-row", 2), message="spaces table")),
    "add-images": (f"{C}/ingest", lambda d: wait(d, visible(d, "ingest-form"), message="form")),
    "add-images-new": ("/ingest", lambda d: wait(d, visible(d, "ingest-collection"), message="form")),
}


@pytest.mark.parametrize("page", list(PAGES))
def test_the_page_fits_a_1280_px_window(live, window, page):
    path, ready = PAGES[page]
    window.get(live.url + path)
    assert window.execute_script("return window.innerWidth") == WIDTH
    ready(window)
    shot(window, f"layout-{page}")
    assert layout_problems(window) == [], page
    assert layout_problems(window, "header") == [], page


def test_the_viewer_fits_a_1280_px_window(live, window):
    window.get(live.url + C)
    wait(window, _count("tile", 2 * PER_CLASS), message="browse grid")
    by_testid(window, "tile", many=True)[0].click()
    wait(window, visible(window, "viewer"), message="viewer open")
    wait(window, lambda d: d.execute_script("const i = document.querySelector('[data-testid=viewer-image]'); "
                                            "return i && i.complete && i.naturalWidth > 0"), message="image shown")
    shot(window, "layout-viewer")
    assert layout_problems(window, '[data-testid="viewer"]') == []


def test_the_api_docs_fit_a_1280_px_window(live, window):
    window.get(live.url + "/api/docs")
    wait(window, lambda d: d.find_elements("css selector", ".opblock"), message="operations listed")
    assert layout_problems(window, "#swagger-ui") == []


def test_an_empty_map_zoom_says_so(live, window):
    window.get(live.url + f"{C}/map")
    wait(window, map_ready, timeout=300, message="map drawn")
    hint = by_testid(window, "map-empty-hint")
    assert not hint.is_displayed()
    # zoom far into a corner of the canvas: the points fill its middle (fitted at 92 %)
    window.execute_script("window.simsearchMap.zoomAt(2, 2, 400)")
    wait(window, lambda d: hint.is_displayed(), timeout=30, message="the empty-view hint")
    assert "No images in this part of the map" in hint.text
    assert window.find_element("id", "map-status").text.endswith("images · EfficientNet-Lite0")  # the space in words
    shot(window, "layout-map-empty-zoom")
    hint.find_element("css selector", "button").click()  # back to the whole map
    wait(window, lambda d: not hint.is_displayed(), timeout=30, message="the hint gone with the whole map")
    assert window.execute_script("return window.simsearchMap.emptyView") is False


def test_spaces_read_as_words_in_the_pickers_and_tables(live, window):
    from selenium.webdriver.support.select import Select

    window.get(live.url + f"{C}/search")
    picker = Select(by_testid(window, "search-backbone"))
    texts = {o.get_attribute("value"): o.text for o in picker.options}
    assert texts == {SPACE: f"EfficientNet-Lite0 ({2 * PER_CLASS})", SPACE_MAX: f"EfficientNet-Lite0, max pooling ({2 * PER_CLASS})"}
    assert picker.first_selected_option.get_attribute("title").startswith(f"{SPACE}: Features of the EfficientNet-Lite0")
    picker.select_by_value(SPACE_MAX)
    assert "strongest response" in by_testid(window, "search-backbone-explanation").text

    window.get(live.url + f"{C}/spaces")
    wait(window, _count("space-row", 2), message="spaces table")
    titles = [t.text for t in by_testid(window, "space-title", many=True)]
    assert set(titles) == {"EfficientNet-Lite0", "EfficientNet-Lite0, max pooling"}
    assert all(e.text for e in by_testid(window, "space-explanation", many=True))
    # no tuning yet: the score cells are dashes, and the page says what a dash means
    dashes = window.find_elements("css selector", "td.unmeasured")
    assert dashes and all(d.get_attribute("title").startswith("not measured") for d in dashes)
    assert by_testid(window, "spaces-dash-note").is_displayed()
    heads = {th.text: th.get_attribute("title") for th in window.find_elements("css selector", "#spaces-table th.explained")}
    assert "10 nearest" in heads["Label precision (P@10)"] and heads["Neighbours kept"]
    for jargon in ("GeM", "nested cross-validation"):
        abbr = window.find_element("xpath", f"//abbr[normalize-space()='{jargon}']")
        assert len(abbr.get_attribute("title")) > 20


def _named(root, space: str, title: str) -> bool:
    """``root`` shows ``space`` by its readable ``title``, the internal name in the tooltip."""
    shown = root.find_elements("css selector", f'.space-title[data-space="{space}"]')
    return bool(shown) and shown[0].text == title and shown[0].get_attribute("title").startswith(f"{space}: ")


def test_status_lines_charts_and_neighbours_name_spaces_in_words(live, window):
    from simsearch.spaces import describe

    titles = {s: describe(s).title for s in (SPACE, SPACE_MAX)}
    assert titles == {SPACE: "EfficientNet-Lite0", SPACE_MAX: "EfficientNet-Lite0, max pooling"}
    for page, status, picker in (("search", "search-status", "search-backbone"),
                                 ("clusters", "clusters-status", "clusters-backbone"),
                                 ("duplicates", "dups-status", "dups-backbone")):
        path, ready = PAGES[page]
        window.get(live.url + path)
        ready(window)
        space = by_testid(window, picker).get_attribute("value")
        line = window.find_element("id", status)
        wait(window, lambda d: _named(line, space, titles[space]), message=f"the {page} status names the space in words")
        assert f"({titles[space]})" in line.text and f"({space})" not in line.text, (page, line.text)

    window.get(live.url + f"{C}/compare")
    _compare(window)
    for chart in ("compare-bars", "compare-curves"):
        # read in one script call, once both entries are drawn: a chart drawn again (more results, a
        # resize) replaces its elements between two WebDriver calls
        read = ("return Array.from(document.querySelectorAll(arguments[0])).map("
                "e => [e.querySelector('text').textContent, e.querySelector('title').textContent])")
        selector = f'[data-testid="{chart}"] svg .legend .legend-entry'
        wait(window, lambda d: {t for t, _ in d.execute_script(read, selector)} == set(titles.values()),
             message=f"the {chart} legend names both spaces in words")
        shown = dict(window.execute_script(read, selector))
        assert set(shown) == set(titles.values()), (chart, shown)
        assert {tip.split(":")[0] for tip in shown.values()} == set(titles), (chart, shown)  # the names in the tooltips
    wait(window, lambda d: len(by_testid(d, "neighbour-row", many=True)) == 2, timeout=300, message="neighbours per space")
    for row in by_testid(window, "neighbour-row", many=True):
        space = row.get_attribute("data-backbone")
        assert _named(row.find_element("css selector", "h3"), space, titles[space]), row.text
    captions = {f.get_attribute("data-backbone"): f.find_element("css selector", "figcaption strong")
                for f in by_testid(window, "compare-map", many=True)}
    assert {s: c.text for s, c in captions.items()} == titles
    assert all(c.get_attribute("title").startswith(f"{s}: ") for s, c in captions.items())
    csv_text = window.execute_script("return window.simsearchCompare.csv()")
    head, *rows = [r[:2] for r in csv.reader(io.StringIO(csv_text))]
    assert head == ["space", "backbone"] and sorted(rows) == sorted([t, s] for s, t in titles.items())  # both names


def _import_copy(live, space: str, name: str) -> None:
    """The collection's ``space`` vectors imported again as the space ``name`` (a third, fourth
    column), matched to the same images by their paths."""
    from simsearch.ops.vectors_io import export_stream, import_vectors

    _, chunks = export_stream(live.ctx, COLLECTION, space)
    npz = b"".join(chunks)
    report = import_vectors(live.ctx, io.BytesIO(npz), COLLECTION, name)
    assert report["images_matched"] == 2 * PER_CLASS and not report["images_created"], report


def test_compare_with_four_spaces_fits_a_1280_px_window(live, window):
    """The per-label table has a column per space: with four long names it still fits its panel
    (last in this module: it adds two spaces of imported vectors to the shared collection)."""
    _import_copy(live, SPACE, "efficientnet_lite0.w-abababab")
    _import_copy(live, SPACE_MAX, "vectors-imported-from-another-tool")
    window.get(live.url + f"{C}/compare")
    assert len(window.find_elements("css selector", "input[name=backbones]")) == 4
    _compare(window)
    wait(window, _count("compare-row", 4), timeout=300, message="four rows of metrics")
    heads = window.find_elements("css selector", '[data-testid="per-label-table"] thead th')
    assert sorted(h.text for h in heads[2:]) == ["EfficientNet-Lite0", "EfficientNet-Lite0, max pooling",
                                           "Imported: EfficientNet-Lite0 (other weights abababab)",
                                           "Imported: vectors-imported-from-another-tool"]
    shot(window, "layout-compare-four")
    assert layout_problems(window) == []


def test_show_all_offers_the_tuning_variants(live, window):
    """A space marked internal (a variant tune kept as a base) is hidden in the pickers until "show
    all" (after the four-space test: it marks one of the imported copies internal)."""
    from selenium.webdriver.support.select import Select

    from simsearch import provenance
    from simsearch.store import repo

    variant = "vectors-imported-from-another-tool"
    with live.ctx.db.session() as s:
        coll_id = repo.get_collection(s, COLLECTION).id
    fp = (provenance.recorded(live.ctx, coll_id, variant) or ({}, None))[0]
    provenance.record(live.ctx, coll_id, variant, fp, provenance.INTERNAL, replace=True)
    window.get(live.url + f"{C}/clusters")
    picker = by_testid(window, "clusters-backbone")
    offered = lambda: window.execute_script(  # noqa: E731 (the options a person can pick)
        "return [...arguments[0].options].filter((o) => !o.hidden).map((o) => o.value)", picker)
    option = picker.find_element("css selector", f'option[value="{variant}"]')
    assert variant not in offered() and SPACE in offered()
    box = by_testid(window, "clusters-backbone-show-all")
    box.click()
    assert variant in offered()
    Select(picker).select_by_value(variant)
    assert picker.get_attribute("title").startswith(f"{variant}: Vectors imported")
    box.click()  # hidden again: the picker goes back to the first space
    assert variant not in offered() and option.get_attribute("hidden") is not None
    assert Select(picker).first_selected_option.get_attribute("value") != variant
    assert layout_problems(window) == []
