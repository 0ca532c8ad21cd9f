"""The clusters page shows the silhouette curve of the automatic sweep, one point per k, and a
click on a point clusters at that k (headless Chromium, the live app of tests/test_browser.py)."""

from __future__ import annotations

import pytest

from tests.helpers.browser import COLLECTION, PER_CLASS, by_testid, wait

pytestmark = [pytest.mark.browser, pytest.mark.model]


def test_the_curve_has_a_point_per_k_and_a_click_picks_that_k(live, browser):
    browser.get(live.url + f"/c/{COLLECTION}/clusters?k=auto")
    wait(browser, lambda d: len(by_testid(d, "cluster-row", many=True)) >= 2, timeout=300, message="cluster rows")
    sweep = live.get_json(f"/api/collections/{COLLECTION}/clusters?k=auto")["silhouette"]
    chart = by_testid(browser, "silhouette-chart")
    points = chart.find_elements("css selector", '.series[data-name="silhouette"] circle[data-k]')
    assert [int(p.get_attribute("data-k")) for p in points] == sweep["ks"]
    assert f"k = {sweep['ks'][0]}..{sweep['ks'][-1]}" in browser.find_element("css selector", "#silhouette-note").text
    assert by_testid(browser, "pick-k-hint").is_displayed()

    pick = next(k for k in sweep["ks"] if k != sweep["best_k"] and k <= PER_CLASS)
    next(p for p in points if int(p.get_attribute("data-k")) == pick).click()
    wait(browser, lambda d: len(by_testid(d, "cluster-row", many=True)) == pick, timeout=300, message=f"k={pick}")
    assert f"k={pick}" in browser.current_url
    assert browser.find_element("css selector", 'input[name=kmode][value=fixed]').is_selected()
    assert browser.find_element("css selector", "#clusters-k").get_attribute("value") == str(pick)
