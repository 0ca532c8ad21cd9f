"""Every pass that embeds stored images again is a re-embedding job (issue 22, item 1): the compare
page's "embed with another backbone" and `simsearch compare`'s embedding of the missing vectors,
with the cost estimate said before they start; and a re-embedding whose process was killed is
ended as lost, so that asking again embeds the rest."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from conftest import copy_subset
from tests.helpers.api import wait_job
from tests.helpers.jobs import CLI, cli_env, kill_group
from tests.helpers.passes import Blocked, ingest
from tests.helpers.waiting import wait_until

SPACE = "efficientnet_lite0@gem3"
MAX = "efficientnet_lite0@max"


def _source(ctx, name: str) -> str:
    from simsearch.store.models import Image

    with ctx.db.session() as s:
        return next(p for p in s.scalars(select(Image.source_path)) if p.endswith(name))


@pytest.mark.model
def test_the_compare_page_s_embedding_is_a_sharded_job_with_its_estimate(make_app, settings, tmp_path):
    from simsearch.context import AppContext

    ctx = AppContext.open(settings)
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 3))  # 6 images
        gone = _source(ctx, "cat.1.jpg")
        os.unlink(gone)
    finally:
        ctx.close()
    client = make_app(settings).test_client()
    resp = client.post("/api/collections/pets/embed", json={"backbone": MAX})
    assert resp.status_code == 202, resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    assert (body["total"], body["shards"], body["spaces"]) == (5, 1, [MAX])
    assert body["ignored"] == ["cat.1.jpg (its source file is gone)"] and body["estimate"]["images"] == 5
    job = wait_job(client, body["job_id"])
    assert job["status"] == "done" and job["kind"] == "reembed" and job["added"] == 5, job
    assert job["title"] == f"Embedding with {MAX} (re-embedding)" and job["shards"]["done"] == 1
    assert client.get("/api/collections/pets").get_json()["backbones"][MAX]["vectors_in_db"] == 5
    # the page offers the image left, with what it costs at the rate the job just recorded
    page = client.get("/c/pets/compare").get_data(as_text=True)
    assert 'data-backbone="efficientnet_lite0@max">Embed the other 1</button>' in page
    assert re.search(r'data-testid="embed-estimate">about \d+\.\d s on one worker \(recorded rate\)</span>', page)


@pytest.mark.model
def test_compare_embeds_the_missing_vectors_as_a_job_said_before_it_starts(ctx, tmp_path):
    from simsearch.ops import jobs as jobs_ops
    from simsearch.ops.comparison import compare

    ingest(ctx, copy_subset(tmp_path / "pets", 5))  # 10 images
    broken = _source(ctx, "dog.2.jpg")
    with open(broken, "wb") as f:
        f.write(b"not an image any more")
    told = []
    cmp = compare(ctx, "pets", ["efficientnet_lite0", MAX], embed=True, with_maps=False, sample="all",
                  announce=lambda space, est: told.append((space, est["images"], est["forwards_per_image"])))
    assert told == [(MAX, 10, 1)]  # only the backbone that lacked vectors, before its job
    panel = {p.backbone: p for p in cmp.backbones}[MAX]
    emb = panel.embedding
    assert panel.available and (emb.embedded, emb.failed) == (9, 1) and emb.errors[0]["file"] == "dog.2.jpg"
    assert emb.estimate["images"] == 10 and panel.embed_seconds_per_image > 0  # model seconds stored with the vectors
    job = jobs_ops.get(ctx, emb.job_id)
    assert job["kind"] == "reembed" and job["status"] == "done" and job["source"] == f"compare:{MAX}", job
    assert job["title"] == f"Embedding with {MAX} for a comparison" and job["failed"] == 1
    again = compare(ctx, "pets", ["efficientnet_lite0", MAX], embed=True, with_maps=False, sample="all",
                    announce=lambda space, est: told.append((space, est["images"])))
    assert told[1:] == [(MAX, 1)]  # only the broken image is tried again
    emb = {p.backbone: p for p in again.backbones}[MAX].embedding
    assert (emb.embedded, emb.failed) == (0, 1) and emb.job_id != job["id"]


def test_a_reembedding_of_a_dead_process_is_lost_not_one_of_a_runner(ctx, tmp_path):
    """Ownership decides: a job run in a command (owner ``cli:``) whose process is gone, or that
    nothing was heard of for LOST_AFTER_SECONDS, is lost; a runner's (``thread:``, ``rq:``) never
    is here (ThreadRunner.recover and the reconciler resume those)."""
    from simsearch.jobs import reembed_lost
    from simsearch.jobs.reconcile import reconcile
    from simsearch.ops import jobs as jobs_ops, reembed_jobs
    from simsearch.store import lifecycle
    from simsearch.store.models import IngestRun, utcnow

    coll_id = _ingest_rows(ctx, 4)
    made = reembed_jobs.create_job(ctx, "pets", [SPACE], shard_size=2)
    job_id, shards = made["job_id"], made["shards"]

    def own(owner, ago=0):
        with ctx.db.session() as s:
            s.execute(update(IngestRun).where(IngestRun.id.in_([job_id, *shards]))
                      .values(owner=owner, updated_at=utcnow() - timedelta(seconds=ago)))

    for owner in (None, f"thread:{socket.gethostname()}:1:x", "rq:abc", "cli:elsewhere:1:x"):
        own(owner)
        assert reembed_lost.sweep(ctx, coll_id) == [], owner
    own(f"thread:{socket.gethostname()}:1:x", ago=lifecycle.LOST_AFTER_SECONDS + 60)
    assert reembed_lost.sweep(ctx, coll_id) == []  # a runner's: resumed by the next runner
    own("cli:elsewhere:1:x", ago=lifecycle.LOST_AFTER_SECONDS + 60)  # another machine's command, silent
    assert reconcile(ctx, None, "q")["ended"] == [job_id]  # a worker's maintenance pass finds it
    job = jobs_ops.get(ctx, job_id)
    assert job["status"] == "failed" and "lost: the process running it stopped" in job["message"], job
    assert "retrying the job finishes it" in job["message"] and job["retry_refused"] is None
    assert {c["status"] for c in job["children"]} == {"failed"}
    assert reembed_jobs.create_job(ctx, "pets", [SPACE])["new"]  # asking again starts a new job


def _ingest_rows(ctx, n: int) -> int:
    """A collection of ``n`` ok images (rows only: nothing is embedded in this test)."""
    from simsearch.store import repo
    from simsearch.store.models import Image

    with ctx.db.session() as s:
        coll = repo.get_or_create_collection(s, "pets")
        s.add_all([Image(collection_id=coll.id, source_path=f"/nowhere/{i}.jpg", content_hash=f"{i:064x}", status="ok")
                   for i in range(n)])
        s.flush()
        return coll.id


@pytest.mark.model
def test_a_killed_embed_command_s_job_is_ended_as_lost_and_the_same_command_finishes_the_rest(settings, tmp_path):
    from simsearch.context import AppContext
    from simsearch.jobs.reconcile import mark_interrupted
    from simsearch.ops import jobs as jobs_ops, reembed_jobs
    from simsearch.store.models import IngestRun

    ctx = AppContext.open(settings)
    proc = None
    try:
        ingest(ctx, copy_subset(tmp_path / "pets", 2))  # 4 images
        third = Blocked(_source(ctx, "cat.1.jpg"), tmp_path / "kept.jpg")  # the command waits in open() here
        proc = subprocess.Popen(CLI + ["embed", "-c", "pets", "-s", SPACE], env=cli_env(settings),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)

        def running():
            with ctx.db.session() as s:
                return s.scalar(select(IngestRun.parent_id).where(IngestRun.kind == "reembed_shard",
                                                                  IngestRun.status == "running"))

        job_id = wait_until(lambda: running() or proc.poll() is not None, 300, 0.2, "the command runs its shard")
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        kill_group(proc)  # no clean-up of any kind
        assert jobs_ops.get(ctx, job_id)["status"] == "running"  # what the dead command left
        third.restore()

        assert mark_interrupted(ctx) == [job_id]  # `simsearch jobs` and `simsearch ingest` look
        job = jobs_ops.get(ctx, job_id)
        assert job["status"] == "failed" and "lost: the process running it stopped" in job["message"], job
        out = reembed_jobs.run_here(ctx, "pets", [SPACE])  # the same command again: a new job, the rest
        assert out["job_id"] != job_id and out["status"] == "done" and out["embedded"] == 4, out
    finally:
        kill_group(proc)
        ctx.close()
