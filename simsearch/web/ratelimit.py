"""A per-address rate limit for anonymous requests (searches by upload on a public server).

A token bucket per client address: ``per_minute`` tokens, refilled continuously (one every
``60 / per_minute`` seconds), so a visitor may send a burst of ``per_minute`` searches and then one
every few seconds. A request finding the bucket empty is refused with
:class:`~simsearch.errors.TooManyRequests` (429, ``Retry-After``: the seconds until a token is back).

The buckets live in the server process: gunicorn's N workers each allow ``per_minute``, so the
effective limit is up to N times higher. Behind a reverse proxy every visitor has the proxy's
address unless ``SIMSEARCH_PROXY_HOPS`` says how many proxies' ``X-Forwarded-For`` to trust.
"""

from __future__ import annotations

import math
import threading
import time

from simsearch.errors import TooManyRequests

MAX_ADDRESSES = 10_000  # buckets kept; full (idle) ones are dropped first when there are more


class RateLimiter:
    def __init__(self, per_minute: int, *, clock=time.monotonic):
        self.per_minute = per_minute
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, address: str, what: str = "requests") -> None:
        """Take one token for ``address``; raise :class:`TooManyRequests` when there is none."""
        if self.per_minute <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(address, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[address] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise TooManyRequests(
                    f"too many {what} from this address: at most {self.per_minute} a minute without an API key; "
                    f"try again in {wait} s", retry_after=wait, details={"per_minute": self.per_minute})
            self._buckets[address] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_ADDRESSES:
                self._prune(now)

    def _prune(self, now: float) -> None:
        full = [a for a, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.per_minute]
        for a in full:
            del self._buckets[a]
        while len(self._buckets) > MAX_ADDRESSES:  # all busy: drop the oldest entries
            del self._buckets[next(iter(self._buckets))]
