"""The stored IAT series and histograms (docs/SERIES.md) as xarray objects for notebooks.

The store keeps series in long form (non-empty bins only); `dense_series` spreads the chosen
scopes over a common time axis (empty bins: 0 frames, NaN IAT statistics), `lazy_series`
leaves the long form on disk as dask arrays for stores too big to load, and `histograms`
gives counts per scope and fixed logarithmic bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .outliers import mean_std
from .series import HIST_BINS, LO_BITS, SUM_LOST

KINDS = {"flow": ("flow_series", "flow_histograms", "flow"),
         "frame_type": ("frame_type_series", "frame_type_histograms", "frame_type_row")}
MAX_CELLS = 20_000_000  # scopes x bins of a dense result; beyond it ask for rows or lazy


def tables_of(kind: str) -> tuple[str, str, str]:
    """(series table, histogram table, scope column) of 'flow' or 'frame_type'."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return KINDS[kind]


def bin_stats(n: np.ndarray, s: np.ndarray, hi: np.ndarray, lo: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (sample) of the IATs of each series row, from the exact integers."""
    mean = np.full(len(n), np.nan)
    std = np.full(len(n), np.nan)
    for i, (ni, si, h, lw) in enumerate(zip(n.tolist(), s.tolist(), hi.tolist(), lo.tolist(),
                                            strict=True)):
        if ni and h != SUM_LOST:  # SUM_LOST: the bin's IAT sum passed int64
            mean[i], std[i] = mean_std(ni, si, (h << LO_BITS) + lw)
            if h < 0:  # series.LOST: the bin's sum of squares passed 2^124 ns^2
                std[i] = np.nan
    return mean, std


def dense_series(table: Any, bin_ns: int, kind: str, rows: Sequence[int] | None = None) -> Any:
    """Dataset with dims (kind, time) for the scope rows `rows` (default: all)."""
    import xarray as xr

    _, _, col = tables_of(kind)
    if rows is not None:
        table = table[table[col].isin(list(rows))]
    scopes = np.array(sorted(set(table[col].tolist())) if rows is None else list(rows), np.int64)
    b = table["bin_start_ns"].to_numpy() // bin_ns
    first, last = (int(b.min()), int(b.max())) if len(b) else (0, -1)
    nbins = last - first + 1
    if len(scopes) * nbins > MAX_CELLS:
        raise ValueError(f"{len(scopes)} scopes x {nbins} bins is too big to make dense: "
                         "choose rows=[...] or a wider bin, or use lazy=True")
    at = np.searchsorted(scopes, table[col].to_numpy())
    cell = (at, b - first)

    def grid(values: np.ndarray, fill: float | int, dtype: Any) -> np.ndarray:
        out = np.full((len(scopes), nbins), fill, dtype=dtype)
        out[cell] = values
        return out

    n = table["iat_count"].to_numpy()
    mean, std = bin_stats(n, table["iat_sum_ns"].to_numpy(), table["iat_sumsq_hi"].to_numpy(),
                          table["iat_sumsq_lo"].to_numpy())
    has = n > 0
    data = {c: ((kind, "time"), grid(table[c].to_numpy(), 0, np.int64))
            for c in ("frames", "bytes", "iat_count", "iat_sum_ns", "iat_sumsq_hi",
                      "iat_sumsq_lo")}
    for c in ("iat_min_ns", "iat_max_ns"):
        data[c] = ((kind, "time"), grid(np.where(has, table[c].to_numpy(), np.nan), np.nan,
                                        np.float64))
    data["iat_mean_ns"] = ((kind, "time"), grid(mean, np.nan, np.float64))
    data["iat_std_ns"] = ((kind, "time"), grid(std, np.nan, np.float64))
    starts = (first + np.arange(nbins, dtype=np.int64)) * bin_ns
    return xr.Dataset(data, coords={kind: scopes, "time": starts.astype("datetime64[ns]"),
                                    "bin_start_ns": ("time", starts)},
                      attrs={"bin_ns": bin_ns})


def lazy_series(group: Any, kind: str) -> Any:
    """The long-form series table as a Dataset of dask arrays over dim 'row' (nothing read)."""
    import dask.array as da
    import xarray as xr

    name, _, _ = tables_of(kind)
    t = group[name]
    return xr.Dataset({c: ("row", da.from_zarr(t[c])) for c in sorted(t.array_keys())})


def histograms(table: Any, edges: Sequence[int], kind: str, nscopes: int) -> Any:
    """DataArray of IAT counts, dims (kind, bin), with each bin's [lower, upper) in ns
    (bin 0 has no lower edge, the last no upper: -1)."""
    import xarray as xr

    _, _, col = tables_of(kind)
    counts = np.zeros((nscopes, HIST_BINS), np.int64)
    counts[table[col].to_numpy(), table["bin"].to_numpy()] = table["count"].to_numpy()
    e = np.asarray(edges, np.int64)
    return xr.DataArray(counts, dims=(kind, "bin"), name="iat_count",
                        coords={kind: np.arange(nscopes), "bin": np.arange(HIST_BINS),
                                "lower_ns": ("bin", np.r_[-1, e]),
                                "upper_ns": ("bin", np.r_[e, -1])})
