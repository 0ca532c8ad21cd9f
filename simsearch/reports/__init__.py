"""Static outputs of the analysis: 2-D map plots (PNG) and the backbone comparison report (HTML).

Everything here draws with matplotlib's Agg backend and never reaches the network: images are
read from the ``thumbnails`` table and embedded inline, so a report is one self-contained file.
"""

from .map_plot import load_thumbnails, render_map, spread_subset
from .compare_report import render_report, write_report

__all__ = ["load_thumbnails", "render_map", "spread_subset", "render_report", "write_report"]
