"""What the HTML report shows of a capture's results, as small pandas/numpy selections.

Everything here is bounded by a cap or by the number of time bins, never by the number of
frames: the report's size must not grow with the capture (issue 8). Nothing here imports
bokeh, so the selections are tested without rendering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..series import SUM_LOST
from ..store import LAYOUT

# A timeline of more bins than this is re-binned into wider bins. Series sums merge exactly
# (counts and sums add, min/max of min/max), so a coarser bin is what the engine would have
# stored with that width.
MAX_TIMELINE_BINS = 2000


def optional_table(res: Any, name: str) -> pd.DataFrame | None:
    """Table `name` of a Results, or None when the store predates it (older stores have no
    series or histogram tables; the report then leaves those parts out and says so)."""
    if name not in LAYOUT:
        return None
    try:
        res.group[name]
    except KeyError:
        return None
    return res.table(name)


def flow_label(src: Any, dst: Any) -> str:
    return f"{src} > {dst}"


def worst_flows(flows: pd.DataFrame, n: int) -> list[int]:
    """Rows of the n flows with the most outliers (ties: more frames first, then row)."""
    order = sorted(range(len(flows)), key=lambda i: (-int(flows["outliers"].iat[i]),
                                                     -int(flows["frames"].iat[i]), i))
    return order[:n]


@dataclass
class Timeline:
    """One flow's IAT over time: bins (start ns, width ns, mean/min/max IAT ns) and the
    drawn outliers (the largest deviations, at most `cap`) of `outliers_total`."""

    flow: int
    label: str
    bin_ns: int | None  # None: the store has no series
    bins: pd.DataFrame
    outliers: pd.DataFrame
    outliers_total: int
    mean_ns: float
    threshold_ns: float | None


def _coarsen(rows: pd.DataFrame, bin_ns: int, max_bins: int) -> tuple[pd.DataFrame, int]:
    first, last = int(rows["bin_start_ns"].iat[0]), int(rows["bin_start_ns"].iat[-1])
    factor = max(1, math.ceil(((last - first) // bin_ns + 1) / max_bins))
    if factor == 1:
        return rows, bin_ns
    width = bin_ns * factor
    key = first + (rows["bin_start_ns"].to_numpy() - first) // width * width
    lost = {"lost": ("lost", "any")} if "lost" in rows else {}  # bins without a mean
    out = rows.assign(bin_start_ns=key).groupby("bin_start_ns", sort=True).agg(
        iat_count=("iat_count", "sum"), iat_sum_ns=("iat_sum_ns", "sum"), **lost,
        iat_min_ns=("iat_min_ns", "min"), iat_max_ns=("iat_max_ns", "max")).reset_index()
    return out, width


def timeline(flows: pd.DataFrame, series: pd.DataFrame | None, outliers: pd.DataFrame,
             flow: int, bin_ns: int | None, sigma: float, cap: int,
             max_bins: int = MAX_TIMELINE_BINS) -> Timeline:
    row = flows.iloc[flow]
    mine = outliers[outliers["flow"] == flow]
    drawn = mine.nlargest(cap, "deviation") if len(mine) > cap else mine
    std = float(row["iat_std_ns"])
    threshold = float(row["iat_mean_ns"]) + sigma * std if np.isfinite(std) else None
    bins = pd.DataFrame({"bin_start_ns": [], "iat_count": [], "iat_sum_ns": [],
                         "iat_min_ns": [], "iat_max_ns": []})
    width = bin_ns
    if series is not None and bin_ns:
        rows = series[(series["flow"] == flow) & (series["iat_count"] > 0)]
        # float sums: a drawing needs no exact mean, and wide bins of wildly jumping times
        # could pass int64; a bin whose sum is lost (series.SUM_LOST) has no mean
        rows = rows.assign(iat_sum_ns=rows["iat_sum_ns"].astype(np.float64),
                           lost=rows["iat_sumsq_hi"] == SUM_LOST)
        if len(rows):
            bins, width = _coarsen(rows.sort_values("bin_start_ns"), bin_ns, max_bins)
            bins = bins.assign(iat_sum_ns=bins["iat_sum_ns"].where(~bins["lost"]))
    # bins clipped to the flow's first and last frame: a capture shorter than a bin is drawn
    # over its own time span, not over the whole bin
    start = bins["bin_start_ns"].astype("int64")
    bins = bins.assign(mean_ns=bins["iat_sum_ns"] / bins["iat_count"].where(
        bins["iat_count"] > 0), left_ns=start.clip(lower=int(row["first_ns"])),
        right_ns=(start + (width or 0)).clip(upper=int(row["last_ns"])))
    return Timeline(flow, flow_label(row["src"], row["dst"]), width if series is not None
                    else None, bins, drawn.sort_values("ts_ns"), len(mine), float(row["iat_mean_ns"]),
                    threshold)


def pooled_histograms(hist: pd.DataFrame, frame_types: pd.DataFrame) -> dict[str, np.ndarray]:
    """{frame type name: counts per bin (92)} summed over flows, names by outliers of the
    frame type (summed over flows) then name."""
    names = frame_types["frame_type"].to_numpy()[hist["frame_type_row"].to_numpy()]
    out: dict[str, np.ndarray] = {}
    for name, part in hist.assign(name=names).groupby("name", sort=True):
        counts = np.zeros(92, np.int64)
        np.add.at(counts, part["bin"].to_numpy(), part["count"].to_numpy())
        out[str(name)] = counts
    outl = frame_types.groupby("frame_type")["outliers"].sum()
    return dict(sorted(out.items(), key=lambda kv: (-int(outl.get(kv[0], 0)), kv[0])))


def scope_histogram(hist: pd.DataFrame, key: str, row: int) -> np.ndarray:
    part = hist[hist[key] == row]
    counts = np.zeros(92, np.int64)
    np.add.at(counts, part["bin"].to_numpy(), part["count"].to_numpy())
    return counts


def worst_outliers(outliers: pd.DataFrame, flows: pd.DataFrame, cap: int) -> pd.DataFrame:
    """The `cap` flow outliers of largest deviation, with their flow's src > dst."""
    top = outliers.nlargest(cap, "deviation") if len(outliers) > cap \
        else outliers.sort_values("deviation", ascending=False, kind="stable")
    labels = [flow_label(flows["src"].iat[f], flows["dst"].iat[f]) for f in top["flow"]]
    return top.assign(flow_label=labels)


def stream_label(streams: pd.DataFrame, flows: pd.DataFrame, row: int) -> tuple[str, str]:
    """(flow src > dst, protocol stream) of a streams row."""
    flow = int(streams["flow"].iat[row])
    name = f"{streams['protocol'].iat[row]} {streams['stream'].iat[row]}"
    tmats = str(streams["tmats_name"].iat[row])
    return flow_label(flows["src"].iat[flow], flows["dst"].iat[flow]), \
        f"{name} ({tmats})" if tmats else name


def worst_gaps(gaps: pd.DataFrame, streams: pd.DataFrame, flows: pd.DataFrame,
               cap: int) -> pd.DataFrame:
    """The `cap` sequence gaps with the most missing messages, with flow and stream."""
    top = gaps.sort_values(["missing", "span_ns"], ascending=False, kind="stable").head(cap)
    names = [stream_label(streams, flows, int(r)) for r in top["stream_row"]]
    return top.assign(flow_label=[n[0] for n in names], stream_label=[n[1] for n in names])


def worst_stream_row(streams: pd.DataFrame) -> int | None:
    """The stream Results.late_frames() picks: the most outliers, first row on ties."""
    if not len(streams) or int(streams["outliers"].max()) == 0:
        return None
    return int(np.argmax(streams["outliers"].to_numpy()))
