"""``simsearch jobs JOB_ID --cancel`` and ``--retry`` (the jobs page's buttons, from the command line):
one line each, one-line errors naming the cause, ``--json`` answers."""

from __future__ import annotations

import json

import redis
from rq import Queue

from simsearch.config import Settings
from simsearch.context import AppContext
from simsearch.ops.analysis_tasks import AnalysisTask
from simsearch.store import lifecycle, repo
from simsearch.store.lifecycle import JobKind
from tests.helpers.cli import SPACE, env, imported, run  # noqa: F401 (fixtures)
from tests.helpers.jobs import REDIS_URL, rq_queue  # noqa: F401 (fixture)


def _open(env):
    return AppContext.open(Settings.from_env(home=env["SIMSEARCH_HOME"], database_url=env["SIMSEARCH_DATABASE_URL"]))


def _create(env, collection: str, **fields) -> int:
    app = _open(env)
    try:
        with app.db.session() as s:
            coll = repo.get_or_create_collection(s, collection).id
        return lifecycle.create(app.db, collection_id=coll, **fields)
    finally:
        app.close()


def test_cancel_ends_a_queued_job_and_says_why_when_it_cannot(run, env, imported):
    job = _create(env, "ext", kind=JobKind.INGEST, source="photos", total=3)
    assert run("jobs", job, "--cancel").output.strip() == f"cancelled job {job}"
    shown = json.loads(run("jobs", job, "--json").output)
    assert shown["status"] == "failed" and shown["cancelled"] is True
    again = run("jobs", "--cancel", job, code=1).output  # either order
    assert again.strip() == f"error: job {job} has ended (failed): there is nothing to cancel"
    assert run("jobs", 424242, "--cancel", code=2).output.strip() == "error: no job with id 424242"
    index = _create(env, "ext", kind=JobKind.INDEX, source="index rebuild: x", running=True)
    assert "is an index rebuild, which cannot be cancelled" in run("jobs", index, "--cancel", code=1).output
    other = _create(env, "ext", kind=JobKind.INGEST, source="photos", total=3)
    assert json.loads(run("jobs", other, "--cancel", "--json").output) == {"job_id": other, "status": "failed",
                                                                         "cancelled": [other]}
    assert "--cancel needs a JOB_ID" in run("jobs", "--cancel", code=2).output
    assert "cannot be given together" in run("jobs", other, "--cancel", "--retry", code=2).output


def test_cancel_names_the_shards_it_cancelled_too(run, env, imported):
    parent = _create(env, "ext", kind=JobKind.INGEST, source="x", total=4, params={"shards": 2, "shard_size": 2})
    shards = [_create(env, "ext", kind=JobKind.SHARD, source="x", parent_id=parent, total=2,
                      params={"start": 2 * i, "stop": 2 * i + 2, "shard": i + 1, "shards": 2}) for i in range(2)]
    out = run("jobs", parent, "--cancel").output.strip()
    assert out == f"cancelled job {parent} and 2 shards (#{shards[0]}, #{shards[1]})"


def test_retry_refused_gives_the_reason(run, env, imported):
    cli_run = _create(env, "ext", kind=JobKind.INGEST, source="photos", owner="cli:host:1:x")
    app = _open(env)
    try:
        lifecycle.interrupt(app.db, cli_run, "interrupted")
    finally:
        app.close()
    out = run("jobs", cli_run, "--retry", code=1).output.strip()
    assert out == (f"error: job {cli_run} was a `simsearch ingest` command: run the same command again, it skips "
                   "what was stored")
    running = _create(env, "ext", kind=JobKind.TUNE, source="tuning of ext", running=True)
    out = run("jobs", running, "--retry", code=1).output.strip()
    assert out.startswith(f"error: job {running} is running;") and out.endswith("cancel it first")
    assert run("jobs", 424242, "--retry", code=2).output.strip() == "error: no job with id 424242"


def test_retry_without_a_queue_runs_the_job_here_until_it_ends(run, env, imported):
    task = AnalysisTask("clusters", "ext", {"backbone": SPACE, "k": 2, "representatives": 4})
    old = _create(env, "ext", kind="clusters", params=task.to_json(), source=task.describe(), spaces=task.spaces)
    app = _open(env)
    try:
        lifecycle.fail(app.db, old, "the clusters computation failed: for the test")
    finally:
        app.close()
    done = json.loads(run("jobs", old, "--retry", "--json", "--interval", "0.1").output)
    assert done["id"] != old and done["kind"] == "clusters" and done["status"] == "done", done
    assert done["params"] == task.to_json()
    shown = run("jobs", old, "--retry", "--interval", "0.1")
    assert f"job {old} started again as job " in shown.output
    again = int(shown.output.split("started again as job ")[1].split(";")[0])
    summary = [line for line in shown.output.splitlines() if line.startswith(f"#{again}  ")]
    assert again != old and summary and "  clusters  " in summary[-1] and "  done  " in summary[-1], shown.output


def test_retry_with_a_queue_hands_the_job_to_the_workers(run, env, imported, rq_queue):
    task = AnalysisTask("clusters", "ext", {"backbone": SPACE, "k": 2, "representatives": 4})
    old = _create(env, "ext", kind="clusters", params=task.to_json(), source=task.describe(), spaces=task.spaces)
    app = _open(env)
    try:
        lifecycle.fail(app.db, old, "the clusters computation failed: for the test")
    finally:
        app.close()
    queued = {"SIMSEARCH_REDIS_URL": REDIS_URL, "SIMSEARCH_QUEUE": rq_queue}
    answer = json.loads(run("jobs", old, "--retry", "--json", extra_env=queued).output)
    assert answer["retry_of"] == old and answer["job_id"] != old and answer["status"] == "queued", answer
    assert json.loads(run("jobs", answer["job_id"], "--json").output)["status"] == "queued"  # no worker ran it here
    assert len(Queue(rq_queue, connection=redis.Redis.from_url(REDIS_URL))) == 1
    run("jobs", answer["job_id"], "--cancel", extra_env=queued)
    out = run("jobs", answer["job_id"], "--retry", extra_env=queued).output.strip()
    assert out.startswith(f"job {answer['job_id']} started again as job ") and out.endswith(" -f`"), out
