"""Thumbnail atlases for the map: the stored thumbnails of the points of one map tile, as one image.

The map page draws dots when zoomed out and the images themselves when zoomed in. It asks only
for the tiles it shows: a tile ``z-x-y`` is a cell of a 2^z x 2^z grid over the map's quantised
coordinates (the uint16 ``x``/``y`` of the binary map, :mod:`simsearch.web.map_binary`): the
points with ``qx >> (16 - z) == x`` and ``qy >> (16 - z) == y``. The browser computes the same
integers from the payload it already has, so it knows which tiles hold points and how many.

An atlas is a JPEG grid of square cells (:data:`CELL` pixels, each thumbnail fitted inside on
white), row by row, of at most :data:`MAX_CELLS` points of the tile in map order; points without
a thumbnail (imported vectors) get no cell and stay dots. :class:`Atlas` ``ids`` says which image
each cell holds.

A map's ``generation`` (a hash of its ids and quantised coordinates) names its content: an atlas
asked for with the generation is immutable, so browsers cache it for good; the quantised maps of
recent generations are kept in memory, so a tile costs one query for its thumbnails.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from simsearch.errors import Conflict, InvalidInput
from simsearch.store import repo
from simsearch.store.models import Image, Thumbnail
from simsearch.ops import analysis

CELL = 64  # pixels per cell side
MAX_CELLS = 256  # a 16 x 16 grid at most: 1024 x 1024 pixels
MAX_LEVEL = 8  # 256 x 256 tiles; 256 quantisation steps per tile side
JPEG_QUALITY = 80
_TILE = re.compile(r"^(\d{1,2})-(\d{1,3})-(\d{1,3})$")
# Exactly the tiles that exist (z = 0..8, x and y below 2^z, no leading zeros): the API documents it.
_BELOW = {1: "0", 2: "[01]", 4: "[0-3]", 8: "[0-7]", 16: "(?:1[0-5]|[0-9])", 32: "(?:3[01]|[12][0-9]|[0-9])",
          64: "(?:6[0-3]|[1-5][0-9]|[0-9])", 128: "(?:12[0-7]|1[01][0-9]|[1-9][0-9]|[0-9])",
          256: "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"}
TILE_PATTERN = "^(?:" + "|".join(f"{z}-{_BELOW[2**z]}-{_BELOW[2**z]}" for z in range(MAX_LEVEL + 1)) + ")$"
_KEEP = 4  # quantised maps kept in memory


@dataclass(frozen=True)
class Tile:
    z: int
    x: int
    y: int

    @property
    def key(self) -> str:
        return f"{self.z}-{self.x}-{self.y}"


def parse_tile(value: str) -> Tile:
    """``z-x-y`` with 0 <= z <= 8 and 0 <= x, y < 2^z, else InvalidInput naming the field."""
    m = _TILE.match(value or "")
    if not m:
        raise InvalidInput(f"tile must be 'z-x-y' (three whole numbers, e.g. 2-1-3), not {str(value)[:40]!r}", field="tile")
    z, x, y = (int(g) for g in m.groups())
    if z > MAX_LEVEL:
        raise InvalidInput(f"tile level z must be 0..{MAX_LEVEL}, not {z}", field="tile")
    if x >= 2**z or y >= 2**z:
        raise InvalidInput(f"tile {value}: x and y must be below 2^z = {2**z}", field="tile")
    return Tile(z, x, y)


@dataclass(frozen=True)
class QuantisedMap:
    generation: str
    ids: np.ndarray  # int64 (N,)
    qx: np.ndarray  # uint16 (N,)
    qy: np.ndarray  # uint16 (N,)


def generation_of(ids: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> str:
    h = hashlib.sha256()
    for arr in (np.asarray(ids, "<i8"), np.asarray(qx, "<u2"), np.asarray(qy, "<u2")):
        h.update(arr.tobytes())
    return h.hexdigest()[:20]


STEPS = 0xFFFF


def quantise(values) -> tuple[np.ndarray, list[float]]:
    """Coordinates as uint16 steps of their range, and the range ``[min, max]`` (the binary map's
    quantisation, :mod:`simsearch.web.map_binary`, which uses this function)."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    span = hi - lo
    q = np.zeros(v.shape, np.uint16) if span <= 0 else np.rint((v - lo) / span * STEPS).astype(np.uint16)
    return q, [lo, hi]


def quantised(result) -> QuantisedMap:
    """A :class:`~simsearch.ops.analysis_results.MapResult` as the binary map quantises it."""
    ids = np.asarray(result.ids, np.int64)
    qx, _ = quantise(result.x)
    qy, _ = quantise(result.y)
    return QuantisedMap(generation_of(ids, qx, qy), ids, qx, qy)


class _Recent:
    """The quantised maps of the last few (collection id, space, generation)."""

    def __init__(self, keep: int = _KEEP):
        self.keep, self.items, self.lock = keep, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.keep:
                self.items.popitem(last=False)


_RECENT = _Recent()


def current_map(ctx, collection: str, space: str, method: str = "tsne", generation: str | None = None) -> QuantisedMap:
    """The collection's cached map in ``space``, quantised. ``generation``: the one the page has;
    served from memory when known, 409 when the map has changed since (or is not computed)."""
    with ctx.db.session() as s:
        coll_id = repo.get_collection(s, collection).id
    if generation is not None:
        hit = _RECENT.get((coll_id, space, method, generation))
        if hit is not None:
            return hit
    result = analysis.lookup_map(ctx, collection, space, method)
    if result is None:
        raise Conflict(f"the map of {collection!r} in {space} is not computed yet: GET its map first", field="space")
    qm = quantised(result)
    _RECENT.put((coll_id, space, method, qm.generation), qm)
    if generation is not None and generation != qm.generation:
        raise Conflict("the map has changed since this page loaded it: reload the map", field="v",
                       details={"generation": qm.generation})
    return qm


def tile_members(qm: QuantisedMap, tile: Tile) -> np.ndarray:
    """Positions (in map order) of the points in ``tile``."""
    shift = 16 - tile.z
    inside = ((qm.qx.astype(np.int32) >> shift) == tile.x) & ((qm.qy.astype(np.int32) >> shift) == tile.y)
    return np.flatnonzero(inside)


@dataclass(frozen=True)
class Atlas:
    data: bytes  # JPEG; empty when no point of the tile has a thumbnail
    ids: list[int]  # the image in each cell, row by row
    columns: int
    cell: int
    points: int  # points in the tile (some may have no cell: no thumbnail, or past MAX_CELLS)
    generation: str
    etag: str
    not_modified: bool = False  # the client's copy (If-None-Match) is current: nothing was built


def _cell_image(data: bytes):
    from PIL import Image as PILImage

    img = PILImage.open(io.BytesIO(data))
    img.draft("RGB", (CELL, CELL))  # JPEG: decode at 1/2..1/8 scale, already near the cell size
    img = img.convert("RGB")
    img.thumbnail((CELL, CELL))
    return img


def tile_atlas(ctx, collection: str, space: str, tile: str, *, method: str = "tsne",
               generation: str | None = None, cached=None) -> Atlas:
    """The atlas of ``tile``. ``cached(etag) -> bool``: whether the client holds that version
    (If-None-Match); then nothing is read or drawn (``not_modified``)."""
    from PIL import Image as PILImage

    t = parse_tile(tile)
    qm = current_map(ctx, collection, space, method, generation)
    etag = hashlib.sha256(f"{qm.generation}:{method}:{t.key}:{CELL}:{MAX_CELLS}:{JPEG_QUALITY}".encode()).hexdigest()[:32]
    if cached is not None and cached(etag):
        return Atlas(b"", [], 0, CELL, 0, qm.generation, etag, not_modified=True)
    members = tile_members(qm, t)
    ids = [int(i) for i in qm.ids[members]]
    thumbs: dict[int, bytes] = {}
    with ctx.db.session() as s:
        for chunk in repo.in_chunks(ids):
            rows = s.execute(select(Image.id, Thumbnail.data).join(Thumbnail, Thumbnail.content_hash == Image.thumbnail_hash)
                             .where(Image.id.in_(chunk))).all()
            thumbs.update({int(i): data for i, data in rows})
            if len(thumbs) >= MAX_CELLS:
                break
    cells = [i for i in ids if i in thumbs][:MAX_CELLS]
    if not cells:
        return Atlas(b"", [], 0, CELL, len(ids), qm.generation, etag)
    columns = int(np.ceil(np.sqrt(len(cells))))
    rows_n = int(np.ceil(len(cells) / columns))
    sheet = PILImage.new("RGB", (columns * CELL, rows_n * CELL), (255, 255, 255))
    for k, image_id in enumerate(cells):
        try:
            img = _cell_image(thumbs[image_id])
        except Exception:  # a thumbnail that no longer decodes: its cell stays white
            continue
        r, c = divmod(k, columns)
        sheet.paste(img, (c * CELL + (CELL - img.width) // 2, r * CELL + (CELL - img.height) // 2))
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return Atlas(out.getvalue(), cells, columns, CELL, len(ids), qm.generation, etag)
