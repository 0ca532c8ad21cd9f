"""Server-rendered pages. Each page is a small template plus an ES module that calls the JSON API.

The pages render what the database knows cheaply (collection names and counts, labels, backbones);
everything heavier (search, clusters, the map, comparisons, ingest jobs) is fetched by the page's
script from ``/api``. A page for an unknown collection is a 404 page naming the known ones.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from simsearch.errors import NotFound
from simsearch.ops import browse as ops_browse
from simsearch.ops import collections as ops_collections
from simsearch.ops import jobs as ops_jobs
from simsearch.ops.backbones import backbone_rows, not_embedded
from simsearch.ops.embed_jobs import estimates as embed_estimates
from simsearch.ops.sampling import CAP as SAMPLE_CAP
from simsearch.spaces import describe, score_words
from simsearch.web.paths import shown_source
from simsearch.ops import duplicates as dup, spaces as ops_spaces
from simsearch.spaces import is_backbone_space, parse
from simsearch.web.paths import hide_server_paths

bp = Blueprint("ui", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")


def _ctx():
    """The app's :class:`~simsearch.context.AppContext` (made by ``create_app``)."""
    return current_app.extensions["simsearch"]


def _all_backbones() -> list[str]:
    return [row["name"] for row in backbone_rows(_ctx().settings)]


def _vector_counts(summary: dict) -> dict[str, int]:
    """space -> vectors in the database, for the spaces that have any."""
    return {space: info["vectors_in_db"] for space, info in summary["backbones"].items() if info["vectors_in_db"]}


def _collection_context(name: str) -> dict:
    """What every collection page shows: counts, labels (with counts) and embedded spaces."""
    detail = ops_collections.detail(_ctx(), name)
    vectors = _vector_counts(detail)
    pick = ops_spaces.picker(_ctx(), name)  # the collection's default first; tune's internal variants left out
    spaces = [sp for sp in pick["spaces"] if sp in vectors]
    internal = [sp for sp in pick["internal"] if sp in vectors]
    labels = sorted((row for row in detail["labels"] if row["label"] is not None), key=lambda row: row["label"])
    return {
        "collection": {"name": detail["name"], "images_ok": detail["images_ok"], "images_failed": detail["images_failed"]},
        "labels": [{"name": row["label"], "count": row["count"]} for row in labels],
        "spaces": spaces,
        "internal_spaces": internal,  # tune's variants: offered only after "show all"
        "space_words": {sp: describe(sp) for sp in [*spaces, *internal]},  # (title, explanation)
        "score_words": score_words(),
        "vector_counts": vectors,
        "default_space": pick["default"],
        "default_backbone": _ctx().settings.default_backbone,
    }


@bp.app_template_global()
def ui_page_title(page: str) -> str:
    return {"browse": "Browse", "search": "Search", "clusters": "Clusters", "map": "Map", "compare": "Compare",
            "duplicates": "Duplicates", "spaces": "Spaces", "ingest": "Add images", "jobs": "Jobs"}.get(page, page.title())


@bp.app_template_filter("space_words")
def space_words_filter(space: str):
    """``{{ name|space_words }}``: the space's (title, explanation) (:func:`simsearch.spaces.describe`)."""
    return describe(space)


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound):
    return render_template("ui/not_found.html", message=exc.message), 404


@bp.app_template_global()
def space_title(space: str | None) -> str:
    """A space as a curator reads it (:func:`simsearch.spaces.describe`'s title), or "none yet"."""
    return describe(space).title if space else "none yet"


@bp.get("/")
def index():
    return render_template("ui/index.html", collections=ops_browse.cards(_ctx()), page="home")


@bp.get("/c/<name>")
def browse(name: str):
    runs = [{**r, "source": shown_source(r["source"])} for r in ops_browse.ingest_runs(_ctx(), name)]
    return render_template("ui/browse.html", page="browse", runs=runs, **_collection_context(name))


@bp.get("/c/<name>/search")
def search(name: str):
    return render_template("ui/search.html", page="search", **_collection_context(name))


@bp.get("/c/<name>/clusters")
def clusters(name: str):
    return render_template("ui/clusters.html", page="clusters", **_collection_context(name))


@bp.get("/c/<name>/map")
def map_view(name: str):
    return render_template("ui/map.html", page="map", **_collection_context(name))


@bp.get("/c/<name>/duplicates")
def duplicates(name: str):
    return render_template("ui/duplicates.html", page="duplicates", thresholds=dup.thresholds(),
                           calibration=dup.calibration_text(), **_collection_context(name))


@bp.get("/c/<name>/compare")
def compare(name: str):
    ctx = _collection_context(name)
    # backbone spaces some images lack (an embedding stopped half-way, images added with another backbone)
    partial = [s for s in ctx["spaces"] if is_backbone_space(s) and ctx["vector_counts"][s] < ctx["collection"]["images_ok"]]
    missing = sorted(not_embedded(_ctx().settings, ctx["spaces"]), key=lambda b: not b["weights_ok"])  # the ones to embed now first
    # the notes name the weights folder: shown as $SIMSEARCH_WEIGHTS_DIR (unless SIMSEARCH_EXPOSE_PATHS)
    missing = [{**b, "reason": hide_server_paths(b["reason"]), "weights_note": hide_server_paths(b["weights_note"])}
               for b in missing]
    # what each embedding would cost, said before it starts
    lacking = {s: ctx["collection"]["images_ok"] - ctx["vector_counts"][s] for s in partial}
    lacking.update({b["backbone"]: ctx["collection"]["images_ok"] for b in missing if b["weights_ok"]})
    return render_template("ui/compare.html", page="compare", not_embedded=missing, partial=partial,
                           estimates=embed_estimates(_ctx(), lacking), sample_cap=f"{SAMPLE_CAP:,}", **ctx)


@bp.get("/c/<name>/spaces")
def spaces(name: str):
    """The collection's search spaces, its default, and the tuning (a job) with its results."""
    return render_template("ui/spaces.html", page="spaces", **_collection_context(name))


@bp.get("/c/<name>/ingest")
def ingest(name: str):
    ctx = _collection_context(name)
    own = ctx["default_space"]  # new images are embedded with the backbone of the collection's default
    ctx["default_space"] = parse(own).backbone if own and is_backbone_space(own) else ctx["default_backbone"]
    return render_template("ui/ingest.html", page="ingest", all_backbones=_all_backbones(),
                           backbone_words={b: describe(b) for b in _all_backbones()}, **ctx)


@bp.get("/ingest")
def ingest_new():
    """Upload into a new (or any) collection: the name is typed in the form."""
    default = _ctx().settings.default_backbone
    return render_template("ui/ingest.html", page="ingest", collection=None,
                           known_collections=ops_collections.collection_names(_ctx()), labels=[], spaces=[],
                           vector_counts={}, internal_spaces=[], space_words={}, score_words=score_words(),
                           all_backbones=_all_backbones(), backbone_words={b: describe(b) for b in _all_backbones()},
                           default_backbone=default,
                           default_space=default)


@bp.get("/jobs")
def jobs():
    """Every job (ingest, embedding passes, shards, analyses, tuning, index rebuilds), refreshed
    while some run; ``?collection=NAME``: that collection's."""
    names = ops_collections.collection_names(_ctx())
    chosen = request.args.get("collection") or ""
    return render_template("ui/jobs.html", page="jobs", collection=None, collections=names,
                           chosen=chosen if chosen in names else "")


@bp.get("/jobs/<int:job_id>")
def job(job_id: int):
    """One job: its progress, files' errors, shards, and cancel / retry (404 page when unknown)."""
    shown = ops_jobs.get(_ctx(), job_id)
    return render_template("ui/job.html", page="jobs", collection=None, job_id=job_id, kind=shown["kind"],
                           job_collection=shown["collection"])
