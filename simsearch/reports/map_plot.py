"""Scatter plots of 2-D maps (t-SNE / PCA) with image thumbnails, drawn with matplotlib (Agg).

Points are coloured by a categorical value (label or cluster); thumbnails of a spread-out subset
(at most one per cell of a square grid over the plot, the image nearest the cell's centre) are
drawn on top with a border in their point's colour, so they never pile up on one spot.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from simsearch.text import plural
from simsearch.store.models import Image, Thumbnail

UNLABELLED = "(no label)"
UNLABELLED_COLOUR = "#9e9e9e"
# tab10 then tab20's lighter shades: distinct for up to 20 categories, cycled beyond.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5"]


def load_thumbnails(ctx, ids, max_side: int = 96) -> dict[int, "PIL.Image.Image"]:  # noqa: F821
    """image id -> RGB thumbnail (longest side <= ``max_side``) from the ``thumbnails`` table.

    Images without a thumbnail (or whose thumbnail cannot be decoded) are left out."""
    from PIL import Image as PILImage
    from sqlalchemy import select

    id_list = sorted({int(i) for i in ids})
    out: dict[int, PILImage.Image] = {}
    with ctx.db.session() as s:
        for start in range(0, len(id_list), 2000):
            chunk = id_list[start:start + 2000]
            rows = s.execute(select(Image.id, Thumbnail.data).join(Thumbnail, Image.thumbnail_hash == Thumbnail.content_hash)
                             .where(Image.id.in_(chunk))).all()
            for image_id, data in rows:
                try:
                    im = PILImage.open(io.BytesIO(data))
                    im = im.convert("RGB")
                except Exception:  # a damaged thumbnail only costs its picture on the map
                    continue
                im.thumbnail((max_side, max_side))
                out[int(image_id)] = im
    return out


def spread_subset(x, y, max_n: int = 150) -> np.ndarray:
    """Indices of at most ``max_n`` points spread over the plot: the point nearest the centre of
    each occupied cell of a g x g grid, g = floor(sqrt(max_n))."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    if n == 0 or max_n <= 0:
        return np.zeros(0, dtype=int)
    g = max(1, int(math.isqrt(max_n)))
    x0, x1 = float(x.min()), float(x.max())
    y0, y1 = float(y.min()), float(y.max())
    wx = (x1 - x0) / g or 1.0
    wy = (y1 - y0) / g or 1.0
    cx = np.clip(((x - x0) / wx).astype(int), 0, g - 1)
    cy = np.clip(((y - y0) / wy).astype(int), 0, g - 1)
    # distance to the centre of the point's own cell, in cell units
    d = ((x - x0) / wx - (cx + 0.5)) ** 2 + ((y - y0) / wy - (cy + 0.5)) ** 2
    cell = cy * g + cx
    order = np.lexsort((d, cell))  # by cell, then nearest first
    first = np.ones(n, dtype=bool)
    first[1:] = cell[order][1:] != cell[order][:-1]
    return np.sort(order[first])


def categories(values) -> tuple[list[str], dict[str, str]]:
    """Display names of ``values`` (None -> '(no label)') and a colour for each distinct name."""
    names = [UNLABELLED if v is None else str(v) for v in values]
    distinct = sorted({n for n in names if n != UNLABELLED}, key=_natural)
    colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(distinct)}
    if UNLABELLED in names:
        colours[UNLABELLED] = UNLABELLED_COLOUR
    return names, colours


def cluster_colours(clusters, labels) -> dict[str, str]:
    """Colours for 'cluster N' names that match the label colours of :func:`categories` where a
    cluster's most common label is not already taken by a larger cluster (so a map coloured by
    cluster reads like the same map coloured by label); the other clusters get unused colours."""
    from collections import Counter

    _, label_colours = categories(labels)
    clusters = [int(c) for c in clusters]
    by_cluster: dict[int, Counter] = {}
    for c, lab in zip(clusters, labels):
        by_cluster.setdefault(c, Counter())[lab] += 1
    out: dict[str, str] = {}
    used: set[str] = set()
    for c in sorted(by_cluster, key=lambda c: (-sum(by_cluster[c].values()), c)):
        lab, _ = by_cluster[c].most_common(1)[0]
        colour = label_colours.get(str(lab)) if lab is not None else None
        if colour is not None and colour not in used:
            out[f"cluster {c}"] = colour
            used.add(colour)
    spare = (col for col in PALETTE if col not in used)
    for c in sorted(by_cluster):
        if f"cluster {c}" not in out:
            out[f"cluster {c}"] = next(spare, PALETTE[c % len(PALETTE)])
    return out


def _natural(s: str):
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def draw_map(ax, x, y, values, *, ids=None, thumbs: dict | None = None, max_thumbs: int = 150, thumb_px: float = 48,
             title: str | None = None, legend_title: str = "label", point_size: float = 14,
             colours: dict[str, str] | None = None) -> int:
    """Draw a scatter coloured by ``values`` on ``ax``, with thumbnails of a spread subset.

    ``thumb_px``: thumbnail side in output pixels; ``colours``: name -> colour, overriding the
    default palette order. Returns how many thumbnails were drawn."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    names, default_colours = categories(values)
    colours = {n: (colours or {}).get(n, c) for n, c in default_colours.items()}
    names_arr = np.array(names, dtype=object)
    for name, colour in colours.items():
        m = names_arr == name
        ax.scatter(x[m], y[m], s=point_size, c=colour, label=f"{name} ({int(m.sum())})", alpha=0.85,
                   edgecolors="none", zorder=2)
    drawn = 0
    if thumbs and ids is not None and max_thumbs > 0:
        ids = np.asarray(ids)
        dpi = ax.figure.dpi
        for i in spread_subset(x, y, max_thumbs):
            im = thumbs.get(int(ids[i]))
            if im is None:
                continue
            zoom = thumb_px / max(im.size) / (dpi / 72.0)  # OffsetImage scales pixels by dpi/72
            box = AnnotationBbox(OffsetImage(np.asarray(im), zoom=zoom), (x[i], y[i]), frameon=True, pad=0.08,
                                 bboxprops=dict(edgecolor=colours[names[i]], linewidth=1.6), zorder=3)
            ax.add_artist(box)
            drawn += 1
    pad_x = (x.max() - x.min()) * 0.06 + 1e-9 if len(x) else 1
    pad_y = (y.max() - y.min()) * 0.06 + 1e-9 if len(y) else 1
    if len(x):
        ax.set_xlim(x.min() - pad_x, x.max() + pad_x)
        ax.set_ylim(y.min() - pad_y, y.max() + pad_y)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=11)
    if len(colours) <= 20:
        ax.legend(title=legend_title, loc="best", fontsize=8, title_fontsize=8, markerscale=1.5, framealpha=0.85)
    return drawn


def render_map(data: "MapResult", out: Path | str | None = None, *, thumbs: dict | None = None,  # noqa: F821
               colour_by: str = "label", max_thumbs: int = 150, size_px: tuple[int, int] = (1400, 1200),
               dpi: int = 100) -> bytes:
    """PNG bytes of one map (a :class:`simsearch.ops.analysis_results.MapResult`); also written
    to ``out`` when given.

    ``colour_by``: 'label' (falls back to 'cluster' when no image has a label) or 'cluster'."""
    from matplotlib.figure import Figure  # no pyplot: Agg canvas, no GUI backend, no global state

    values, legend = colour_values(data.labels, data.clusters, colour_by)
    colours = cluster_colours(data.clusters, data.labels) if legend == "cluster" else None
    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    method = {"tsne": "t-SNE", "pca": "PCA"}.get(data.method, data.method or "map")
    title = f"{data.collection} - {data.backbone} - {method}, {plural(data.n, 'image')}, coloured by {legend}"
    draw_map(ax, data.x, data.y, values, ids=data.ids, thumbs=thumbs, max_thumbs=max_thumbs,
             thumb_px=_thumb_px(size_px, max_thumbs), title=title, legend_title=legend, colours=colours)
    fig.tight_layout()
    png = figure_bytes(fig, "png")
    if out is not None:
        Path(out).write_bytes(png)
    return png


def colour_values(labels, clusters, colour_by: str) -> tuple[list, str]:
    """The category of each point and the legend's title: the labels, or 'cluster N' when asked
    for (or when nothing is labelled)."""
    if colour_by == "label" and any(v is not None for v in labels or []):
        return list(labels), "label"
    return [f"cluster {int(c)}" for c in clusters], "cluster"


def _thumb_px(size_px: tuple[int, int], max_thumbs: int) -> float:
    """Thumbnail side so that a full grid of them covers about 60% of a cell each way."""
    g = max(1, math.isqrt(max(1, max_thumbs)))
    return max(24.0, 0.6 * min(size_px) * 0.85 / g)


def figure_bytes(fig, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    kwargs = {"pil_kwargs": {"quality": 82}} if fmt in ("jpg", "jpeg") else {}
    fig.savefig(buf, format=fmt, **kwargs)
    return buf.getvalue()
