"""Is a worker alive here? ``simsearch worker --check``, a container's health check.

A worker is alive when Redis answers, RQ lists it (its key expires when its heartbeats stop), it
was started on this host (a container's host name is its own), and its process still runs (the
check runs in the worker's container, so the pid is in the same namespace).
"""

from __future__ import annotations

import os
import socket

from simsearch.errors import WorkerDown

TIMEOUT = 3.0  # seconds for Redis to answer: a health check must not hang


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def local_workers(redis_url: str, hostname: str | None = None) -> list[dict]:
    """The live RQ workers of this host: ``[{"name", "pid", "state", "queues"}]``. Raises
    :class:`WorkerDown` when Redis does not answer."""
    from redis import Redis
    from redis.exceptions import RedisError
    from rq import Worker

    host = hostname or socket.gethostname()
    try:
        conn = Redis.from_url(redis_url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
        workers = Worker.all(connection=conn)
    except (RedisError, OSError) as exc:
        raise WorkerDown(f"Redis does not answer at the SIMSEARCH_REDIS_URL ({type(exc).__name__})") from None
    out = []
    for w in workers:
        if w.hostname == host and _pid_alive(w.pid):
            state = w.get_state()
            out.append({"name": w.name, "pid": w.pid, "state": str(getattr(state, "value", state)),
                        "queues": w.queue_names()})
    return out


def check(redis_url: str, hostname: str | None = None) -> str:
    """A line naming the live workers of this host, or :class:`WorkerDown`."""
    alive = local_workers(redis_url, hostname)
    if not alive:
        raise WorkerDown(f"no live simsearch worker on {hostname or socket.gethostname()} is registered with Redis")
    return "; ".join(f"{w['name']} (pid {w['pid']}, {w['state']}, queues {','.join(w['queues'])})" for w in alive)
