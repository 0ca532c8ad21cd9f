"""Embedding spaces: the one place that knows what a space name means and which space is used.

- :mod:`.names`: the grammar (``backbone[@pooling][+flip][+ms][+bf16|+int8]``, imported and derived
  names): :func:`parse` (a name -> :class:`SpaceSpec`), :func:`space_key` (the parts -> a name),
  :func:`check`, :func:`is_backbone_space`;
- :mod:`.listing`: every backbone space a request may name, the kind of a stored space;
- :mod:`.precision`: the space new vectors go to under the settings (:func:`new_space`);
- :mod:`.words`: a space and the scores in plain words (:func:`describe`, :data:`SCORES`).

No database here: the spaces of a collection are the pipeline layer's (:mod:`simsearch.space_defaults`:
the collection's default space, what an ingest must embed; :mod:`simsearch.derived`: derived
spaces), which ask this package what a name means. A low layer (simsearch/layers.py), right above
the embedding package: it imports the backbones and runtimes registries and the poolings from
there, so that the limits (which list the names a request may give) can ask it; the embedder
below it is given a parsed :class:`SpaceSpec` (:func:`to_embed`), never a name.
"""

from .listing import backbone_spaces, kind_of, read_spaces, space_pattern
from .names import (
    GEM_P,
    NAME_MAX,
    NAME_PATTERN,
    NAME_RULE,
    POOLINGS,
    SUFFIX_HELP,
    VIEWS,
    SpaceSpec,
    check,
    check_space_name,
    derived_name,
    imported_name,
    is_backbone_space,
    is_valid_name,
    parse,
    space_key,
    split,
    to_embed,
)
from .precision import new_space
from .words import NOT_MEASURED, SCORES, Description, describe, score_words

__all__ = [
    "GEM_P", "NAME_MAX", "NOT_MEASURED", "NAME_PATTERN", "NAME_RULE", "POOLINGS", "SCORES", "SUFFIX_HELP", "VIEWS", "Description",
    "SpaceSpec", "describe", "score_words",
    "backbone_spaces", "check", "check_space_name", "derived_name", "imported_name", "is_backbone_space",
    "is_valid_name", "kind_of", "new_space", "parse", "read_spaces", "space_key", "space_pattern", "split", "to_embed",
]
