"""Embedding a collection with another backbone as a background job (the comparison page's action).

The re-embedding job of `simsearch embed` (:mod:`simsearch.ops.reembed_jobs`, kind ``reembed``,
split into shards that any worker takes): the collection's ok images that lack the backbone's
vectors are read again from their source files (or their kept originals), with the cost
estimate worked out before it starts; progress, cancel and retry are the jobs' own
(``/api/jobs/<id>``). The same request while one runs joins it. It is the web's counterpart of
``simsearch compare --backbones A,B`` (which runs the same job in the command itself,
:func:`simsearch.ops.comparison.embed_missing`).

Images whose source file is gone (uploads are deleted after their ingest job unless
``SIMSEARCH_KEEP_ORIGINALS`` keeps them) are listed as ignored, with the reason, and left out of
the job; when none is left the request is refused (409) saying how to add the vectors instead.
"""

from __future__ import annotations

from pathlib import Path

from simsearch.errors import Conflict, SimsearchError
from simsearch.jobs import reembed, reembed_cost
from simsearch.ops import reembed_jobs
from simsearch.ops.ingest import IngestOptions

MAX_IGNORED_SHOWN = 200


def start_embedding(ctx, runner, collection: str, backbone: str) -> dict:
    """Queue the re-embedding of ``collection``'s images with ``backbone`` (checked: a known
    backbone whose weights are available, else 400 / 503; 409 when no image lacks its vectors or
    none can be read any more). Returns the re-embedding's 202 body with ``ignored``."""
    space = IngestOptions.parse(ctx.settings, backbones=[backbone]).spaces[0]
    _coll_id, todo = reembed_jobs.lacking_ids(ctx, collection, [space])
    if not todo:
        raise Conflict(f"every image of {collection!r} already has {space} vectors", field="backbone")
    rows = reembed.sources(ctx, todo)
    ids = [i for i, path, _src in rows if path is not None]
    ignored = [f"{Path(src).name} (its source file is gone)" for _i, path, src in rows if path is None]
    if not ids:
        raise Conflict(f"the source files of the {len(rows)} image(s) without {space} vectors are gone (uploaded files "
                       "are not kept after their ingest unless SIMSEARCH_KEEP_ORIGINALS is on): upload them again with this backbone on the collection's "
                       "Add images page, or run `simsearch ingest FOLDER --collection "
                       f"{collection} --backbone {backbone}` on the original folder", field="backbone",
                       details={"ignored": ignored[:MAX_IGNORED_SHOWN]})
    started = reembed_jobs.start(ctx, runner, collection, [space], ids=ids, source=f"embed: {space}", field="backbone")
    return {**started, "ignored": ignored[:MAX_IGNORED_SHOWN]}


def estimates(ctx, lacking: dict[str, int]) -> dict[str, str]:
    """What embedding each backbone would cost, in words, for the compare page's buttons, said before
    anything starts: ``lacking`` maps a backbone or space to how many images lack its vectors (the
    rate recorded here or ingest's; nothing is timed). A backbone that cannot be embedded here
    (no weights) is left out."""
    out = {}
    for name, images in lacking.items():
        try:
            space = IngestOptions.parse(ctx.settings, backbones=[name]).spaces[0]
        except SimsearchError:
            continue
        out[name] = words(reembed_cost.estimate(ctx, [space], images))
    return out


def words(est: dict) -> str:
    """``about 43 s on one worker (recorded rate)``, or that no rate is known yet."""
    secs = est.get("seconds")
    if secs is None:
        return "no time estimate yet (nothing embedded with it here)"
    took = f"{secs:.1f} s" if secs < 10 else f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min" if secs < 7200 else f"{secs / 3600:.1f} h"
    return f"about {took} on one worker ({est['basis']} rate)"
