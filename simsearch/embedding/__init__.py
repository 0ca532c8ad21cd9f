"""Embedding images: the model cache (:mod:`.cache`, one per process) and the embedder of a space
(:mod:`simsearch.embedding.embedder`: uint8 images -> L2-normalised vectors). What a space name means is
:mod:`simsearch.spaces`'s."""

from .cache import MODELS, ModelCache, ModelKey

__all__ = ["MODELS", "ModelCache", "ModelKey"]
