"""``simsearch embed``: embed a collection's stored images in other spaces (a sharded
re-embedding job, :mod:`simsearch.ops.reembed_jobs`), here or on the workers' queue; and
``simsearch features``: store their local features after ingest (:mod:`simsearch.ops.local_features`)."""

from __future__ import annotations

import sys

import click

from simsearch.cli.app import cli, context_from
from simsearch.cli.core import emit_json, json_option
from simsearch.ops import command_ingest, local_features, reembed_jobs
from simsearch.text import plural


def estimate_line(est: dict) -> str:
    """``2,040 images x 1 forward x 0.021 s = ~43 s (recorded rate)``"""
    what = (f"{plural(est['images'], 'image')} in {plural(est['spaces'], 'space')} "
            f"({plural(est['forwards_per_image'], 'model forward')} per image)")
    if est["seconds"] is None:
        return f"estimate: {what}; no rate recorded for this backbone yet (--estimate probes a few images)"
    return (f"estimate: {what} x {est['seconds_per_image']:.4f} s = ~{est['seconds']:.0f} s on one worker "
            f"({est['basis']} rate)")


@cli.command()
@click.option("--collection", "-c", required=True, help="The collection whose stored images are embedded again.")
@click.option("--space", "-s", "spaces", multiple=True, required=True,
              help="A space to embed in (repeatable; one backbone and precision): efficientnet_lite0@gem3, "
                   "efficientnet_lite0+flip, resnet50...")
@click.option("--estimate", "estimate_only", is_flag=True,
              help="Only say what it would cost (images x model forwards x seconds each; when no rate is recorded, "
                   "a few images are timed) and start nothing.")
@click.option("--queue", "queued", is_flag=True,
              help="Queue it for `simsearch worker` processes instead of running here (needs SIMSEARCH_REDIS_URL); "
                   "its shards run in parallel; follow with `simsearch jobs ID --follow`.")
@click.option("--shard-size", type=click.IntRange(1, 1_000_000), help="Images per shard [default: SIMSEARCH_SHARD_SIZE].")
@click.option("--progress/--no-progress", default=None, help="A progress line on stderr [default: when stderr is a terminal].")
@json_option
@click.pass_context
def embed(ctx, collection, spaces, estimate_only, queued, shard_size, progress, as_json):
    """Embed the images stored in a collection again, in other spaces (another pooling or test-time
    view of a backbone, another backbone), reading them from where they were ingested from.

    Only the images lacking a vector in one of the spaces are embedded; the job is split into
    shards and stores its vectors batch by batch, so an interrupted run continues where it
    stopped when the same command is run again. The cost estimate is printed before it starts.
    """
    app = context_from(ctx)
    if estimate_only:
        est = reembed_jobs.estimate(app, collection, list(spaces), probe=True)
        emit_json(est) if as_json else click.echo(estimate_line(est))
        return
    if queued:
        started = reembed_jobs.start(app, command_ingest.queue_runner(app), collection, list(spaces), shard_size=shard_size)
        if as_json:
            emit_json(started)
            return
        click.echo(estimate_line(started["estimate"]))
        click.echo(f"queued re-embedding job {started['job_id']}: {plural(started['total'], 'image')} of {collection} "
                   f"in {plural(started['shards'], 'shard')}; follow it with `simsearch jobs {started['job_id']} --follow`")
        return
    targets = reembed_jobs.target_spaces(app, list(spaces))
    est = reembed_jobs.estimate(app, collection, targets)
    if not as_json:
        click.echo(estimate_line(est), err=True)
    show = (sys.stderr.isatty() and not as_json) if progress is None else progress

    def line(done: int, total: int) -> None:
        click.echo(f"\rembedding: {done}/{total} images", err=True, nl=done >= total)

    try:
        out = reembed_jobs.run_here(app, collection, targets, progress=line if show else None, shard_size=shard_size)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: the vectors stored so far are kept; run the same command again to continue.",
                   err=True)
        ctx.exit(130)
    if out is None:
        out = {"job_id": None, "status": "done", "total": 0, "embedded": 0, "skipped": 0, "failed": 0,
               "message": f"every image already has vectors in {', '.join(targets)}"}
    out = {**out, "collection": collection, "spaces": targets, "estimate": est}
    if as_json:
        emit_json(out)
    else:
        click.echo(f"{collection}: {out['embedded']} images embedded in {', '.join(targets)}, {out['skipped']} had "
                   f"them, {out['failed']} failed" + (f" (job {out['job_id']}: {out['status']})" if out["job_id"] else "")
                   + (f"; {out['message']}" if out.get("message") and out["status"] != "done" else ""))
    if out["status"] != "done":
        ctx.exit(1)


def features_estimate_line(est: dict) -> str:
    """``2,040 images lacking local features x 0.052 s = ~106 s on one worker (recorded rate)``"""
    what = f"estimate: {plural(est['images'], 'image')} lacking local features"
    if est.get("seconds") is None:
        return f"{what}; no rate recorded yet"
    return f"{what} x {est['seconds_per_image']:.4f} s = ~{est['seconds']:.0f} s on one worker ({est['basis']} rate)"


@cli.command()
@click.option("--collection", "-c", required=True, help="The collection whose images' local features are stored.")
@click.option("--estimate", "estimate_only", is_flag=True,
              help="Only say what it would cost (images lacking them x seconds per image: the rate of earlier shards, "
                   "else a few images timed) and start nothing.")
@click.option("--queue", "queued", is_flag=True,
              help="Queue it for `simsearch worker` processes instead of running here (needs SIMSEARCH_REDIS_URL); "
                   "its shards run in parallel; follow with `simsearch jobs ID --follow`.")
@click.option("--shard-size", type=click.IntRange(1, 1_000_000), help="Images per shard [default: SIMSEARCH_SHARD_SIZE].")
@click.option("--retry-unreadable", is_flag=True,
              help="Also try again the images whose original an earlier run could not read (recorded as tried and "
                   "not taken again otherwise): after fixing or restoring those files.")
@click.option("--progress/--no-progress", default=None, help="A progress line on stderr [default: when stderr is a terminal].")
@json_option
@click.pass_context
def features(ctx, collection, estimate_only, queued, shard_size, retry_unreadable, progress, as_json):
    """Store the local features (SIFT keypoints) of a collection's images that lack them, read
    from their originals: afterwards a search by upload takes candidates by local features by
    default (a photo of a painting on a wall finds the painting), without ingest paying for them
    (SIMSEARCH_LOCAL_FEATURES).

    A job split into shards that stores them batch by batch: run again after an interruption, it
    continues where it stopped. The cost estimate is printed before it starts."""
    app = context_from(ctx)
    if estimate_only:
        est = local_features.estimate(app, collection, retry_unreadable=retry_unreadable)
        emit_json(est) if as_json else click.echo(features_estimate_line(est))
        return
    if queued:
        started = local_features.start(app, command_ingest.queue_runner(app), collection, shard_size=shard_size,
                                       retry_unreadable=retry_unreadable)
        if as_json:
            emit_json(started)
            return
        click.echo(features_estimate_line(started["estimate"] or {"images": started["total"]}))
        click.echo(f"queued local features job {started['job_id']}: {plural(started['total'], 'image')} of {collection} "
                   f"in {plural(started['shards'], 'shard')}" + _retried(started["retried"])
                   + f"; follow it with `simsearch jobs {started['job_id']} --follow`")
        return
    show = (sys.stderr.isatty() and not as_json) if progress is None else progress

    def line(done: int, total: int) -> None:
        click.echo(f"\rlocal features: {done}/{total} images", err=True, nl=done >= total)

    def announce(est: dict | None) -> None:
        if est is not None and not as_json:
            click.echo(features_estimate_line(est), err=True)

    try:
        report = local_features.store_missing(app, collection, progress=line if show else None, shard_size=shard_size,
                                              announce=announce, retry_unreadable=retry_unreadable)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: the features stored so far are kept; run the same command again to continue.",
                   err=True)
        ctx.exit(130)
    if as_json:
        emit_json(report)
    else:
        click.echo(f"{collection}: stored the local features of {plural(report['stored'], 'image')} of "
                   f"{report['lacking']} lacking them ({report['unreadable']} without a readable original, "
                   f"{report['skipped']} had them{_retried(report['retried'])}) in {report['seconds']:.1f} s"
                   + (f" (job {report['job_id']}: {report['status']})" if report["job_id"] else ""))
    if report["status"] != "done":
        ctx.exit(1)


def _retried(n: int) -> str:
    """``; 2 images whose original could not be read before tried again`` (--retry-unreadable), or nothing."""
    return f"; {plural(n, 'image')} whose original could not be read before tried again" if n else ""
