"""Embedding images, one home for what turns pixels into vectors:

- :mod:`.backbones`: the backbone registry (Keras applications, EfficientNet-Lite);
- :mod:`.runtimes`: what runs a backbone's model (Keras, OpenVINO, ONNX Runtime; the converted-model cache);
- :mod:`.pooling`: the poolings a space may name;
- :mod:`.cache`: the process's one model cache;
- :mod:`simsearch.embedding.embedder`: the embedder of a space (uint8 images -> L2-normalised vectors).

What a space name means is :mod:`simsearch.spaces`'s, a layer above: the embedder is given a
parsed space (:func:`simsearch.spaces.to_embed`), never a name."""

from .cache import MODELS, ModelCache, ModelKey

__all__ = ["MODELS", "ModelCache", "ModelKey"]
