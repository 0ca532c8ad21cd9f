"""simsearch: self-hosted image similarity search and exploration.

Pipeline stages, one sub-package each:
images (decode, thumbnails) -> backbones / embed -> store (SQL) -> index (FAISS)
-> analysis (cluster, evaluate, project) -> web / cli / worker.
"""

__version__ = "0.1.0"
