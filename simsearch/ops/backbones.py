"""The backbones this installation knows, with their weights status."""

from __future__ import annotations

from simsearch import spaces
from simsearch.embedding.backbones import get_backbone, list_backbones
from simsearch.embedding import MODELS


def backbone_rows(settings) -> list[dict]:
    """One row per registered backbone: name, input size, dimension, family, whether its weights
    can be had here (and why not), whether this process has it loaded, and the default."""
    loaded = MODELS.loaded_backbones()
    rows = []
    for name in list_backbones():
        b = get_backbone(name)
        ok, reason = b.weights_status(settings.weights_dir)
        rows.append({"name": b.name, "input_size": b.input_size, "dim": b.dim, "family": b.family,
                     "weights_available": bool(ok), "weights_note": reason or None, "loaded": b.name in loaded,
                     "default": b.name == settings.default_backbone})
    return rows


def not_embedded(settings, have: list[str]) -> list[dict]:
    """Backbones without vectors among the spaces ``have``, each with why it cannot be compared yet
    (a backbone counts as embedded in any of its spaces: ``resnet50@max``, ``efficientnet_lite0+bf16``)."""
    embedded = {spaces.parse(sp).backbone for sp in have if spaces.is_backbone_space(sp)}
    out = []
    for row in backbone_rows(settings):
        if row["name"] in embedded:
            continue
        why = "no vectors in this collection yet"
        ok = row["weights_available"]
        out.append({"backbone": row["name"], "reason": why if ok else f"{why}; weights unavailable: {row['weights_note']}",
                    "weights_ok": ok, "weights_note": row["weights_note"], "dim": row["dim"],
                    "input_size": row["input_size"]})
    return out



def check_space(name: str, *, imported: bool = False) -> str:
    """``name`` if it is a known backbone's space, else InvalidInput (:func:`simsearch.spaces.check`,
    for the CLI, which goes through the operations). ``imported``: a valid name of imported vectors
    (``clip-vit-b32``) passes too (whether the collection has vectors there is the caller's 404)."""
    return spaces.check(name, imported=imported)
