"""Name -> :class:`Backbone` registry."""

from __future__ import annotations

from simsearch.errors import InvalidInput

from .base import Backbone
from .efficientnet_lite import VARIANTS, EfficientNetLiteBackbone
from .keras_apps import APP_SPECS, KerasAppBackbone

_REGISTRY: dict[str, Backbone] = {}
for _spec in APP_SPECS:
    _REGISTRY[_spec.name] = KerasAppBackbone(_spec)
for _v in sorted(VARIANTS):
    _b = EfficientNetLiteBackbone(_v)
    _REGISTRY[_b.name] = _b


def list_backbones() -> list[str]:
    """All backbone names, in a stable order."""
    return list(_REGISTRY)


def get_backbone(name: str) -> Backbone:
    """The backbone called ``name``; :class:`InvalidInput` naming the valid choices otherwise."""
    try:
        return _REGISTRY[str(name).strip().lower()]
    except KeyError:
        raise InvalidInput(
            f"unknown backbone {name!r}; choose one of: {', '.join(_REGISTRY)}",
            field="backbone",
            details={"choices": list(_REGISTRY)},
        ) from None
