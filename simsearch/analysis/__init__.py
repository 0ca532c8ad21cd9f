"""Analysis of embedding sets: clustering, cluster quality, neighbourhoods and 2-D maps.

Pure functions over numpy arrays (rows = items, typically float32 L2-normalised embeddings, but
any finite real arrays work). Bad parameters raise :class:`simsearch.errors.InvalidInput`
naming the field. Everything random takes a seed and is deterministic.
"""

from .cluster import KMeansResult, SweepResult, kmeans, silhouette_sweep
from .k_auto import auto_sweep, k_grid
from .evaluate import external_scores, representatives
from .neighbours import knn_graph, knn_precision, knn_precision_per_point, neighbour_overlap
from .project import TSNE_FIT_MAX, pca_2d, place_2d, tsne_2d

__all__ = [
    "KMeansResult",
    "SweepResult",
    "auto_sweep",
    "external_scores",
    "k_grid",
    "kmeans",
    "knn_graph",
    "knn_precision",
    "knn_precision_per_point",
    "neighbour_overlap",
    "pca_2d",
    "representatives",
    "silhouette_sweep",
    "tsne_2d",
    "place_2d",
    "TSNE_FIT_MAX",
]
