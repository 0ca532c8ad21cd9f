"""``simsearch jobs``: list jobs, show one, follow one until it ends, cancel or retry one."""

from __future__ import annotations

import sys
import time

import click

from simsearch.cli.app import cli, context_from
from simsearch.cli.core import emit_json, json_option
from simsearch.text import plural
from simsearch.ops import job_actions, jobs as jobs_ops
from simsearch.ops.command_ingest import interrupted_commands


def _line(job: dict) -> str:
    shards = job.get("shards")
    status = "cancelled" if job.get("cancelled") else job["status"]
    parts = [f"#{job['id']}", job["kind"], job.get("title") or job["kind"], status + (" (stale)" if job.get("stale") else ""),
             job["collection"] or "-", f"{job['processed']}/{job['total']}"]
    if job["kind"] in ("ingest", "shard") and (job.get("title") or "").startswith("Embedding"):
        parts.append(f"{job['failed']} failed")  # an embedding pass adds vectors to images already there, no new ones
    elif job["kind"] in ("reembed", "reembed_shard"):
        parts.append(f"{job['added']} embedded, {job['skipped']} had the vectors, {job['failed']} failed")
    elif job["kind"] in ("features", "features_shard"):
        parts.append(f"{job['added']} stored, {job['skipped']} had them, {job['failed']} unreadable")
    elif job["kind"] in ("ingest", "shard"):
        parts.append(f"+{job['added']} new, {job['skipped']} present, {job['failed']} failed")
    if shards:
        parts.append(f"shards {shards['done']}/{shards['total']} done, {shards['running']} running"
                     + (f", {shards['failed']} failed" if shards["failed"] else ""))
    if job["status"] == "running" and job.get("rate"):
        eta = job.get("eta_seconds")
        parts.append(f"{job['rate']:.1f} img/s" + (f", ~{eta:.0f} s left" if eta else ""))
    return "  ".join(parts)


@cli.command()
@click.argument("job_id", type=int, required=False)
@click.option("--collection", "-c", help="Only this collection's jobs.")
@click.option("--limit", "-n", default=20, show_default=True, type=click.IntRange(1, 1000), help="Jobs to list.")
@click.option("--follow", "-f", is_flag=True, help="With JOB_ID: print its progress until it ends (exit 1 if it fails).")
@click.option("--cancel", is_flag=True, help="Cancel job JOB_ID (queued or running; its unfinished shards too).")
@click.option("--retry", is_flag=True, help="Start job JOB_ID again (failed, cancelled or interrupted); without "
                                            "SIMSEARCH_REDIS_URL it runs in this command, which waits for it.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.1, 600), help="Seconds between checks when following.")
@json_option
@click.pass_context
def jobs(ctx, job_id, collection, limit, follow, cancel, retry, interval, as_json):
    """List the latest jobs (ingest and analyses), or show job JOB_ID; `--cancel` or `--retry` it.

    A large queued ingest (`simsearch ingest PATH --queue`) is one job whose counters are the sums
    of its shards'. Runs of `simsearch ingest` commands that were killed show as interrupted.
    """
    if cancel and retry:
        raise click.UsageError("--cancel and --retry cannot be given together")
    if (cancel or retry) and job_id is None:
        raise click.UsageError(f"--{'cancel' if cancel else 'retry'} needs a JOB_ID")
    app = context_from(ctx)
    interrupted_commands(app)
    if cancel:
        return _cancel(job_actions, app, job_id, as_json)
    if retry:  # run here (no queue): followed until it ends, as with --follow
        job_id, here = _retry(job_actions, app, job_id, as_json)
        if here is None:  # queued for the workers: nothing more to show
            return
        ctx.call_on_close(lambda: here.shutdown(wait=True))
        follow = True
    if job_id is None:
        if follow:
            raise click.UsageError("--follow needs a JOB_ID")
        listed = jobs_ops.recent(app, collection=collection, limit=limit)
        if as_json:
            emit_json(listed)
        elif not listed:
            click.echo("no jobs")
        else:
            for job in listed:
                click.echo(_line(job))
        return
    job = jobs_ops.get(app, job_id)
    if follow:
        last = None
        while job["status"] not in jobs_ops.ENDED:
            line = _line(job)
            if line != last and not as_json:
                click.echo(line, err=not sys.stdout.isatty())
                last = line
            time.sleep(interval)
            job = jobs_ops.get(app, job_id)
    if as_json:
        emit_json(job)
    else:
        click.echo(_line(job))
        if job.get("message"):
            click.echo(f"  {job['message']}")
        for err in job["errors"][:20]:
            click.echo(f"  failed: {err['file']}: {err['reason']}")
        if job["errors_total"] > 20:
            click.echo(f"  ... and {plural(job['errors_total'] - 20, 'more failed file')} (--json lists {len(job['errors'])})")
    if follow and job["status"] != "done":
        ctx.exit(1)


def _cancel(job_actions, app, job_id: int, as_json: bool) -> None:
    """``--cancel``: one line naming what was cancelled (an ended job or an index rebuild: the error
    says why not)."""
    done = job_actions.cancel(app, job_id)
    if as_json:
        emit_json(done)
        return
    others = [f"#{i}" for i in done["cancelled"] if i != job_id]
    click.echo(f"cancelled job {job_id}" + (f" and {plural(len(others), 'shard')} ({', '.join(others)})" if others else ""))


def _retry(job_actions, app, job_id: int, as_json: bool):
    """``--retry``: start job ``job_id`` again (a refusal is the error, with its reason). Returns the
    job to follow (the same one, or a new one) and the runner of this process that runs it, None
    when it was queued for the workers (then said here, or printed with ``--json``)."""
    runner = job_actions.command_runner(app)
    try:
        started = job_actions.retry(app, runner, job_id)
    except BaseException:
        runner.shutdown(wait=False)
        raise
    again = "queued again" if started["job_id"] == job_id else f"started again as job {started['job_id']}"
    if runner.kind != "thread":
        if as_json:
            emit_json(started)
        else:
            click.echo(f"job {job_id} {again} for the workers: follow it with `simsearch jobs {started['job_id']} -f`")
        return started["job_id"], None
    if not as_json:
        click.echo(f"job {job_id} {again}; running it here (no SIMSEARCH_REDIS_URL) until it ends", err=True)
    return started["job_id"], runner
