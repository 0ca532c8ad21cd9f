"""The Jobs page in headless Chromium: two real ingests held mid-way (their last file is a named
pipe the test feeds later, tests/helpers/held.py) are listed running with their progress; one is
cancelled from the page, the other goes on to the end once fed; the cancelled one's own page says
so, and why it cannot be retried. The page fits a 1280-px window.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import pytest

from tests.conftest import CATS_DOGS, dataset_files, upgraded
from tests.helpers.browser import LiveServer, _no_js_errors, browser, by_testid, shot, wait  # noqa: F401 (fixtures)
from tests.helpers.held import feed, held_ingest, release
from tests.helpers.job_rows import failed_clusters_job

pytestmark = [pytest.mark.browser, pytest.mark.model]

COLLECTION = "held"


@pytest.fixture(scope="module")
def live(tmp_path_factory, weights_dir):
    from simsearch.config import Settings
    from simsearch.web import create_app, shutdown

    base = tmp_path_factory.mktemp("browser-jobs")
    home = base / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                          weights_path=weights_dir)).replace(job_threads=2)  # both run at once
    app = create_app(settings)
    server = LiveServer(app)
    server.app, server.ctx, server.runner, server.base = app, app.extensions["simsearch"], app.extensions["simsearch_jobs"], base
    yield server
    server.stop()
    shutdown(app)


def _row(driver, job_id: int):
    rows = [r for r in by_testid(driver, "job-row", many=True) if r.get_attribute("data-id") == str(job_id)]
    return rows[0] if rows else None


def _status(driver, job_id: int) -> str | None:
    row = _row(driver, job_id)
    return row.get_attribute("data-status") if row is not None else None


def _fits_1280(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth "
                                 "&& document.querySelector('main').scrollWidth <= document.querySelector('main').clientWidth")


def test_jobs_page_shows_a_running_ingest_and_cancels_another(live, browser):
    from selenium.webdriver.common.by import By

    cats, dogs = dataset_files(CATS_DOGS / "cats", 5), dataset_files(CATS_DOGS / "dogs", 5)
    pipes = [live.base / "cat-last.jpg", live.base / "dog-last.jpg"]
    kept = held_ingest(live.ctx, live.runner, COLLECTION, cats[:4], pipes[0])
    stopped = held_ingest(live.ctx, live.runner, COLLECTION, dogs[:4], pipes[1])
    fed = [False, False]
    try:
        browser.set_window_size(1280, 900)
        browser.get(f"{live.url}/")
        by_testid(browser, "nav-jobs").click()
        wait(browser, lambda d: d.current_url.endswith("/jobs"))
        # both store their first two batches, then wait on their pipe: running, 4 of 5 files
        for job in (kept, stopped):
            wait(browser, lambda d: _status(d, job) == "running"
                 and "4 of 5 files" in _row(d, job).find_element(By.CSS_SELECTOR, '[data-testid="job-row-count"]').text,
                 timeout=180, message=f"job {job} is not shown running with its progress")
        row = _row(browser, kept)
        assert row.find_element(By.CSS_SELECTOR, '[data-testid="job-row-title"]').text.startswith("Adding images")
        bar = row.find_element(By.CSS_SELECTOR, '[data-testid="job-row-progress"]')
        assert float(bar.get_attribute("value")) == pytest.approx(0.8)
        assert "refreshing while jobs run" in by_testid(browser, "jobs-refresh").text
        assert _fits_1280(browser)
        shot(browser, "jobs-running")

        _row(browser, stopped).find_element(By.CSS_SELECTOR, '[data-testid="job-cancel"]').click()
        wait(browser, lambda d: _status(d, stopped) == "cancelled", timeout=30, message="the cancel is not shown")
        assert _status(browser, kept) == "running"  # the other one goes on
        assert not _row(browser, stopped).find_elements(By.CSS_SELECTOR, '[data-testid="job-cancel"]')
        assert "cancelled by a user" in _row(browser, stopped).text
        # it is stopping (waiting on its last file): no retry before it has
        assert "still stopping" in _row(browser, stopped).find_element(
            By.CSS_SELECTOR, '[data-testid="job-retry-refused"]').get_attribute("title")
        shot(browser, "jobs-one-cancelled")

        feed(pipes[1], dogs[4])  # the cancelled ingest reads its last file and stops before storing it
        fed[1] = True
        feed(pipes[0], cats[4])
        fed[0] = True
        wait(browser, lambda d: _status(d, kept) == "done", timeout=180, message="the running ingest did not finish")
        assert _status(browser, stopped) == "cancelled"
        assert "5 of 5 files" in _row(browser, kept).text and "4 of 5 files" in _row(browser, stopped).text
        wait(browser, lambda d: "stopped after 4 of 5 files" in _row(d, stopped).text, timeout=30)
        assert _fits_1280(browser)
        shot(browser, "jobs-done-and-cancelled")
    finally:
        for pipe, image, done in zip(pipes, (cats[4], dogs[4]), fed):
            if not done:
                release(pipe, image)

    # the cancelled job's own page: its status, counters, and why a retry cannot start it again
    _row(browser, stopped).find_element(By.CSS_SELECTOR, '[data-testid="job-link"]').click()
    wait(browser, lambda d: by_testid(d, "job-detail").get_attribute("data-status") == "cancelled", timeout=30)
    assert by_testid(browser, "job-title").text.startswith("Adding images")
    facts = by_testid(browser, "job-facts").text
    assert "Added\n4" in facts and COLLECTION in facts
    # its staged files were removed when it ended: no Retry button, but what to do instead
    assert not by_testid(browser, "job-retry", many=True)
    assert "Add images page" in by_testid(browser, "job-retry-refused").text
    assert _fits_1280(browser)
    shot(browser, "job-cancelled-detail")
    with live.ctx.db.session() as s:
        from simsearch.store.models import Image

        assert s.query(Image).count() == 9  # 5 cats, 4 dogs: the cancelled job's last file was not stored


def test_pages_that_start_jobs_link_to_the_jobs_page(live, browser):
    for page in ("ingest", "compare", "spaces", "clusters", "map", "duplicates"):
        browser.get(f"{live.url}/c/{COLLECTION}/{page}")
        link = by_testid(browser, "jobs-page-link")
        assert link.get_attribute("href").endswith(f"/jobs?collection={COLLECTION}"), page
    browser.get(f"{live.url}/jobs?collection={COLLECTION}")
    wait(browser, lambda d: len(by_testid(d, "job-row", many=True)) >= 2)
    assert by_testid(browser, "jobs-collection").get_attribute("value") == COLLECTION
    browser.get(f"{live.url}/jobs/987654")
    assert "no job with id 987654" in browser.page_source
    logged = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # the console logs the 404
    assert all("/jobs/987654" in e["message"] and "404" in e["message"] for e in logged), logged


def test_retry_from_a_jobs_page_starts_the_job_again(live, browser):
    failed = failed_clusters_job(live.app, COLLECTION)  # (the first test's ingests made the collection)
    browser.get(f"{live.url}/jobs/{failed}")
    wait(browser, lambda d: by_testid(d, "job-detail").get_attribute("data-status") == "failed", timeout=30)
    assert by_testid(browser, "job-title").text == "Clustering in efficientnet_lite0"
    by_testid(browser, "job-retry").click()
    # a new job with the same parameters: its page opens and follows it to the end
    wait(browser, lambda d: d.current_url.rstrip("/").split("/")[-1] not in (str(failed), "jobs"), timeout=30)
    wait(browser, lambda d: by_testid(d, "job-detail").get_attribute("data-status") == "done", timeout=180,
         message="the retried clustering did not finish")
    assert by_testid(browser, "job-result").get_attribute("href").endswith(f"/c/{COLLECTION}/clusters")
    shot(browser, "job-retried")


def test_the_jobs_page_stores_a_collection_s_local_features_as_a_sharded_job(live, browser):
    from selenium.webdriver.common.by import By

    from simsearch.ingest import Ingester, SourceFile

    files = [SourceFile(name=str(p.resolve()), path=p.resolve(), label=p.parent.name)  # (its original's path)
             for p in dataset_files(CATS_DOGS / "cats", 3, start=10) + dataset_files(CATS_DOGS / "dogs", 3, start=10)]
    Ingester(live.ctx, spaces=["efficientnet_lite0"], batch_size=8).run("feat", files, source="test")
    browser.get(f"{live.url}/jobs")
    assert not by_testid(browser, "jobs-features").is_displayed()  # no collection chosen
    browser.get(f"{live.url}/jobs?collection=feat")
    by_testid(browser, "jobs-features").click()
    rows = lambda d: [r for r in by_testid(d, "job-row", many=True) if r.get_attribute("data-kind") == "features"]  # noqa: E731
    wait(browser, lambda d: rows(d) and rows(d)[0].get_attribute("data-status") == "done", timeout=120,
         message="the local features job is not shown done")
    row = rows(browser)[0]
    assert row.find_element(By.CSS_SELECTOR, '[data-testid="job-row-title"]').text == "Storing local features (SIFT)"
    assert "6 of 6 images" in row.find_element(By.CSS_SELECTOR, '[data-testid="job-row-count"]').text
    by_testid(browser, "jobs-features").click()  # nothing lacks them any more: said, nothing started
    wait(browser, lambda d: by_testid(d, "jobs-error").is_displayed(), timeout=30)
    assert "already has its local features stored" in by_testid(browser, "jobs-error").text
    assert len(rows(browser)) == 1
    logged = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # the console logs the 409
    assert all("/features" in e["message"] and "409" in e["message"] for e in logged), logged
    shot(browser, "jobs-local-features")
