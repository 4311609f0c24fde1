"""The report's bokeh figures: IAT timelines, IAT histograms, the campaign heatmap.

Figures get plain numpy columns only (bokeh sends numeric arrays as base64 binary, about
11 bytes a float64), so a figure's size is its number of bins or capped points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from bokeh.models import (
    AdaptiveTicker,
    ColumnDataSource,
    FixedTicker,
    HoverTool,
    NumeralTickFormatter,
    Range1d,
)
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


# Tick budgets of the 380 x 230 px histograms. Labels such as "100 µs" are about 40 px wide
# and the x axis about 290 px long; the y axis is about 150 px high.
HIST_X_TICKS = 4  # desired: bokeh's adaptive ticker then draws 2..6 at any zoom width
HIST_Y_TICKS = 5  # at most
HIST_MIN_DECADES = 2  # narrowest x zoom: always two labelled decades in view
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def iat_label(decade: int) -> str:
    """10^decade seconds in the unit a reader thinks in: "100 ns", "1 µs", ..., "1000 s"."""
    for exp, unit in ((0, "s"), (-3, "ms"), (-6, "µs"), (-9, "ns")):
        if exp <= decade <= exp + 2 or (exp == 0 and decade == 3):
            return f"{10 ** (decade - exp)} {unit}"
    return f"10{str(decade).translate(_SUPERSCRIPT)} s"


def count_label(decade: int) -> str:
    """10^decade as a short integer: "1", "10", "100", "1k", ..., "100M", "1G", ..."""
    for exp, suffix in ((9, "G"), (6, "M"), (3, "k")):
        if decade >= exp:
            return f"{10 ** (decade - exp)}{suffix}"
    return str(10 ** decade)


def _count_axis(top: int) -> tuple[float, list[int], list[int]]:
    """The y (count) axis for a largest bar of `top` IATs: its upper end, major ticks and
    minor ticks. The upper end is the power of ten above `top`, at least 10, so that even a
    single IAT has the labelled decade 1..10 (a log range narrower than two decades makes
    bokeh's LogTicker fall back to crowded linear ticks like 0.5, 0.6, ...). The ticks are
    whole decades only, thinned to at most HIST_Y_TICKS: the axis does not zoom, so they are
    fixed here and labelled as integers."""
    top_decade = max(1, len(str(max(top, 1))))  # digits: exact, unlike log10
    step = -(-top_decade // (HIST_Y_TICKS - 1))  # ceil: 0, step, ... <= top_decade
    major = list(range(0, top_decade + 1, step))
    if step == 1:  # a decade is >= 30 px: room for 2 and 5, but not for all of 2..9
        minor = [m * 10 ** d for d in range(top_decade) for m in (2, 5)]
    else:
        minor = [10 ** d for d in range(top_decade + 1) if d not in major]
    return float(10 ** top_decade), major, minor


def histogram_figure(title: str, counts: np.ndarray, edges_ns: Sequence[int],
                     x_range: Range1d) -> figure:
    """IAT counts on the store's fixed log bins; the y axis is log too so that the few late
    IATs in the tail stay visible next to the mode.

    x is drawn in log10(seconds) on a linear axis (x_range from `histogram_range`): bokeh's
    LogTicker puts up to 10 labels on a wide log range whatever desired_num_ticks says, and on
    a zoom below two decades switches to linear ticks that bunch at the top of each decade.
    In log10 units an adaptive ticker over whole decades spaces its labels evenly at any zoom.
    """
    left, right = _bin_edges_s(edges_ns)
    keep = counts > 0
    src = ColumnDataSource({"left": np.log10(left[keep]), "right": np.log10(right[keep]),
                            "left_s": left[keep], "right_s": right[keep],
                            "count": counts[keep].astype(np.int64),
                            "top": counts[keep].astype(np.float64)})
    total = int(counts.sum())
    y_end, y_major, y_minor = _count_axis(int(counts.max()) if len(counts) else 0)
    # counts are integers >= 1: bars from 0.5 show a single IAT on the log axis
    p = figure(title=f"{title}: {fmt_int(total)} IAT{'' if total == 1 else 's'}",
               y_axis_type="log", height=230, width=380, x_range=x_range,
               y_range=Range1d(0.5, y_end), x_axis_label="IAT (log scale)", y_axis_label="count",
               tools="xwheel_zoom,xpan,reset,save")
    r = p.quad(left="left", right="right", bottom=0.5, top="top", source=src,
               fill_color=BIN_COLOR, line_color=BIN_COLOR)
    # label every decade the range can be panned to (its bounds), not only the initial view
    lo, hi = x_range.bounds if isinstance(x_range.bounds, tuple) else (x_range.start, x_range.end)
    p.xaxis.ticker = AdaptiveTicker(min_interval=1, mantissas=[1, 2, 5], num_minor_ticks=0,
                                    desired_num_ticks=HIST_X_TICKS)
    p.xaxis.major_label_overrides = {d: iat_label(d) for d in
                                     range(int(np.floor(lo)), int(np.ceil(hi)) + 1)}
    p.yaxis.ticker = FixedTicker(ticks=[10 ** d for d in y_major], minor_ticks=y_minor)
    p.yaxis.major_label_overrides = {10 ** d: count_label(d) for d in y_major}
    p.add_tools(HoverTool(renderers=[r], tooltips=[
        ("IAT s", "@left_s{0.000000} .. @right_s{0.000000}"), ("count", "@count")]))
    return p


def histogram_range(edges_ns: Sequence[int]) -> Range1d:
    """The x range shared by all histograms, in log10(seconds): bounded to the bins, and no
    narrower than HIST_MIN_DECADES so that a zoom keeps at least two labelled decades."""
    left, right = _bin_edges_s(edges_ns)
    lo, hi = float(np.log10(left[0])), float(np.log10(right[-1]))
    return Range1d(lo, hi, bounds=(lo, hi), min_interval=HIST_MIN_DECADES)


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
