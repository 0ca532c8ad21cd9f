"""Server-rendered pages. Each page is a small template plus an ES module that calls the JSON API.

The pages render what the database knows cheaply (collection names and counts, labels, backbones);
everything heavier (search, clusters, the map, comparisons, ingest jobs) is fetched by the page's
script from ``/api``. A page for an unknown collection is a 404 page naming the known ones.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from sqlalchemy import func, select

from simsearch.errors import NotFound, Unauthorized
from simsearch.store import repo
from simsearch.store.models import Collection, Image

bp = Blueprint("ui", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")

def _services():
    """The app's :class:`simsearch.services.Services` (made by ``create_app``)."""
    ext = current_app.extensions
    svc = ext.get("simsearch")
    if svc is None:
        raise RuntimeError("create_app did not register the simsearch services")
    return getattr(svc, "services", svc)


def _all_backbones() -> list[str]:
    from simsearch.backbones import list_backbones

    return list_backbones()


def _collection_context(name: str) -> dict:
    """What every collection page shows: counts, labels (with counts) and embedded spaces."""
    svc = _services()
    with svc.db.session() as s:
        coll = repo.get_collection(s, name)
        counts = repo.image_counts(s, coll.id)
        vectors = repo.vector_counts(s, coll.id)
        label_rows = s.execute(
            select(Image.label, func.count())
            .where(Image.collection_id == coll.id, Image.status == "ok", Image.label.is_not(None))
            .group_by(Image.label)
            .order_by(Image.label)
        ).all()
    spaces = sorted(vectors)
    default = svc.settings.default_backbone
    return {
        "collection": {"name": coll.name, "images_ok": counts.get("ok", 0), "images_failed": counts.get("failed", 0)},
        "labels": [{"name": lbl, "count": n} for lbl, n in label_rows],
        "spaces": spaces,
        "vector_counts": vectors,
        "default_space": default if default in spaces or not spaces else spaces[0],
        "default_backbone": default,
    }


@bp.app_template_global()
def ui_page_title(page: str) -> str:
    return {"browse": "Browse", "search": "Search", "clusters": "Clusters", "map": "Map", "compare": "Compare",
            "ingest": "Add images"}.get(page, page.title())


@bp.errorhandler(NotFound)
def _not_found(exc: NotFound):
    return render_template("ui/not_found.html", message=exc.message), 404


@bp.get("/")
def index():
    svc = _services()
    rows = []
    with svc.db.session() as s:
        for coll in s.scalars(select(Collection).order_by(Collection.name)):
            counts = repo.image_counts(s, coll.id)
            rows.append({"name": coll.name, "images_ok": counts.get("ok", 0), "images_failed": counts.get("failed", 0),
                         "vectors": repo.vector_counts(s, coll.id)})
    return render_template("ui/index.html", collections=rows, page="home")


@bp.get("/c/<name>")
def browse(name: str):
    return render_template("ui/browse.html", page="browse", **_collection_context(name))


@bp.get("/c/<name>/search")
def search(name: str):
    return render_template("ui/search.html", page="search", **_collection_context(name))


@bp.get("/c/<name>/clusters")
def clusters(name: str):
    return render_template("ui/clusters.html", page="clusters", **_collection_context(name))


@bp.get("/c/<name>/map")
def map_view(name: str):
    return render_template("ui/map.html", page="map", **_collection_context(name))


def _not_embedded(spaces: list[str]) -> list[dict]:
    """Backbones without vectors in the collection, each with why it cannot be compared yet."""
    from simsearch.backbones import get_backbone

    weights_dir = _services().settings.weights_dir
    embedded = {s.partition("@")[0] for s in spaces}
    out = []
    for name in _all_backbones():
        if name in embedded:
            continue
        ok, reason = get_backbone(name).weights_status(weights_dir)
        why = "no vectors in this collection yet"
        out.append({"backbone": name, "reason": why if ok else f"{why}; weights unavailable: {reason}", "weights_ok": ok})
    return out


@bp.get("/c/<name>/compare")
def compare(name: str):
    ctx = _collection_context(name)
    return render_template("ui/compare.html", page="compare", not_embedded=_not_embedded(ctx["spaces"]), **ctx)


@bp.get("/c/<name>/ingest")
def ingest(name: str):
    ctx = _collection_context(name)
    return render_template("ui/ingest.html", page="ingest", all_backbones=_all_backbones(), **ctx)


@bp.get("/ingest")
def ingest_new():
    """Upload into a new (or any) collection: the name is typed in the form."""
    svc = _services()
    with svc.db.session() as s:
        names = list(s.scalars(select(Collection.name).order_by(Collection.name)))
    return render_template("ui/ingest.html", page="ingest", collection=None, known_collections=names, labels=[],
                           spaces=[], vector_counts={}, all_backbones=_all_backbones(),
                           default_backbone=svc.settings.default_backbone, default_space=svc.settings.default_backbone)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log the browser session in with an API key (only needed when SIMSEARCH_API_KEYS is set)."""
    from simsearch.web import security

    nxt = security.safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("ui/login.html", page="login", error=None, next=nxt)
    ok, error = security.handle_login_post()
    if request.is_json:
        if not ok:
            raise Unauthorized(error, field="key")
        return {"logged_in": True}
    if not ok:
        return render_template("ui/login.html", page="login", error=error, next=nxt), 401
    return redirect(nxt)


@bp.post("/logout")
def logout():
    from simsearch.web import security

    security.logout()
    if request.is_json:
        return {"logged_in": False}
    return redirect(url_for("ui.index"))
