"""CNN backbones: pretrained ImageNet feature extractors.

``get_backbone(name)`` returns a :class:`Backbone` with ``name``, ``input_size``, ``dim``,
``family``, ``preprocess`` (numpy), ``build_feature_model`` / ``build_classifier`` (Keras, built
lazily) and ``weights_status``. Importing this package does not import TensorFlow, Keras or torch.
"""

from .base import Backbone
from .registry import get_backbone, list_backbones

__all__ = ["Backbone", "get_backbone", "list_backbones"]
