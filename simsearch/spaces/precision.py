"""Which space new vectors go to: a backbone (with its pooling and views) at the precision the
settings resolve to here (``+bf16`` where this CPU computes bf16 natively and the runtime uses
it, with ``SIMSEARCH_PRECISION`` auto; else fp32)."""

from __future__ import annotations

from simsearch.embedding.runtimes import resolve_device, resolve_precision

from .names import space_key, split


def new_space(settings, backbone: str, pooling: str = "avg", precision: str | None = None) -> str:
    """The space new vectors of ``backbone`` go to under ``settings`` (runtime, precision, device).
    ``backbone`` may carry its pooling and views (``efficientnet_lite0@gem3+flip``): they win over
    ``pooling``; a precision it names wins over ``precision``."""
    name, pool, views, given = split(backbone)
    device = resolve_device(settings.device)
    return space_key(name, pool or pooling, resolve_precision(given or precision or settings.precision,
                                                              settings.runtime, device), views)
