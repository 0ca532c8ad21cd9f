"""``GET /api/openapi.json`` (the OpenAPI 3.1 document APIFlask generates from the declared
contract, :mod:`simsearch.web.schemas`) and ``GET /api/docs``, an interactive page over it:
Swagger UI (descriptions rendered as Markdown, "Try it out" against this server).

Swagger UI's files come from the ``swagger-ui-py`` package (a maintained bundle of upstream
Swagger UI 5, which renders OpenAPI 3.1) and are served by this app under
``/api/docs/assets/<name>``: the page loads nothing from another origin, so it works offline.
The page has no inline script (its start-up code is ``static/docs/swagger-init.js``) and carries a
Content-Security-Policy that allows only this origin (plus ``data:`` and ``blob:`` images).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from apiflask import APIBlueprint
from flask import current_app, jsonify, render_template, send_from_directory

from simsearch.errors import NotFound
from simsearch.web.contract import errors
from simsearch.web.schemas import NoQuery

bp = APIBlueprint("docs", __name__, enable_openapi=True, template_folder="templates")

SWAGGER_UI = Path(str(files("swagger_ui") / "static"))
OWN = Path(__file__).parent / "static" / "docs"
# The files the page uses, and the folder each is in (nothing else is served from here).
ASSETS = {
    "swagger-ui-bundle.js": SWAGGER_UI,
    "swagger-ui.css": SWAGGER_UI,
    "favicon-32x32.png": SWAGGER_UI,
    "swagger-init.js": OWN,
    "docs.css": OWN,
}
ASSET_MAX_AGE = 3600
# Swagger UI uses data: SVG icons and shows image answers of "Try it out" as
# blob: URLs; everything else is this origin.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def spec() -> dict:
    """The document (generated once per app, then cached by APIFlask)."""
    return current_app._get_spec("json")


@bp.get("/openapi.json")
@bp.input(NoQuery, location="query", arg_name="q")
@bp.doc(summary="This document", tags=["service"],
        responses={200: {"description": "OpenAPI 3.1 document.",
                         "content": {"application/json": {"schema": {"type": "object"}, "example": {
                             "openapi": "3.1.0", "info": {"title": "simsearch API", "version": "0.9.0"},
                             "paths": {"/api/health": {"get": {"summary": "Health check"}}}}}}}, **errors(400)})
def openapi_json(q):
    return jsonify(spec())


@bp.get("/docs")
@bp.input(NoQuery, location="query", arg_name="q")
@bp.doc(summary="API documentation page", tags=["service"],
        description="Swagger UI over this document: every operation, its parameters and schemas, and "
                    "*Try it out* to call it from the browser.",
        responses={200: {"description": "The interactive documentation page (HTML).",
                         "content": {"text/html": {"schema": {"type": "string"}}}}, **errors(400)})
def docs(q):
    info = spec()["info"]
    resp = current_app.response_class(render_template("docs/swagger.html", title=f"{info['title']} {info['version']}"),
                                      mimetype="text/html")
    resp.headers["Content-Security-Policy"] = CSP
    return resp


@bp.get("/docs/assets/<name>")
@bp.input(NoQuery, location="query", arg_name="q")
@bp.doc(summary="A file of the documentation page", tags=["service"],
        description="Swagger UI's script, style sheet and icon and the page's start-up script, served by "
                    "this server so that `/api/docs` works offline. `name` is one of: "
                    + ", ".join(f"`{n}`" for n in ASSETS) + ".",
        responses={200: {"description": "The file.",
                         "content": {"text/javascript": {"schema": {"type": "string"}},
                                     "text/css": {"schema": {"type": "string"}},
                                     "image/png": {"schema": {"type": "string", "format": "binary"}}}},
                   **errors(400, 404)})
def assets(name: str, q):
    folder = ASSETS.get(name)
    if folder is None:
        raise NotFound(f"no documentation asset {name!r}", field="name")
    return send_from_directory(folder, name, max_age=ASSET_MAX_AGE)
