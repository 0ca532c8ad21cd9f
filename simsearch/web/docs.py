"""``GET /api/openapi.json`` (the OpenAPI 3.1 document APIFlask generates from the declared
contract, :mod:`simsearch.web.schemas`) and ``GET /api/docs``, a self-contained HTML page
rendering it (no external scripts or styles, so it works offline and under a strict CSP)."""

from __future__ import annotations

import json

from apiflask import APIBlueprint
from flask import current_app, jsonify, render_template_string

from simsearch.web.contract import errors
from simsearch.web.schemas import NoQuery

bp = APIBlueprint("docs", __name__, enable_openapi=True)


def spec() -> dict:
    """The document (generated once per app, then cached by APIFlask)."""
    return current_app._get_spec("json")


@bp.get("/openapi.json")
@bp.input(NoQuery, location="query", arg_name="q")
@bp.doc(summary="This document", tags=["service"],
        responses={200: {"description": "OpenAPI 3.1 document.",
                         "content": {"application/json": {"schema": {"type": "object"}}}}, **errors(400)})
def openapi_json(q):
    return jsonify(spec())


_DOCS = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ s.info.title }} {{ s.info.version }}</title>
<style>
body{font-family:system-ui,-apple-system,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{margin-bottom:.2rem} nav a{margin-right:.8rem} code,pre{font-family:ui-monospace,Menlo,monospace;font-size:.9em}
code{background:#f2f2f4;padding:.05rem .3rem;border-radius:3px}
section.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.2rem;font-weight:700;text-transform:uppercase;font-family:ui-monospace,monospace}
.get{color:#0a6}.post{color:#06c}.delete{color:#c22}.put,.patch{color:#a60}
table{border-collapse:collapse;width:100%;margin:.4rem 0}td,th{border-top:1px solid #eee;padding:.25rem .4rem;text-align:left;vertical-align:top}
details pre{background:#f7f7f9;padding:.6rem;overflow:auto;max-height:24rem}.lock{font-size:.8em;color:#a60}
</style></head><body>
<h1>{{ s.info.title }}</h1><p>version {{ s.info.version }} &middot; <a href="openapi.json">openapi.json</a></p>
<p>{{ s.info.description }}</p>
<nav>{% for t in s.tags %}<a href="#tag-{{ t.name }}">{{ t.name }}</a>{% endfor %}</nav>
{% for t in s.tags %}<h2 id="tag-{{ t.name }}">{{ t.name }}</h2>
{% for path, ops in s.paths.items() %}{% for method, op in ops.items() if t.name in op.get('tags', []) %}
<section class="op" id="{{ op.operationId }}"><div><span class="m {{ method }}">{{ method }}</span> <code>{{ path }}</code>
 &mdash; {{ op.summary }}{% if op.security %} <span class="lock">(write: API key or browser session + CSRF token)</span>{% endif %}</div>
{% if op.description %}<p>{{ op.description }}</p>{% endif %}
{% if op.parameters %}<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>
{% for p in op.parameters %}<tr><td><code>{{ p.name }}</code>{% if p.required %} *{% endif %}</td><td>{{ p.in }}</td>
<td>{{ p.schema.type or 'see schema' }}{% if p.schema.enum %} ({{ p.schema.enum|join(', ') }}){% endif %}{% if p.schema.default is defined %}, default {{ p.schema.default }}{% endif %}</td>
<td>{{ p.description }}</td></tr>{% endfor %}</table>{% endif %}
{% if op.requestBody %}<p>Request body: {% for ct, c in op.requestBody.content.items() %}<code>{{ ct }}</code> ({{ schema_name(c.schema) }}){% if not loop.last %} or {% endif %}{% endfor %}</p>{% endif %}
<table><tr><th>status</th><th>meaning</th><th>body</th></tr>{% for code, r in op.responses.items() %}
<tr><td>{{ code }}</td><td>{{ r.description }}</td><td>{% for ct, c in (r.content or {}).items() %}<code>{{ ct }}</code> {{ schema_name(c.schema) }}{% endfor %}</td></tr>
{% endfor %}</table></section>{% endfor %}{% endfor %}{% endfor %}
<h2>Schemas</h2>{% for name, sch in s.components.schemas.items() %}
<details id="schema-{{ name }}"><summary><code>{{ name }}</code>{% if sch.description %} &mdash; {{ sch.description }}{% endif %}</summary>
<pre>{{ dumps(sch) }}</pre></details>{% endfor %}
</body></html>"""


def _schema_name(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    return schema.get("type", "object") if isinstance(schema.get("type"), str) else "object"


@bp.get("/docs")
@bp.input(NoQuery, location="query", arg_name="q")
@bp.doc(summary="API documentation page", tags=["service"],
        responses={200: {"description": "HTML rendering of this document.",
                         "content": {"text/html": {"schema": {"type": "string"}}}}, **errors(400)})
def docs(q):
    html = render_template_string(_DOCS, s=spec(), schema_name=_schema_name, dumps=lambda o: json.dumps(o, indent=2))
    return current_app.response_class(html, mimetype="text/html")
