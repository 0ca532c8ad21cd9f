"""What a re-embedding will cost, said before it starts: images x model forwards per image x
seconds per forward.

The target spaces of one backbone share its feature map, so an image costs one forward of the
model per distinct test-time view they need (``@gem3`` and ``@max`` together: one; ``+flip``:
two; ``+flip+ms``: four), whatever their number. The seconds per forward come, in this order, from

1. ``recorded``: the re-embedding shards of this backbone and precision that ended here before
   (their wall seconds over the forwards they ran: reading, decoding, model and storing);
2. ``ingest``: the model seconds per image that ingest recorded with this backbone's vectors
   (``embeddings.seconds``; reading and decoding not included, so it is a lower bound);
3. ``probe``: a timed pass over a few of the images (when asked: it loads the model);

else the estimate has no seconds (``basis`` ``none``).
"""

from __future__ import annotations

import time

from sqlalchemy import func, select

from simsearch.jobs.reembed import embed_batch
from simsearch.spaces import parse
from simsearch.store.lifecycle import JobKind, JobStatus
from simsearch.store.models import Embedding, IngestRun

RECORDED_SHARDS = 50  # the latest ended shards the recorded rate is taken from
PROBE_IMAGES = 4


def forwards_per_image(spaces: list[str]) -> int:
    """Model forwards per image for all of ``spaces`` (one backbone): their distinct views."""
    return len({v for sp in spaces for v in parse(sp).view_list})


def _same_model(space: str, backbone: str, precision: str) -> bool:
    try:
        spec = parse(space)
    except Exception:  # an imported or derived space: not a backbone's
        return False
    return (spec.backbone, spec.precision) == (backbone, precision)


def recorded_rate(ctx, backbone: str, precision: str) -> tuple[float | None, str]:
    """(seconds per forward, basis) from what ran here before; (None, "none") when nothing did."""
    with ctx.db.session() as s:
        rows = s.execute(select(IngestRun.spaces, IngestRun.params, IngestRun.added)
                         .where(IngestRun.kind == JobKind.REEMBED_SHARD.value, IngestRun.status == JobStatus.DONE.value,
                                IngestRun.added > 0)
                         .order_by(IngestRun.id.desc()).limit(RECORDED_SHARDS * 4)).all()
        seconds = forwards = 0.0
        used = 0
        for spaces, params, added in rows:
            params = params or {}
            if used >= RECORDED_SHARDS or not spaces or not _same_model(spaces[0], backbone, precision):
                continue
            if params.get("seconds") is None or not params.get("forwards"):
                continue
            seconds += float(params["seconds"])
            forwards += float(added) * int(params["forwards"])
            used += 1
        if forwards > 0:
            return seconds / forwards, "recorded"
        per_space = s.execute(select(Embedding.space, func.avg(Embedding.seconds))
                              .where(Embedding.seconds.is_not(None)).group_by(Embedding.space)).all()
    rates = [float(avg) / len(parse(sp).view_list) for sp, avg in per_space
             if avg is not None and _same_model(sp, backbone, precision)]
    if rates:
        return sum(rates) / len(rates), "ingest"
    return None, "none"


def probe_rate(ctx, spaces: list[str], paths: list[str]) -> float | None:
    """Seconds per forward over up to :data:`PROBE_IMAGES` of ``paths`` (the model loaded first)."""
    paths = paths[:PROBE_IMAGES]
    if not paths:
        return None
    embed_batch(ctx, spaces, paths[:1])  # loads the model: not part of the rate
    t0 = time.perf_counter()
    embed_batch(ctx, spaces, paths)
    return (time.perf_counter() - t0) / (len(paths) * forwards_per_image(spaces))


def estimate(ctx, spaces: list[str], images: int, *, probe_paths: list[str] | None = None) -> dict:
    """The cost of embedding ``images`` images in ``spaces``: ``images``, ``spaces``,
    ``forwards_per_image``, ``seconds_per_image`` and ``seconds`` (None when unknown) and the
    ``basis`` of the rate (see the module's text). ``probe_paths``: image files to time when
    nothing was recorded."""
    spec = parse(spaces[0])
    forwards = forwards_per_image(spaces)
    rate, basis = recorded_rate(ctx, spec.backbone, spec.precision)
    if rate is None and probe_paths:
        rate = probe_rate(ctx, spaces, probe_paths)
        basis = "probe" if rate is not None else "none"
    per_image = None if rate is None else rate * forwards
    return {"images": int(images), "spaces": len(spaces), "forwards_per_image": forwards,
            "seconds_per_image": None if per_image is None else round(per_image, 4),
            "seconds": None if per_image is None else round(per_image * images, 1), "basis": basis}
