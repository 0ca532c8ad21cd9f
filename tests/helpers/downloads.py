"""Files a page downloads in headless Chromium: where they go, and waiting for one."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.waiting import wait_until


def allow_downloads(browser, folder: Path) -> Path:
    """Let the page download into ``folder`` (created); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
    return folder


def downloaded(folder: Path, name: str, timeout: float = 30) -> str:
    """The text of ``folder/name`` once it is there (fails naming what is there after ``timeout`` s)."""
    path = folder / name
    wait_until(lambda: path.exists() and path.stat().st_size, timeout, 0.1,
               lambda: f"{name} downloaded (found {[p.name for p in folder.iterdir()]})")
    return path.read_text()
