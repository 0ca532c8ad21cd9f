"""The global poolings of a backbone's feature map a space may name: ``avg`` and ``max`` (inside
the model) and GeM ``gem2``..``gem4`` (the embedder pools the feature map itself:
:func:`simsearch.embedding.embedder.pool_map`). The grammar of space names
(:mod:`simsearch.spaces`, a layer above) takes the names from here."""

from __future__ import annotations

GEM_P = {"gem2": 2.0, "gem3": 3.0, "gem4": 4.0}  # GeM poolings and their exponent
POOLINGS = ("avg", "max", *GEM_P)
