"""The package's layers, top to bottom: the one declaration ``tests/test_layers.py`` checks.

Each layer names the top-level modules and packages it holds (``cli`` is ``simsearch/cli/``,
``config`` is ``simsearch/config.py``, ``__init__`` is ``simsearch/__init__.py``;
``benchmarks`` is the repository's ``benchmarks/`` folder). A module may import from its own
layer and the layers below it, never from one above; and no modules import each other in a
circle, even through an import inside a function. Every top-level module is in exactly one layer:
a new one is placed here before its first test passes.

Nothing imports this module at run time; it is data for the test and the reader
(docs/architecture.md describes each layer).
"""

from __future__ import annotations

from typing import NamedTuple


class Layer(NamedTuple):
    name: str
    holds: tuple[str, ...]
    what: str


LAYERS: tuple[Layer, ...] = (
    Layer("benchmarks", ("benchmarks",),
          "the measurement scripts: they may use anything below, nothing in the package uses them"),
    Layer("entry points", ("__main__", "cli", "worker"),
          "the simsearch command (calls operations only) and the RQ job paths of earlier versions"),
    Layer("front ends", ("web", "reports"),
          "the Flask app (API, UI) and the file reports (map PNG, comparison HTML) over the operations' results"),
    Layer("operations", ("ops",),
          "what the CLI and the API do, without Flask: take the AppContext and plain values, raise simsearch.errors"),
    Layer("jobs", ("jobs",),
          "background work: runs, runners, the RQ job and worker loop, reconciliation"),
    Layer("process", ("context",),
          "AppContext: what one process keeps (settings, database, index manager, weights chosen per space)"),
    Layer("pipeline", ("ingest", "search", "derived", "space_defaults"),
          "ingest a folder, search by file or id, derived (re-weighted) embedding spaces, a collection's default space"),
    Layer("provenance", ("provenance",),
          "what a space's vectors were computed with, recorded and checked"),
    Layer("index", ("index",),
          "FAISS indexes: build, save, load, policy, background rebuilds as job rows"),
    Layer("store", ("store",),
          "the database: models, engine, queries, migrations, the result cache"),
    Layer("limits", ("limits",),
          "every limit on user input, declared once for the CLI and the API"),
    Layer("spaces", ("spaces",),
          "what an embedding space's name means: the grammar, the names a request may give, new vectors' precision"),
    Layer("embedding", ("embedding",),
          "batches of images to L2-normalised vectors in a parsed space; the process's one model cache; the "
          "backbones (registry, Keras applications, EfficientNet-Lite) and the runtimes that run them (Keras, "
          "OpenVINO, ONNX Runtime; the converted-model cache)"),
    Layer("pixels and numbers", ("images", "analysis"),
          "decoding and image files; pure numpy analysis (clusters, scores, projections)"),
    Layer("foundation", ("config", "paths", "text", "digest", "owners", "layers"),
          "settings, the data folder's layout, wording, file digests, job owner names, this list"),
    Layer("errors", ("errors", "__init__"),
          "the one error hierarchy and the package's version"),
)


def layer_of(unit: str) -> int:
    """The index in :data:`LAYERS` (0: the top) of a top-level module or package ``unit``."""
    for i, layer in enumerate(LAYERS):
        if unit in layer.holds:
            return i
    raise KeyError(f"{unit!r} is in no layer of simsearch/layers.py: place it there")
