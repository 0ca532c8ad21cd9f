"""Every operation of /api/openapi.json has examples (issue 21, item 7): each parameter, each
request body and each success response, and each JSON example is valid against its schema. The
document also renders its Markdown, and documents spaces as a pattern, not an enumeration."""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    from simsearch.config import Settings
    from simsearch.web import create_app, shutdown
    from tests.conftest import upgraded

    home = tmp_path_factory.mktemp("openapi") / "home"
    settings = upgraded(Settings.from_env(home=home, database_url=f"sqlite:///{home / 'simsearch.db'}",
                                          weights_path=home / "weights"))
    app = create_app({"SETTINGS": settings, "TESTING": True})
    yield app.test_client().get("/api/openapi.json").get_json()
    shutdown(app)


def _operations(spec):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield f"{method.upper()} {path}", op


def _has_example(obj: dict) -> bool:
    return "example" in obj or bool(obj.get("examples"))


def _examples(obj: dict) -> list:
    if "example" in obj:
        return [obj["example"]]
    return [e["value"] for e in (obj.get("examples") or {}).values() if "value" in e]


def _errors(spec, schema: dict, value) -> list[str]:
    validator = Draft202012Validator({**schema, "components": spec["components"]})
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(value)]


def test_every_operation_has_request_and_response_examples(spec):
    missing = []
    for name, op in _operations(spec):
        for param in op.get("parameters", []):
            if not _has_example(param):
                missing.append(f"{name}: parameter {param['name']}")
        for ctype, media in (op.get("requestBody") or {}).get("content", {}).items():
            if not _has_example(media):
                missing.append(f"{name}: request body {ctype}")
        success = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert success, name
        for code, resp in success.items():
            for ctype, media in (resp.get("content") or {}).items():
                if not _has_example(media):
                    missing.append(f"{name}: response {code} {ctype}")
    assert not missing, "no example: " + "; ".join(missing)


def test_file_examples_point_to_this_server():
    from simsearch.web.examples import FILE_EXAMPLES, OPERATION_FILE_EXAMPLES

    for example in [*FILE_EXAMPLES.values(), *(e for m in OPERATION_FILE_EXAMPLES.values() for e in m.values())]:
        assert example["summary"] and example["externalValue"].startswith("/api/")


def test_the_examples_are_valid_against_their_schemas(spec):
    wrong = []
    for name, op in _operations(spec):
        for param in op.get("parameters", []):
            for value in _examples(param):
                wrong += [f"{name} parameter {param['name']}={value!r}: {e}" for e in _errors(spec, param["schema"], value)]
        media = [("request", c, m) for c, m in (op.get("requestBody") or {}).get("content", {}).items()]
        media += [(code, c, m) for code, r in op["responses"].items() if code.startswith("2")
                  for c, m in (r.get("content") or {}).items()]
        for where, ctype, m in media:
            if ctype in ("application/json", "multipart/form-data"):
                for value in _examples(m):
                    wrong += [f"{name} {where} {ctype}: {e}" for e in _errors(spec, m["schema"], value)]
    assert not wrong, "\n".join(wrong)


def test_the_composer_gives_nothing_for_an_undeclared_text_field():
    from simsearch.web.examples import NOT_COMPOSED, compose

    schema = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}, "n": {"type": "integer"}}}
    assert compose(schema, {}) is NOT_COMPOSED
    schema["properties"]["title"]["examples"] = ["Cats"]
    assert compose(schema, {}) == {"title": "Cats", "n": 1}
    # a field named like the responses' common ones (FIELD_EXAMPLES) takes their example
    assert compose({"type": "object", "required": ["collection"], "properties": {"collection": {"type": "string"}}}, {}) \
        == {"collection": "pets"}


def test_spaces_are_documented_as_a_pattern(spec):
    enums = []

    def walk(node, where):
        if isinstance(node, dict):
            if len(node.get("enum", ())) > 30:
                enums.append(f"{where}: {len(node['enum'])} values")
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(spec, "")
    assert not enums, enums
    search = spec["paths"]["/api/collections/{name}/search"]["post"]
    backbone = next(p for p in search["parameters"] if p["name"] == "backbone")
    text = str(backbone["schema"])
    for name in ("efficientnet_lite0@gem4+flip+ms+bf16", "resnet50@max", "clip-vit-b32", "efficientnet_lite0.discriminant"):
        assert not _errors(spec, backbone["schema"], name), name
    assert _errors(spec, backbone["schema"], "efficientnet_lite0@gem9") or "pattern" in text


def test_descriptions_are_markdown(spec):
    """Descriptions use Markdown (code in backticks, rendered by Swagger UI), not HTML or reST."""
    texts = [spec["info"]["description"]]
    for _, op in _operations(spec):
        texts += [op.get("description", ""), *(p.get("description", "") for p in op.get("parameters", []))]
    joined = "\n".join(texts)
    assert "`" in joined
    assert not re.search(r":(mod|func|class|data|meth|attr):`", joined), "reST roles (shown literally)"
    assert not re.search(r"<(p|br|code|b|i)>", joined), "HTML in a description"
