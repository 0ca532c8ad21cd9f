"""The backbone comparison report: one self-contained HTML file (charts and thumbnails inline as
base64 data URIs, CSS inline) and a JSON file beside it with the figures behind every panel.

Input is a :class:`simsearch.ops.analysis_results.Comparison`; the HTML comes from
``templates/compare.html`` (Jinja2, autoescaped).
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timezone
from pathlib import Path

from simsearch.ops.analysis_results import BackbonePanel, Comparison, NeighbourOverlap

from .map_plot import PALETTE, cluster_colours, draw_map, figure_bytes
from .map_plot import load_thumbnails
from simsearch import __version__

TEMPLATE = "compare.html"
MAP_PANEL_PX = (720, 600)
MAP_THUMBS = 64  # per panel: an 8 x 8 grid keeps a 400-image map readable and the file a few MB


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _fig(w_px: int, h_px: int, dpi: int = 100):
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state

    return Figure(figsize=(w_px / dpi, h_px / dpi), dpi=dpi)


def _colours(names: list[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def silhouette_chart(panels: list[BackbonePanel]) -> bytes | None:
    """One chart: silhouette against k, a line per available backbone, its best k marked."""
    avail = [p for p in panels if p.available and p.silhouette is not None]
    if not avail:
        return None
    colours = _colours([p.backbone for p in avail])
    fig = _fig(900, 420)
    ax = fig.add_subplot(1, 1, 1)
    for p in avail:
        sw = p.silhouette
        c = colours[p.backbone]
        ax.plot(sw.ks, sw.scores, marker="o", ms=4, lw=1.8, color=c, label=p.backbone)
        ax.plot([sw.best_k], [sw.score_at(sw.best_k)], marker="*", ms=16, color=c, mec="black", mew=0.6)
    ax.set_xlabel("k (number of clusters)")
    ax.set_ylabel("silhouette")
    ax.set_xticks(sorted({k for p in avail for k in p.silhouette.ks}))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return figure_bytes(fig, "png")


def score_rows(panels: list[BackbonePanel]) -> list[dict]:
    """Per available backbone with label scores: the numbers of the scores panel (None when missing)."""
    rows = []
    for p in panels:
        lab = p.labels if p.available else None
        if lab is None:
            continue
        best = lab.at_best_k
        at_n = lab.at_n_labels
        rows.append({
            "backbone": p.backbone,
            "k_labels": at_n and at_n.k, "ari_labels": at_n and at_n.ari, "nmi_labels": at_n and at_n.nmi,
            "homogeneity_labels": at_n and at_n.homogeneity, "completeness_labels": at_n and at_n.completeness,
            "k_best": best.k, "ari_best": best.ari, "nmi_best": best.nmi,
            "precision": lab.knn_precision, "precision_k": lab.precision_k,
        })
    return rows


def scores_chart(rows: list[dict]) -> bytes | None:
    """Grouped bars: ARI and NMI (at k = number of labels and at the best k) and precision@10."""
    if not rows:
        return None
    import numpy as np

    metrics = [("ari_labels", "ARI\nk = labels"), ("nmi_labels", "NMI\nk = labels"), ("ari_best", "ARI\nbest k"),
               ("nmi_best", "NMI\nbest k"), ("precision", "precision@10\n(kNN)")]
    colours = _colours([r["backbone"] for r in rows])
    fig = _fig(900, 420)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(rows)
    xs = np.arange(len(metrics))
    for j, r in enumerate(rows):
        vals = [r[m] if r[m] is not None else 0.0 for m, _ in metrics]
        bars = ax.bar(xs - 0.4 + width * (j + 0.5), vals, width * 0.92, color=colours[r["backbone"]], label=r["backbone"])
        for bar, v in zip(bars, vals):
            ax.annotate(f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(xs)
    ax.set_xticklabels([name for _, name in metrics], fontsize=9)
    ax.set_ylim(min(0.0, *(r[m] or 0.0 for r in rows for m, _ in metrics)) - 0.02, 1.2)
    ax.set_yticks([t / 5 for t in range(6)])
    ax.axhline(0, color="black", lw=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9, loc="upper center", ncol=min(len(rows), 4), frameon=False)
    fig.tight_layout()
    return figure_bytes(fig, "png")


def map_panels(panels: list[BackbonePanel], thumbs: dict) -> list[dict]:
    """Per available backbone with a map: two images (coloured by label, by cluster), with thumbnails."""
    out = []
    for p in panels:
        m = p.map if p.available else None
        if m is None:
            continue
        has_labels = any(v is not None for v in m.labels)
        images = {}
        for key, values, legend in (("by_label", list(m.labels), "label"),
                                    ("by_cluster", [f"cluster {int(c)}" for c in m.clusters], "cluster")):
            fig = _fig(*MAP_PANEL_PX)
            ax = fig.add_subplot(1, 1, 1)
            title = "coloured by label" if legend == "label" else f"coloured by cluster (k = {m.k})"
            if legend == "label" and not has_labels:
                title = "coloured by label (no image has a label)"
            colours = cluster_colours(m.clusters, m.labels) if legend == "cluster" else None
            draw_map(ax, m.x, m.y, values, ids=m.ids, thumbs=thumbs, max_thumbs=MAP_THUMBS, thumb_px=46,
                     title=title, legend_title=legend, point_size=10, colours=colours)
            fig.tight_layout()
            images[key] = data_uri(figure_bytes(fig, "png"), "image/png")
        out.append({"backbone": p.backbone, **images})
    return out


def overlap_matrix(names: list[str], overlap: list[NeighbourOverlap]) -> dict:
    """Symmetric matrix of mean top-10 Jaccard overlaps (diagonal 1), as table cells with a shade."""
    value = {(o.a, o.b): o.jaccard for o in overlap}
    value.update({(o.b, o.a): o.jaccard for o in overlap})
    rows = []
    for a in names:
        cells = []
        for b in names:
            v = 1.0 if a == b else value.get((a, b))
            if v is None:
                cells.append({"text": "-", "colour": "#ffffff", "value": None})
            else:
                # white (0) to a saturated blue (1)
                t = max(0.0, min(1.0, v))
                r, g, bl = (int(255 - t * (255 - c)) for c in (66, 133, 244))
                cells.append({"text": f"{v:.3f}", "colour": f"rgb({r},{g},{bl})", "value": v})
        rows.append({"name": a, "cells": cells})
    return {"names": names, "rows": rows}


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def render_report(comparison: Comparison, thumbs: dict | None = None, *, generated_at: str | None = None) -> str:
    """The HTML of the report for a comparison; ``thumbs``: image id -> PIL image."""
    import jinja2

    thumbs = thumbs or {}
    panels = comparison.backbones
    rows = score_rows(panels)
    sil = silhouette_chart(panels)
    sc = scores_chart(rows)
    available = [p for p in panels if p.available]
    backbones = []
    for p in panels:
        scored = p.available and p.n_images is not None
        backbones.append({"backbone": p.backbone, "available": p.available, "reason": p.reason,
                          "dim": p.dim, "input_size": p.input_size, "n_images": p.n_images if scored else None,
                          "best_k": p.best_k if scored else None, "per_image": _duration(p.embed_seconds_per_image),
                          "total": _duration(p.embed_seconds_total)})
    fmt_rows = [{k: (_fmt(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows]
    precision_k = next((r["precision_k"] for r in rows if r.get("precision_k")), 10)
    if not available:
        scores_note = "No backbone is available."
    else:
        scores_note = "No label scores: the images need at least two distinct labels (ingest with --labels folders or a CSV)."
    ctx = {
        "collection": comparison.collection, "n_images": comparison.n_images, "sample": comparison.sample,
        "generated_at": generated_at or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "backbones": backbones, "available": available,
        "charts": {"silhouette": data_uri(sil, "image/png") if sil else None,
                   "scores": data_uri(sc, "image/png") if sc else None},
        "scores": fmt_rows, "scores_note": scores_note, "precision_k": precision_k,
        "maps": map_panels(panels, thumbs),
        "overlap_matrix": overlap_matrix([p.backbone for p in available], comparison.neighbour_overlap),
        "version": __version__,
    }
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template(TEMPLATE).render(r=ctx)


def json_path_for(html_path: Path | str) -> Path:
    """report.html -> report.json (beside it)."""
    return Path(html_path).with_suffix(".json")


def write_report(ctx, comparison: Comparison, out: Path | str) -> dict:
    """Write the HTML report to ``out`` and its data to ``out`` with a .json suffix. Returns the paths."""
    out = Path(out)
    ids = {int(i) for p in comparison.backbones if p.map is not None for i in p.map.ids}
    thumbs = load_thumbnails(ctx, ids, max_side=96) if ids else {}
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    html = render_report(comparison, thumbs, generated_at=generated)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    jpath = json_path_for(out)
    if jpath == out:  # --out report.json: keep both
        jpath = out.with_name(out.name + ".json")
    data = {"generated_at": generated, "html": str(out), **comparison.to_dict()}
    jpath.write_text(json.dumps(data, indent=1, default=_json_default), encoding="utf-8")
    return {"html": str(out), "json": str(jpath), "html_bytes": len(html.encode("utf-8"))}


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
