"""The worker loop's maintenance pass (:mod:`simsearch.jobs.worker_loop`): a SIGTERM that arrives
while it reconciles the jobs stops the worker, even though the reconcile never raises."""

from __future__ import annotations

import signal

import pytest

from simsearch.jobs import worker_loop
from tests.helpers.jobs import REDIS_URL, rq_queue  # noqa: F401 (fixture)


def test_a_sigterm_during_the_maintenance_reconcile_stops_the_idle_worker(rq_queue, monkeypatch):  # noqa: F811
    redis = pytest.importorskip("redis")
    from rq.exceptions import StopRequested

    worker = worker_loop.worker_class(simple=True)([rq_queue], connection=redis.Redis.from_url(REDIS_URL))
    swallowed = []

    def reconcile_that_gets_the_signal(ctx, connection, queue_names):
        try:  # as the reconcile's own error handling does with any exception (a pass never raises)
            worker.request_stop(signal.SIGTERM, None)  # RQ's SIGTERM handler, idle: raises StopRequested
        except Exception as exc:  # noqa: BLE001
            swallowed.append(type(exc).__name__)
        return None

    monkeypatch.setattr(worker_loop, "reconcile_quietly", reconcile_that_gets_the_signal)
    monkeypatch.setattr(worker_loop, "job_context", lambda settings: None)  # (the reconcile above needs none)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(StopRequested):
            worker.run_maintenance_tasks()
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    assert swallowed == ["StopRequested"]
    monkeypatch.setattr(worker_loop, "reconcile_quietly", lambda ctx, connection, queue_names: None)
    worker.run_maintenance_tasks()  # a pass that gets no signal goes on
