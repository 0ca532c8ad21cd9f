"""Suggested names for a cluster: the ImageNet classes the backbone's own classifier gives most of
its images (:mod:`simsearch.embedding.backbones.imagenet_head`), offered to the curator, who accepts one
(:func:`simsearch.ops.cluster_labels.rename`) or edits it first.

The classifier head is applied to the images' stored vectors: it takes the average-pooled feature
vector, so a space with another pooling (``@max``, ``@gem3``) is read in the same backbone's plain
space instead, when the images have vectors there. Spaces of imported or derived vectors and
backbones without a head get no suggestions and a ``note`` saying why.
"""

from __future__ import annotations

import numpy as np

from simsearch.embedding.backbones.imagenet_head import class_names, classifier_head, has_head, top_classes
from simsearch.ops.cluster_labels import current_clusters, version_of
from simsearch.spaces import names as space_names
from simsearch.store import repo

TOP = 5  # suggestions per cluster
SAMPLE = 2000  # at most this many of a cluster's images are classified (seeded sample)
SEED = 0


def _source(space: str) -> tuple[str | None, str | None, str | None]:
    """``(backbone, space to read, None)``, or ``(None, None, note)`` when there can be no suggestions."""
    if not space_names.is_backbone_space(space):
        return None, None, (f"no suggestions for {space}: its vectors were imported or derived, not computed by a "
                            "backbone with an ImageNet classifier")
    spec = space_names.parse(space)
    if not has_head(spec.backbone):
        return None, None, (f"no suggestions for this backbone: {spec.backbone} has no ImageNet classifier here "
                            "(the EfficientNet-Lite backbones have theirs)")
    return spec.backbone, (space if spec.pooling == "avg" else spec.backbone), None


def sample(ids: np.ndarray, n: int = SAMPLE, seed: int = SEED) -> np.ndarray:
    """At most ``n`` of ``ids``, a seeded sample (the same for the same ids), in ascending order."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if len(ids) <= n:
        return ids
    return np.sort(np.random.default_rng(seed).choice(ids, size=n, replace=False))


def suggest(ctx, collection: str, space: str | None, k, cluster: int, *, version: str | None = None,
            top: int = TOP) -> dict:
    """Up to ``top`` names for cluster ``cluster`` of the clustering last computed for ``k``: each
    ``{"name", "classes", "wnid", "images", "share"}`` (the class's first name, all its names, its
    WordNet id, how many of the classified images it is the top class of, and their share), most
    images first; ``note`` tells why there are none."""
    base, vs = current_clusters(ctx, collection, space, k, cluster, version)
    members = np.asarray(base.clusters[cluster].members, dtype=np.int64)
    out = {"collection": collection, "backbone": vs.space, "k": base.k, "cluster": cluster, "version": version_of(vs),
           "classified": 0, "size": len(members), "from_space": None, "suggestions": [], "note": None}
    backbone, read, note = _source(vs.space)
    if note is not None:
        out["note"] = note
        return out
    chosen = sample(members)
    with ctx.db.session() as s:
        _, x = repo.load_vectors_for_ids(s, read, chosen)
    if not len(x):
        out["note"] = (f"no suggestions for {vs.space}: the classifier takes average-pooled vectors; embed the "
                       f"collection with {backbone} (average pooling) to get them")
        return out
    weight, _ = classifier_head(backbone)
    names = class_names()
    out.update(classified=len(x), from_space=read)
    out["suggestions"] = [{"name": names[v.index][1].split(",")[0].strip(), "classes": names[v.index][1],
                           "wnid": names[v.index][0], "images": v.images, "share": round(v.share, 4)}
                          for v in top_classes(x, weight, top)]
    return out
