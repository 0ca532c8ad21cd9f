"""The RQ worker loop: ``simsearch worker`` consumes the queue's jobs (:mod:`simsearch.jobs.rq`)
and, in every maintenance pass, makes the jobs table and the queue agree
(:mod:`simsearch.jobs.reconcile`)."""

from __future__ import annotations

import ctypes
import os
import signal

from simsearch.jobs.reconcile import reconcile_quietly
from simsearch.jobs.rq import job_context, redis_connection, use_worker_settings

MAINTENANCE_LOCK_SECONDS = 30
HEARTBEAT_GRACE = 10  # seconds past a missed heartbeat before a busy worker's job counts as abandoned


def die_with_parent(parent_pid: int | None) -> None:
    """Linux: have this (forked) process SIGKILLed when its parent dies; exit now if it already
    has. Elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def worker_class(simple: bool = False):
    """RQ's Worker (a forked work horse per job) or SimpleWorker (jobs in the worker process), with
    simsearch's recovery: a job is abandoned :data:`HEARTBEAT_GRACE` seconds after its worker's last
    heartbeat (RQ waits 60), and every maintenance pass (each ``worker_heartbeat`` seconds while
    idle) also reconciles the database with the queue (:func:`simsearch.jobs.reconcile.reconcile`)."""
    from rq import SimpleWorker, Worker  # the queue's libraries load with the worker only
    from rq.exceptions import StopRequested

    base = SimpleWorker if simple else Worker

    class SimsearchWorker(base):
        def main_work_horse(self, job, queue):
            # A horse outliving its worker would run its job on, unseen, while RQ (no heartbeats)
            # gives the job to another worker: two runs of one job. It dies with its worker instead.
            die_with_parent(self.pid)
            return super().main_work_horse(job, queue)

        def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
            return max(1, int(super().get_heartbeat_ttl(job, working_time)) - 60 + HEARTBEAT_GRACE)

        def run_maintenance_tasks(self):
            # RQ's cleaning lock lives 15 minutes: a worker killed while cleaning would stop the
            # recovery of abandoned jobs for that long. Cleaning takes well under a second.
            for queue in self.queues:
                if self.connection.ttl(queue.registry_cleaning_key) > MAINTENANCE_LOCK_SECONDS:
                    self.connection.expire(queue.registry_cleaning_key, MAINTENANCE_LOCK_SECONDS)
            super().run_maintenance_tasks()
            asked = self._shutdown_requested_date
            reconcile_quietly(job_context(None), self.connection, [q.name for q in self.queues])
            if self._shutdown_requested_date is not asked:
                # SIGTERM while idle: RQ raises StopRequested from its signal handler wherever the
                # worker is; the reconcile's error handling (a failed pass is logged, never fatal)
                # would swallow it and the worker would listen on. Stop as asked.
                raise StopRequested()

    SimsearchWorker.__name__ = SimsearchWorker.__qualname__ = f"Simsearch{base.__name__}"
    return SimsearchWorker


def run_worker(redis_url: str, queues: list[str], *, burst: bool = False, simple: bool = False,
               name: str | None = None, logging_level: str = "INFO", settings=None) -> bool:
    """Consume jobs. ``simple``: run jobs in this process (models stay loaded between jobs)
    instead of a forked work horse per job (isolates crashes; loads the model for each job).
    ``settings``: for jobs that do not carry their own (and the heartbeat interval)."""
    use_worker_settings(settings)
    heartbeat = settings.worker_heartbeat if settings is not None else 10
    conn = redis_connection(redis_url, worker=True)
    worker = worker_class(simple)(queues, connection=conn, name=name, job_monitoring_interval=heartbeat,
                                  maintenance_interval=heartbeat, worker_ttl=heartbeat + 20)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return worker.work(burst=burst, logging_level=logging_level)
