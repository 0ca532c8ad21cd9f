"""One life for every job (simsearch.store.lifecycle): claim, heartbeat, progress, finish, fail,
lost; on SQLite and PostgreSQL, with an injected clock instead of sleeps. And a check over the
package that no other module writes a status by hand or spells the unfinished statuses itself."""

from __future__ import annotations

import ast
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import get_args

import pytest

from simsearch.store import lifecycle
from simsearch.store.lifecycle import LOST_AFTER_SECONDS, JobKind, JobStatus

PACKAGE = Path(__file__).resolve().parents[1] / "simsearch"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime = T0):
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def db(settings):
    from simsearch.store.db import Database

    database = Database.from_settings(settings)
    yield database
    database.dispose()


@pytest.fixture
def coll_id(db):
    from simsearch.store import repo

    with db.session() as s:
        return repo.get_or_create_collection(s, "lives").id


def row(db, run_id: int):
    from simsearch.store.models import IngestRun

    with db.session() as s:
        return s.get(IngestRun, run_id)


def new_job(db, coll_id: int, clock: Clock, kind: str = JobKind.TUNE, **fields) -> int:
    return lifecycle.create(db, kind=kind, collection_id=coll_id, source="a test", clock=clock, **fields)


def test_a_job_is_created_queued_and_claimed_once(db, coll_id):
    clock = Clock()
    run_id = new_job(db, coll_id, clock, params={"folds": 5})
    created = row(db, run_id)
    assert (created.status, created.kind, created.started_at, created.params) == ("queued", "tune", None, {"folds": 5})
    clock.advance(5)
    first = lifecycle.claim(db, run_id, kinds=(JobKind.TUNE,), message="starting", clock=clock)
    assert first.claimed and first.collection == "lives" and first.status == "running"
    second = lifecycle.claim(db, run_id, kinds=(JobKind.TUNE,), message="starting", clock=clock)
    assert not second.claimed and second.status == "running"
    claimed = row(db, run_id)
    assert claimed.status == "running" and claimed.message == "starting"
    assert lifecycle.aware(claimed.started_at) == lifecycle.aware(claimed.updated_at) == T0 + timedelta(seconds=5)
    # a job of another kind is not found at all (the caller answers 404)
    assert lifecycle.claim(db, run_id, kinds=(JobKind.INGEST,)).run is None
    assert lifecycle.claim(db, run_id + 100, kinds=(JobKind.TUNE,)).run is None


def test_an_ingest_left_running_is_claimed_again_and_counts_its_attempts(db, coll_id):
    run_id = new_job(db, coll_id, Clock(), kind=JobKind.INGEST)
    for _ in range(2):  # the second: its worker died and the queue started it again
        assert lifecycle.claim(db, run_id, kinds=(JobKind.INGEST,), runnable=lifecycle.UNFINISHED,
                               count_attempt=True).claimed
    assert row(db, run_id).attempts == 2
    assert lifecycle.finish(db, run_id)
    assert not lifecycle.claim(db, run_id, kinds=(JobKind.INGEST,), runnable=lifecycle.UNFINISHED).claimed


def test_a_heartbeat_keeps_a_running_job_alive_and_silence_makes_it_lost(db, coll_id):
    clock = Clock()
    run_id = new_job(db, coll_id, clock)
    assert lifecycle.active(db, kind=JobKind.TUNE, collection_id=coll_id, clock=clock) == (run_id, "queued")
    clock.advance(10 * LOST_AFTER_SECONDS)  # queued: waiting for a worker, never lost
    assert lifecycle.active(db, kind=JobKind.TUNE, collection_id=coll_id, clock=clock) == (run_id, "queued")
    assert lifecycle.claim(db, run_id, kinds=(JobKind.TUNE,), clock=clock).claimed
    for _ in range(3):  # each beat comes before the limit: alive well past it
        clock.advance(LOST_AFTER_SECONDS - 1)
        assert lifecycle.heartbeat(db, run_id, clock=clock)
        assert lifecycle.active(db, kind=JobKind.TUNE, collection_id=coll_id, clock=clock) == (run_id, "running")
    clock.advance(LOST_AFTER_SECONDS - 1)
    assert lifecycle.active(db, kind=JobKind.TUNE, collection_id=coll_id, clock=clock) == (run_id, "running")
    clock.advance(2)  # silent for longer than the limit: lost, and asking again starts a new job
    assert lifecycle.active(db, kind=JobKind.TUNE, collection_id=coll_id, clock=clock) is None
    job = row(db, run_id)
    assert lifecycle.is_lost(job.status, job.updated_at, job.created_at, now=clock())
    assert not lifecycle.is_lost(job.status, job.updated_at, job.created_at, now=clock() - timedelta(seconds=2))


def test_progress_is_written_and_the_heartbeat_thread_beats_until_it_stops(db, coll_id):
    clock = Clock()
    run_id = new_job(db, coll_id, clock)
    lifecycle.claim(db, run_id, kinds=(JobKind.TUNE,), clock=clock)
    clock.advance(60)
    lifecycle.progress_writer(db, run_id, clock=clock)("fitting fold 2", 2, 5)
    job = row(db, run_id)
    assert (job.message, job.processed, job.total) == ("fitting fold 2", 2, 5)
    assert lifecycle.aware(job.updated_at) == clock()
    clock.advance(120)
    with lifecycle.Heartbeat(db, run_id, every=0.01, clock=clock):
        deadline = time.monotonic() + 30
        while lifecycle.aware(row(db, run_id).updated_at) != clock():
            assert time.monotonic() < deadline, "no heartbeat was recorded"
            time.sleep(0.01)
    assert row(db, run_id).message == "fitting fold 2"  # a beat changes nothing else
    lifecycle.finish(db, run_id, clock=clock)
    assert not lifecycle.heartbeat(db, run_id, clock=clock)  # an ended job does not beat


def test_fail_records_the_reason_once_and_never_undoes_done(db, coll_id):
    clock = Clock()
    failing, finished = new_job(db, coll_id, clock), new_job(db, coll_id, clock)
    lifecycle.claim(db, failing, kinds=(JobKind.TUNE,), clock=clock)
    clock.advance(3)
    assert lifecycle.fail(db, failing, "the tuning failed: MemoryError: no room" + "x" * 3000, clock=clock)
    job = row(db, failing)
    assert job.status == "failed" and job.message.startswith("the tuning failed: MemoryError: no room")
    assert len(job.message) == lifecycle.MESSAGE_MAX and lifecycle.aware(job.finished_at) == clock()
    assert not lifecycle.fail(db, failing, "a second reason")  # the first failure is the one kept
    assert row(db, failing).message.startswith("the tuning failed")
    assert lifecycle.finish(db, finished, "done: x chosen", params={"report": {"chosen": "x"}}, clock=clock)
    assert not lifecycle.fail(db, finished, "too late")
    done = row(db, finished)
    assert (done.status, done.message, done.params) == ("done", "done: x chosen", {"report": {"chosen": "x"}})
    assert lifecycle.aware(done.finished_at) == clock()


def test_a_shard_fails_for_good_only_on_its_last_attempt(db, coll_id):
    parent = new_job(db, coll_id, Clock(), kind=JobKind.INGEST)
    shard = new_job(db, coll_id, Clock(), kind=JobKind.SHARD, parent_id=parent, params={"start": 0, "stop": 3})
    assert lifecycle.fail(db, shard, "attempt 1 failed")
    assert not lifecycle.is_final(row(db, shard).status, row(db, shard).params)
    assert lifecycle.requeue(db, shard, "starting again", when=(*lifecycle.UNFINISHED, JobStatus.FAILED))
    assert row(db, shard).finished_at is None
    assert lifecycle.fail(db, shard, "attempt 2 failed")
    assert lifecycle.fail(db, shard, "the queue gave up on it", final=True)
    job = row(db, shard)
    assert lifecycle.is_final(job.status, job.params) and job.params == {"start": 0, "stop": 3, "final": True}
    assert job.message == "the queue gave up on it"


def test_changes_conditional_on_the_owner_move_only_that_owners_jobs(db, coll_id):
    clock = Clock()
    mine = new_job(db, coll_id, clock, kind=JobKind.INGEST, owner="cli:host:1:a")
    unowned = new_job(db, coll_id, clock, kind=JobKind.INGEST)
    assert not lifecycle.interrupt(db, mine, "stopped", owned_by="cli:host:2:b")
    assert lifecycle.interrupt(db, mine, "stopped", owned_by="cli:host:1:a")
    assert row(db, mine).status == "interrupted"
    assert [r[0] for r in lifecycle.unfinished(db, owner_like="cli:%")] == []
    assert not lifecycle.requeue(db, unowned, "again", owned_by="rq:x", new_owner="rq:y")
    assert lifecycle.requeue(db, unowned, "again", owned_by=None, new_owner="rq:y")
    assert (row(db, unowned).owner, row(db, unowned).message) == ("rq:y", "again")


def test_cancel_fails_every_unfinished_job_of_the_collection(db, coll_id):
    clock = Clock()
    queued, running, done = (new_job(db, coll_id, clock) for _ in range(3))
    lifecycle.claim(db, running, kinds=(JobKind.TUNE,))
    lifecycle.finish(db, done)
    assert sorted(lifecycle.cancel(db, coll_id, "cancelled: collection deleted", clock=clock)) == [queued, running]
    assert [row(db, i).status for i in (queued, running, done)] == ["failed", "failed", "done"]


def test_the_vocabulary_matches_the_analyses_and_the_api_contract():
    from simsearch.ops.analysis_tasks import KINDS
    from simsearch.web import schemas as S

    assert set(KINDS) == set(lifecycle.ANALYSIS_KINDS)
    from simsearch.web.schemas.tune import LastTuning

    assert set(get_args(S.Job.model_fields["status"].annotation)) == set(JobStatus)
    assert set(get_args(LastTuning.model_fields["status"].annotation)) == set(JobStatus)
    assert set(get_args(S.AnalysisAccepted.model_fields["status"].annotation)) == set(lifecycle.UNFINISHED)
    assert set(lifecycle.UNFINISHED) | set(lifecycle.ENDED) == set(JobStatus)
    assert JobStatus.QUEUED == "queued" and f"{JobStatus.RUNNING}" == "running"  # the column's strings


# ---- no status written by hand outside the lifecycle module --------------------------------------

STATUSES = {s.value for s in JobStatus}
LIFECYCLE = PACKAGE / "store" / "lifecycle.py"


def _is_status(node: ast.AST) -> bool:
    """A job status as a literal string, or as ``JobStatus.X``."""
    if isinstance(node, ast.Constant):
        return node.value in STATUSES
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "JobStatus"


def _targets(node: ast.AST):
    for t in getattr(node, "targets", None) or [getattr(node, "target", None)]:
        yield from (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t])


def hand_written(source: str) -> list[str]:
    """Where ``source`` spells two or more job statuses in one literal tuple, list or set (outside a
    ``Literal[...]`` annotation, the API contract), assigns a ``.status``, or passes a status as
    ``status=``."""
    tree = ast.parse(source)
    in_literal = {id(n) for sub in ast.walk(tree) if isinstance(sub, ast.Subscript)
                  and getattr(sub.value, "id", getattr(sub.value, "attr", None)) == "Literal" for n in ast.walk(sub)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and id(node) not in in_literal:
            spelled = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in STATUSES]
            if len(spelled) >= 2:
                found.append(f"line {node.lineno}: the statuses {tuple(spelled)}")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            if any(isinstance(t, ast.Attribute) and t.attr == "status" for t in _targets(node)):
                found.append(f"line {node.lineno}: a .status assigned")
        elif isinstance(node, ast.keyword) and node.arg == "status" and _is_status(node.value):
            found.append(f"line {node.value.lineno}: status={ast.unparse(node.value)}")
    return found


def test_the_check_finds_what_it_looks_for():
    assert hand_written('IngestRun.status.in_(("queued", "running"))')
    assert hand_written('run.status, run.message = "failed", why')
    assert hand_written('run.status = status')
    assert hand_written('update(IngestRun).values(status="done")')
    assert hand_written('IngestRun(kind="x", status=JobStatus.QUEUED)')
    assert not hand_written('x: Literal["queued", "running", "done"]')
    assert not hand_written('values(status="ok", error=None)')  # an image's status
    assert not hand_written('lifecycle.end(run, JobStatus.DONE)\nif run.status == "running": pass')


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if p != LIFECYCLE),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_status_is_written_by_hand_outside_the_lifecycle(path):
    found = hand_written(path.read_text())
    assert not found, (f"{path.relative_to(PACKAGE)}: {found}: job statuses are written (and their sets "
                       "spelled) only in simsearch/store/lifecycle.py; use its functions and constants")


def answers_202(source: str) -> bool:
    """Whether ``source`` makes a 202 itself: ``resp.status_code = 202``, ``return body, 202`` or
    ``Response(..., status=202)``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and any(getattr(t, "attr", None) == "status_code" for t in node.targets) \
                and getattr(node.value, "value", None) == 202:
            return True
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and \
                any(getattr(e, "value", None) == 202 for e in node.value.elts):
            return True
        if isinstance(node, ast.keyword) and node.arg == "status" and getattr(node.value, "value", None) == 202:
            return True
    return False


def test_every_view_that_starts_a_job_answers_through_job_accepted():
    assert answers_202("resp = jsonify(x)\nresp.status_code = 202") and answers_202("def f():\n    return {}, 202")
    common = PACKAGE / "web" / "api" / "common.py"
    assert answers_202(common.read_text())
    makers = [str(p.relative_to(PACKAGE)) for p in sorted((PACKAGE / "web").rglob("*.py"))
              if p != common and answers_202(p.read_text())]
    assert makers == [], f"{makers}: answer 202 with simsearch.web.api.common.job_accepted"
