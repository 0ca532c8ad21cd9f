"""The package's shape, checked so it cannot drift: imports only point down the pipeline, the
Flask-free layers stay Flask-free, and no module grows past ~400 lines.

Layers, top to bottom: web / cli (and the ``worker`` entry point) -> ops -> jobs ->
ingest / search / reports / context -> index / store / analysis / embed / images /
backbones / runtimes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "simsearch"
MAX_LINES = 400
# Modules over the limit while the work that splits them is under way. Strict: as soon as one is
# small enough its test passes, the xfail fails, and the entry must go.
KNOWN_LARGE: dict[str, str] = {}

# Package (first part below ``simsearch``) -> the packages it must never import.
TOP = {"simsearch.web", "simsearch.cli"}
NEVER = {
    "ops": TOP,
    "jobs": TOP | {"simsearch.ops"},
}
LOWER = ("index", "store", "analysis", "images", "backbones", "runtimes", "embed", "errors", "config", "limits")
for _low in LOWER:
    NEVER[_low] = TOP | {"simsearch.ops", "simsearch.jobs", "simsearch.context", "simsearch.ingest",
                         "simsearch.search"}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """Every module an import statement names, anywhere in the file (also inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{alias.name}" for alias in node.names)
    return out


def layer(path: Path) -> str:
    """The first part below ``simsearch`` (``ops``, ``web``, ``search``...; ``""`` for the package itself)."""
    parts = module_name(path).split(".")
    return parts[1] if len(parts) > 1 else ""


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_checks_see_the_package():
    names = {module_name(p) for p in modules()}
    assert {"simsearch.ops.collections", "simsearch.jobs.rq", "simsearch.web.api", "simsearch.index.manager"} <= names
    assert "flask" in {n.split(".")[0] for n in imported(PACKAGE / "web" / "ui.py")}


@pytest.mark.parametrize("path", modules(), ids=lambda p: module_name(p))
def test_no_import_points_up(path):
    name = module_name(path)
    first = layer(path)
    if first in ("web", "cli", "__main__"):  # __main__: `python -m simsearch`, the CLI's entry point
        return
    forbidden = NEVER.get(first, TOP)
    wrong = sorted(i for i in imported(path) if any(_within(i, f) for f in forbidden))
    assert not wrong, f"{name} imports {wrong}: a lower layer must not import a higher one"


@pytest.mark.parametrize("path", [p for p in modules() if layer(p) in ("ops", "jobs", "limits")],
                         ids=lambda p: module_name(p))
def test_operations_and_jobs_do_not_import_flask(path):
    wrong = sorted(i for i in imported(path) if _within(i, "flask"))
    assert not wrong, f"{module_name(path)} imports {wrong}: ops/ and jobs/ are used without a web app"


def _sized(path: Path):
    reason = KNOWN_LARGE.get(module_name(path))
    return pytest.param(path, marks=pytest.mark.xfail(strict=True, reason=reason)) if reason else path


@pytest.mark.parametrize("path", [_sized(p) for p in modules()], ids=lambda p: module_name(p))
def test_modules_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{module_name(path)} has {lines} lines (at most {MAX_LINES}): split it by what it owns"
