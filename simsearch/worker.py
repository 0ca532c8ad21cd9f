"""RQ entry points under the import path that earlier versions enqueued (``simsearch.worker``), so
jobs already waiting in Redis still run after an upgrade. The code is :mod:`simsearch.jobs.rq`."""

from simsearch.jobs.rq import on_job_failure, run_ingest_job

__all__ = ["on_job_failure", "run_ingest_job"]
