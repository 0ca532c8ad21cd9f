"""simsearch: self-hosted image similarity search and exploration.

Pipeline stages, one sub-package each:
images (decode, thumbnails) -> backbones / embed -> store (SQL) -> index (FAISS)
-> analysis (cluster, evaluate, project) -> jobs -> ops (no Flask) -> web / cli / worker.
"""

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) is noise for a CLI; real errors
# still surface as Python exceptions. Set TF_CPP_MIN_LOG_LEVEL yourself to see it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
