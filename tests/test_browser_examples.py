"""A search with several examples from the search page, in headless Chromium: search by an uploaded
photo, mark a result "less like this" and another "more like this" (the chips show the examples),
move the threshold slider, remove a chip, open a shared URL of examples, clear them. Same live
app as tests/test_browser.py (12 cats and 12 dogs); screenshots in artifacts/screenshots/ (``5x-*.png``)."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import CATS_DOGS, dataset_files
from tests.helpers.browser import (  # noqa: F401 (fixtures)
    COLLECTION,
    PER_CLASS,
    _no_js_errors,
    browser,
    by_testid,
    live,
    shot,
    wait,
)

pytestmark = [pytest.mark.browser, pytest.mark.model]


def results(driver) -> list[dict]:
    """The result tiles as {id, label, percentile, title, score} (the score read from the badge's title)."""
    return driver.execute_script("""
        return [...document.querySelectorAll('[data-testid=result]')].map((t) => {
          const s = t.querySelector('.score');
          return {id: Number(t.dataset.id), label: t.dataset.label, percentile: s ? parseFloat(s.textContent) : null,
                  title: s ? s.title : ''};
        });""")


def chips(driver, kind: str) -> list[str]:
    """The chips of the examples: an image's id, or an uploaded file's name."""
    return [c.get_attribute("data-id") or c.text.rstrip("×").strip() for c in by_testid(driver, f"chip-{kind}", many=True)]


def score(r: dict) -> float:
    return float(re.search(r"(?:score|cosine similarity) (-?[0-9.]+)", r["title"]).group(1))


def status(driver) -> str:
    return driver.find_element("id", "search-status").text


def shown(driver) -> str:
    """The status line once a search has answered ("" while one is under way: "Searching for...")."""
    text = status(driver)
    return text if re.match(r"(\d+ most |No results)", text) else ""


def button_of(driver, image_id: int, testid: str):
    return driver.find_element("css selector", f'[data-testid=result][data-id="{image_id}"]').find_element(
        "xpath", f'./ancestor::div[contains(@class, "tile-wrap")]//button[@data-testid="{testid}"]')


def test_more_like_these_less_like_those_from_the_search_page(live, browser):
    query = dataset_files(CATS_DOGS / "cats", 1, start=PER_CLASS + 7)[0]  # not in the collection
    browser.get(live.url + f"/c/{COLLECTION}/search")
    assert by_testid(browser, "examples-panel").is_displayed() is False
    by_testid(browser, "query-file").send_keys(str(query))
    wait(browser, lambda d: len(results(d)) >= 20 and "most similar to" in shown(d), message="plain search results")
    plain = results(browser)
    dog = next(r for r in plain if r["label"] == "dogs")  # the best-ranked dog
    before = {r["id"]: score(r) for r in plain}

    # "less like this" on that dog: the uploaded photo becomes the first positive, the dog the negative
    button_of(browser, dog["id"], "less-like").click()
    wait(browser, lambda d: "least like" in shown(d), message="search with a negative example")
    assert chips(browser, "like") == [query.name] and chips(browser, "unlike") == [str(dog["id"])]
    dog_name = by_testid(browser, "chip-unlike").text.rstrip("×").strip()  # the file name of the image
    assert dog_name.startswith("dog.") and f"least like {dog_name}" in status(browser)
    after = results(browser)
    assert dog["id"] not in [r["id"] for r in after]
    assert all("examples' average" in r["title"] for r in after)
    # no score goes up, and the dogs more like the negative than like the photo are pushed down
    assert all(score(r) <= before[r["id"]] + 1e-3 for r in after)
    pushed = [r for r in after if "minus" in r["title"]]
    assert pushed and all(f"image {dog['id']}" in r["title"] for r in pushed)
    assert [r["label"] for r in pushed].count("dogs") >= len(pushed) / 2, pushed
    shot(browser, "50-examples-less-like")

    # "more like this" on the best cat: a second positive
    cat = next(r for r in after if r["label"] == "cats")
    button_of(browser, cat["id"], "more-like").click()
    wait(browser, lambda d: len(chips(d, "like")) == 2 and "like 2 examples" in shown(d), message="a second positive")
    assert cat["id"] not in [r["id"] for r in results(browser)]
    labels = [r["label"] for r in results(browser)[:10]]
    assert labels.count("cats") >= 8, labels

    # the threshold slider hides the weaker results (the server leaves them out)
    browser.execute_script("""const s = document.querySelector('[data-testid=search-threshold]');
        s.value = '60'; s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change'));""")
    wait(browser, lambda d: "below 60% hidden" in status(d) or "No results at or above 60%" in status(d),
         message="threshold applied")
    assert by_testid(browser, "threshold-value").text == "60%"
    kept = results(browser)
    assert len(kept) < len(after) and all(r["percentile"] >= 60 for r in kept)
    shot(browser, "51-examples-threshold")

    # removing the negative: still two positives, a search with examples
    by_testid(browser, "remove-unlike").click()
    wait(browser, lambda d: not chips(d, "unlike") and "least like" not in shown(d) and "like 2 examples" in shown(d),
         message="the negative removed")
    assert not by_testid(browser, "chips-unlike").find_element("xpath", "..").is_displayed()

    # clearing the examples goes back to the plain search by the uploaded photo (the threshold stays)
    by_testid(browser, "examples-clear").click()
    wait(browser, lambda d: f"most similar to {query.name}" in shown(d), message="back to the plain search")
    assert not by_testid(browser, "examples-panel").is_displayed()
    assert all(r["percentile"] >= 60 for r in results(browser))


def test_a_search_with_examples_by_its_url(live, browser):
    ids = {label: [r["id"] for r in live.get_json(f"/api/collections/{COLLECTION}/images?label={label}")["images"]]
           for label in ("cats", "dogs")}
    like, unlike = ids["dogs"][:2], ids["cats"][:1]
    browser.get(live.url + f"/c/{COLLECTION}/search?like={like[0]},{like[1]}&unlike={unlike[0]}&min_percentile=10")
    wait(browser, lambda d: results(d) and "least like image" in shown(d), message="search from the URL")
    assert chips(browser, "like") == [str(i) for i in like] and chips(browser, "unlike") == [str(unlike[0])]
    assert by_testid(browser, "threshold-value").text == "10%"
    got = results(browser)
    assert not {r["id"] for r in got} & set(like + unlike)
    assert [r["label"] for r in got[:8]].count("dogs") >= 7, got
    # the same search through the API gives the same order
    api = json.loads(browser.execute_script("""
        return fetch('/api/collections/' + arguments[0] + '/search/examples', {method: 'POST',
          headers: {'Content-Type': 'application/json', 'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
          body: JSON.stringify({like: arguments[1], unlike: arguments[2], k: 24, min_percentile: 10})}).then((r) => r.text());""",
        COLLECTION, like, unlike))
    assert [r["image_id"] for r in api["results"]] == [r["id"] for r in got]
    # without the negative and with one positive left: the plain search by that image
    by_testid(browser, "remove-unlike").click()
    wait(browser, lambda d: not chips(d, "unlike") and "like 2 examples" in shown(d), message="the negative removed")
    browser.find_elements("css selector", "[data-testid=remove-like]")[0].click()
    wait(browser, lambda d: re.search(rf"image_id={like[1]}\b", d.current_url) and "most similar to" in shown(d),
         message="back to the plain search by the remaining positive")
