"""Polling under a deadline: the way a test waits for something that happens on another thread or
process (never ``time.sleep`` and then assert)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30, interval: float = 0.1,
               message: str | Callable[[], str] = "") -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and return
    that; fail (AssertionError naming ``message`` (or what it returns, if callable) and the last
    value) when ``timeout`` seconds pass first. The predicate is always called once at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"not within {timeout:g} s: {what or predicate!r} (last: {value!r})")
        time.sleep(interval)
