"""The report's bokeh figures: IAT timelines, IAT histograms, the campaign heatmap.

Figures get plain numpy columns only (bokeh sends numeric arrays as base64 binary, about
11 bytes a float64), so a figure's size is its number of bins or capped points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter, Range1d
from bokeh.palettes import Inferno256
from bokeh.plotting import figure
from bokeh.transform import linear_cmap

from .page import fmt_int
from .tables import Timeline

NS_PER_MS = 1e6
BIN_COLOR, OUTLIER_COLOR = "#3b6fb6", "#c0392b"
FEW_BINS = 60


def _title_width(t: Timeline) -> str:
    if t.bin_ns is None:
        return "no time series in this store: outliers only"
    return f"bins of {t.bin_ns / 1e9:g} s"


def timeline_figure(t: Timeline, frames: int) -> figure:
    """Mean IAT per bin (line) inside its min/max band, the flow's outliers as points and its
    outlier threshold (mean + k*std) as a dashed line. x: time (UTC), y: IAT in ms."""
    title = f"{t.label}: {fmt_int(frames)} frames, {fmt_int(t.outliers_total)} outliers"
    if len(t.outliers) < t.outliers_total:
        title += f" ({fmt_int(len(t.outliers))} largest deviations drawn)"
    p = figure(title=f"{title}; {_title_width(t)}", x_axis_type="datetime", height=260,
               width=1180, y_axis_label="IAT (ms)", tools="xpan,xwheel_zoom,box_zoom,reset,save")
    b = t.bins
    if len(b):
        start = b["bin_start_ns"].to_numpy(dtype=np.float64) / NS_PER_MS
        left = b["left_ns"].to_numpy(dtype=np.float64) / NS_PER_MS
        right = b["right_ns"].to_numpy(dtype=np.float64) / NS_PER_MS
        band = ColumnDataSource({
            "start": start, "left": left, "right": right,
            "lo": b["iat_min_ns"].to_numpy(dtype=np.float64) / NS_PER_MS,
            "hi": b["iat_max_ns"].to_numpy(dtype=np.float64) / NS_PER_MS,
            "x": (left + right) / 2, "mean": b["mean_ns"].to_numpy(dtype=np.float64) / NS_PER_MS,
            "n": b["iat_count"].to_numpy(dtype=np.int64)})
        p.quad(left="left", right="right", bottom="lo", top="hi", source=band,
               fill_color=BIN_COLOR, fill_alpha=0.18, line_alpha=0, legend_label="min..max per bin")
        mean = p.line("x", "mean", source=band, color=BIN_COLOR, line_width=1.5,
                      legend_label="mean per bin")
        if len(b) <= FEW_BINS:  # a line through one or two bins is hardly visible
            p.scatter("x", "mean", source=band, color=BIN_COLOR, size=4,
                      legend_label="mean per bin")
        p.add_tools(HoverTool(renderers=[mean], tooltips=[
            ("bin", "@start{%F %T}"), ("mean ms", "@mean{0.000}"), ("min ms", "@lo{0.000}"),
            ("max ms", "@hi{0.000}"), ("IATs", "@n")], formatters={"@start": "datetime"}))
    o = t.outliers
    if len(o):
        pts = ColumnDataSource({
            "x": o["ts_ns"].to_numpy(dtype=np.float64) / NS_PER_MS,
            "y": o["iat_ns"].to_numpy(dtype=np.float64) / NS_PER_MS,
            "frame": o["frame"].to_numpy(dtype=np.int64),
            "dev": o["deviation"].to_numpy(dtype=np.float64)})
        r = p.scatter("x", "y", source=pts, size=6, color=OUTLIER_COLOR, legend_label="outlier")
        p.add_tools(HoverTool(renderers=[r], tooltips=[
            ("frame", "@frame"), ("time", "@x{%F %T.%3N}"), ("IAT ms", "@y{0.000}"),
            ("deviation (std)", "@dev{0.0}")], formatters={"@x": "datetime"}))
    xs = [v for v in (left[0] if len(b) else None, right[-1] if len(b) else None,
                      o["ts_ns"].min() / NS_PER_MS if len(o) else None,
                      o["ts_ns"].max() / NS_PER_MS if len(o) else None) if v is not None]
    if xs and t.threshold_ns is not None:
        # drawn as lines over the data's time extent (a Span would not enter the auto range)
        x = [min(xs), max(xs)]
        p.line(x, [t.mean_ns / NS_PER_MS] * 2, color="#555", line_dash="dotted",
               legend_label="flow mean")
        p.line(x, [t.threshold_ns / NS_PER_MS] * 2, color=OUTLIER_COLOR, line_dash="dashed",
               line_alpha=0.7, legend_label="outlier threshold (mean + k std)")
    if p.legend:
        # beside the plot, not over it: the outliers are often in the top left corner
        p.legend.click_policy = "hide"
        p.add_layout(p.legend[0], "right")
    return p


def _bin_edges_s(edges_ns: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Left and right edges of the 92 histogram bins in seconds. The underflow bin (IAT below
    the first edge, zero and negative IATs too) is drawn as the decade below it and the
    overflow bin as the decade above the last edge: a log axis has no 0 or infinity."""
    e = np.asarray(edges_ns, dtype=np.float64) / 1e9
    left = np.concatenate([[e[0] / 10], e])
    right = np.concatenate([e, [e[-1] * 10]])
    return left, right


def histogram_figure(title: str, counts: np.ndarray, edges_ns: Sequence[int],
                     x_range: Range1d) -> figure:
    """IAT counts on the store's fixed log bins; the y axis is log too so that the few late
    IATs in the tail stay visible next to the mode."""
    left, right = _bin_edges_s(edges_ns)
    keep = counts > 0
    src = ColumnDataSource({"left": left[keep], "right": right[keep],
                            "count": counts[keep].astype(np.int64),
                            "top": counts[keep].astype(np.float64)})
    p = figure(title=f"{title}: {fmt_int(counts.sum())} IATs", x_axis_type="log",
               y_axis_type="log", height=230, width=380, x_range=x_range,
               x_axis_label="IAT (s)", y_axis_label="count", tools="xwheel_zoom,xpan,reset,save")
    # counts are integers >= 1: bars from 0.5 show a single IAT on the log axis
    r = p.quad(left="left", right="right", bottom=0.5, top="top", source=src,
               fill_color=BIN_COLOR, line_color=BIN_COLOR)
    p.y_range.start = 0.5
    p.add_tools(HoverTool(renderers=[r], tooltips=[("IAT s", "@left{0.000000} .. @right{0.000000}"),
                                                   ("count", "@count")]))
    return p


def histogram_range(edges_ns: Sequence[int]) -> Range1d:
    left, right = _bin_edges_s(edges_ns)
    return Range1d(float(left[0]), float(right[-1]))


def heatmap_figure(cells: pd.DataFrame, flows: list[str], captures: list[str]) -> figure:
    """Outlier rate (outliers / IATs) per flow (rows) and capture (columns); a flow absent
    from a capture has no cell, one without IATs there a grey cell."""
    high = float(np.nanmax(cells["rate"])) if cells["rate"].notna().any() else 0.0
    src = ColumnDataSource({c: cells[c].to_numpy() for c in
                            ("flow", "capture", "rate", "outliers", "iat_count", "pct")})
    p = figure(title="Outlier rate per flow and capture", x_range=captures,
               y_range=list(reversed(flows)), height=max(260, 22 * len(flows) + 140),
               width=max(500, min(1240, 34 * len(captures) + 320)), tools="hover,save",
               tooltips=[("flow", "@flow"), ("capture", "@capture"), ("outliers", "@outliers"),
                         ("IATs", "@iat_count"), ("outlier rate", "@pct")],
               x_axis_location="above")
    # light = no outliers, dark = the worst rate in the figure
    mapper = linear_cmap("rate", tuple(reversed(Inferno256)), low=0.0, high=high or 1.0,
                         nan_color="#d0d4da")
    r = p.rect(x="capture", y="flow", width=0.95, height=0.95, source=src, fill_color=mapper,
               line_color=None)
    p.add_layout(r.construct_color_bar(title="outlier rate",
                                       formatter=NumeralTickFormatter(format="0.0%")), "right")
    p.xaxis.major_label_orientation = 0.9
    p.grid.grid_line_color = None
    return p
