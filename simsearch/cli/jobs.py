"""``simsearch jobs``: list jobs, show one, follow one until it ends."""

from __future__ import annotations

import sys
import time

import click

from simsearch.cli.app import cli, context_from
from simsearch.cli.core import emit_json, json_option
from simsearch.text import plural


def _line(job: dict) -> str:
    shards = job.get("shards")
    status = "cancelled" if job.get("cancelled") else job["status"]
    parts = [f"#{job['id']}", job["kind"], job.get("title") or job["kind"], status + (" (stale)" if job.get("stale") else ""),
             job["collection"] or "-", f"{job['processed']}/{job['total']}"]
    if job["kind"] in ("ingest", "shard") and (job.get("title") or "").startswith("Embedding"):
        parts.append(f"{job['failed']} failed")  # an embedding pass adds vectors to images already there, no new ones
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
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.1, 600), help="Seconds between checks when following.")
@json_option
@click.pass_context
def jobs(ctx, job_id, collection, limit, follow, interval, as_json):
    """List the latest jobs (ingest and analyses), or show job JOB_ID.

    A large queued ingest (`simsearch ingest PATH --queue`) is one job whose counters are the sums
    of its shards'. Runs of `simsearch ingest` commands that were killed show as interrupted.
    """
    from simsearch.ops import jobs as jobs_ops
    from simsearch.ops.command_ingest import interrupted_commands

    app = context_from(ctx)
    interrupted_commands(app)
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
