"""``POST /api/jobs/<id>/cancel`` and ``POST /api/jobs/<id>/retry`` (the jobs page's buttons)."""

from __future__ import annotations

from simsearch.ops import job_actions
from simsearch.web import schemas as S
from simsearch.web.api.analysis import JOB_CAP
from simsearch.web.api.blueprint import bp
from simsearch.web.api.common import ctx, job_accepted, runner
from simsearch.web.contract import WRITE_SECURITY, errors, links


@bp.post("/jobs/<int:job_id>/cancel")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.JobCancelledOut, description="Cancelled: the job (and its unfinished shards) ended `failed`, "
                                          "with the message \"cancelled by a user\".", links=links.QUEUED_JOB)
@bp.doc(summary="Cancel a job", tags=["ingest"], security=WRITE_SECURITY,
        description="A queued job is never started; a running ingest stops before its next batch (what it stored is "
                    "kept); a running analysis or tuning finishes its current step and its result is not the job's. "
                    "409 when the job has ended, or is an index rebuild (those cannot be cancelled).",
        responses=errors(400, 401, 403, 404, 409))
def cancel_job(job_id: int, q):
    return job_actions.cancel(ctx(), job_id)


@bp.post("/jobs/<int:job_id>/retry")
@bp.input(S.NoQuery, location="query", arg_name="q")
@bp.output(S.JobRetried, status_code=202, description="Queued again: follow `status_url` (the same job, or a new one "
                                                      "with the same parameters).", links=links.QUEUED_JOB)
@bp.doc(summary="Retry a failed, cancelled or interrupted job", tags=["ingest"], security=WRITE_SECURITY,
        description="An analysis or a tuning starts again with the same parameters (a new job); an ingest whose files "
                    "are still staged is queued again (the same job: files already stored are skipped); an embedding "
                    "pass starts again over the images that still lack the vectors. 409 when the job is not failed, "
                    "cancelled or interrupted, or cannot be started again (the message says what to do instead: "
                    "a `simsearch ingest` command is run again, uploads deleted after the job are added again).",
        responses=errors(400, 401, 403, 404, 409, 429, 503, e429=JOB_CAP,
                         e503="The backbone's weights are unavailable, or the job queue is."))
def retry_job(job_id: int, q):
    return job_accepted(job_actions.retry(ctx(), runner(), job_id), S.JobRetried)
