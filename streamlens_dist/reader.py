"""Reading stores back: `open_results(store)` for notebooks and `streamlens-dist report`.

A single-capture store opens as `Results` (its attributes and every table of store.LAYOUT as a
pandas DataFrame, the IAT series and histograms as xarray objects), a campaign store as
`CampaignResults` (its tables, and each capture's `Results`). Tables are read when first
asked for, column by column, straight from the Zarr arrays; nothing is recomputed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .capture.source import Storage, is_url
from .errors import SettingsError
from .results import Tables, json_ready, results_summary
from .store import LAYOUT, SCHEMA, open_store

if TYPE_CHECKING:  # opened through store.open_store, which imports zarr when used
    import zarr


def _frame(group: zarr.Group, columns: dict[str, str]) -> Any:
    import pandas as pd

    data = {}
    for col in columns:
        values = group[col][:]
        data[col] = values.astype(object) if values.dtype.kind == "T" else values
    return pd.DataFrame(data)


class Results:
    """One capture's results. `attrs` as written; `table(name)` (or the attribute of that
    name: `flows`, `frame_types`, `flow_outliers`, ..., `ptp_grandmasters`) a DataFrame."""

    def __init__(self, group: zarr.Group, path: str) -> None:
        self.group, self.path = group, path
        self.attrs = dict(group.attrs)
        if self.attrs.get("schema") != SCHEMA:
            raise SettingsError(f"{path} is not a streamlens-dist result store")
        self._frames: dict[str, Any] = {}

    def table(self, name: str) -> Any:
        if name not in LAYOUT:
            raise KeyError(f"no table {name!r}; the tables are {', '.join(LAYOUT)}")
        if name not in self._frames:
            self._need(name)
            self._frames[name] = _frame(self.group[name], LAYOUT[name])
        return self._frames[name]

    def __getattr__(self, name: str) -> Any:
        if name in LAYOUT:
            return self.table(name)
        raise AttributeError(name)

    @functools.cached_property
    def tables(self) -> Tables:
        """Every table as {column: numpy array}, as `Summary.tables` holds them (read on first
        use); tables a store predates (series, histograms) come back empty."""
        def read(t: str, cols: dict[str, str]) -> dict[str, np.ndarray]:
            if t not in self.group:
                return {c: np.zeros(0, dtype=object if d == "string" else d)
                        for c, d in cols.items()}
            return {c: self.group[t][c][:] for c in cols}
        return Tables(**{t: read(t, cols) for t, cols in LAYOUT.items()})

    def series(self, kind: str = "flow", rows: Sequence[int] | None = None,
               lazy: bool = False) -> Any:
        """The IAT series of flows (`kind="flow"`, rows of `flows`) or of (flow, frame type)
        scopes (`"frame_type"`, rows of `frame_types`) as an xarray Dataset with dims
        (kind, time): frames, bytes, IAT count/sum/min/max/mean/std per bin; `rows` picks
        scopes. `lazy=True`: the stored long form (one row per non-empty bin) as dask arrays,
        for stores too big to load."""
        from .seriesview import dense_series, lazy_series, tables_of

        name, _, _ = tables_of(kind)
        self._need(name)
        if lazy:
            return lazy_series(self.group, kind)
        return dense_series(self.table(name), int(self.attrs["series_bin_ns"]), kind, rows)

    def histograms(self, kind: str = "flow") -> Any:
        """IAT histograms on the fixed logarithmic bins: an xarray DataArray with dims
        (kind, bin) and each bin's lower_ns/upper_ns."""
        from .seriesview import histograms, tables_of

        _, name, _ = tables_of(kind)
        self._need(name)
        scopes = len(self.table("flows" if kind == "flow" else "frame_types"))
        return histograms(self.table(name), self.attrs["histogram_edges_ns"], kind, scopes)

    def _need(self, name: str) -> None:
        if name not in self.group:
            raise KeyError(f"{self.path} has no {name} table: it was written by streamlens-dist "
                           f"{self.attrs.get('software_version', '?')}, before series were "
                           "stored; analyse the capture again")

    def late_frames(self, stream_row: int | None = None) -> Any:
        """Outlier rows of one protocol stream (streams table row), or of the stream with the
        most outliers, joined with its flow: the late frames to look at first."""
        st = self.table("streams")
        if stream_row is None:
            if not len(st):
                return self.table("stream_outliers").iloc[0:0]
            stream_row = int(np.argmax(st["outliers"].to_numpy()))
        out = self.table("stream_outliers")
        rows = out[out["stream_row"] == stream_row].copy()
        flow = self.table("flows").iloc[int(st["flow"].iloc[stream_row])]
        rows.insert(1, "stream", f"{st['protocol'].iloc[stream_row]} {st['stream'].iloc[stream_row]}")
        rows.insert(1, "flow", f"{flow['src']} > {flow['dst']}")
        return rows.reset_index(drop=True)  # 0..n-1 like every other table

    def summary(self) -> dict[str, Any]:
        """What `streamlens-dist report STORE --json` prints: attributes, counts, the worst
        flows and streams."""
        return json_ready({"store": self.path, **results_summary(self.attrs, self.tables)})


class CampaignResults:
    """A campaign store: `attrs`, its tables (`capture_index`, `fleet_flows`, ...,
    `tail_frame_types`) as DataFrames, and `capture(capture_id)` -> Results."""

    def __init__(self, group: zarr.Group, path: str, storage: Storage | None) -> None:
        from .campaign.cstore import LAYOUT as CAMPAIGN_LAYOUT

        self.group, self.path, self.storage = group, path, storage
        self.attrs = dict(group.attrs)
        self.layout = CAMPAIGN_LAYOUT
        self._frames: dict[str, Any] = {}

    def table(self, name: str) -> Any:
        if name not in self.layout:
            raise KeyError(f"no table {name!r}; the tables are {', '.join(self.layout)}")
        if name not in self._frames:
            self._frames[name] = _frame(self.group[name], self.layout[name])
        return self._frames[name]

    def __getattr__(self, name: str) -> Any:
        if name in self.__dict__.get("layout", {}):
            return self.table(name)
        raise AttributeError(name)

    def captures(self) -> list[str]:
        return [str(c) for c in self.table("capture_index")["capture_id"]]

    def capture(self, capture_id: str) -> Results:
        """That capture's results: those of its last successful analysis, which stay while its
        files are missing, after a failed re-analysis and after `add --replace` until the new
        definition is analysed (capture_index's status says which). Raises
        UnknownCaptureError or NoCaptureResultsError (KeyErrors, campaign/cstore.py)."""
        from .campaign.cstore import NoCaptureResultsError, UnknownCaptureError

        index = self.table("capture_index")
        rows = index[index["capture_id"] == capture_id]
        if not len(rows):
            raise UnknownCaptureError(
                f"no capture {capture_id!r} in {self.path}, which has {len(index)} captures: "
                f"list them with `streamlens-dist campaign status {self.path}` or "
                "CampaignResults.captures()")
        if capture_id not in self.group["captures"]:
            status, error = rows["status"].iloc[0], rows["error"].iloc[0]
            todo = {"failed": "fix its files, then `streamlens-dist campaign run "
                              f"{self.path}` (or `campaign run --retry-failed` to try the "
                              "same files again)",
                    "files-missing": "put its files back (or give their new paths with "
                                     "`campaign add --replace`), then `streamlens-dist "
                                     f"campaign run {self.path}`"}.get(
                status, f"analyse it with `streamlens-dist campaign run {self.path}`")
            raise NoCaptureResultsError(
                f"capture {capture_id!r} has no results: its status is {status}"
                f"{f' ({error})' if error else ''}; {todo}")
        return Results(self.group["captures"][capture_id], f"{self.path}/captures/{capture_id}")

    def summary(self, top: int = 10, min_iats: int = 1000) -> dict[str, Any]:
        """Captures by status, and the fleet's and each tail's flows by outlier rate, only
        those with at least `min_iats` IATs: a flow seen 13 times with one late frame would
        otherwise top the list. `below_min_iats` counts the flows left out. JSON-ready (NaN
        as None)."""
        index = self.table("capture_index")
        out: dict[str, Any] = {"store": self.path, "attrs": self.attrs,
                               "captures": index["status"].value_counts().to_dict(),
                               "min_iats": min_iats, "below_min_iats": {}}
        for name in ("fleet_flows", "tail_flows"):
            t = self.table(name)
            rate = t["outlier_rate"].fillna(-1.0).to_numpy()
            ranked = np.flatnonzero(t["iat_count"].to_numpy() >= min_iats).tolist()
            order = sorted(ranked, key=lambda i: (-rate[i], i))[:top]
            out[name] = [t.iloc[i].to_dict() for i in order]
            out["below_min_iats"][name] = len(t) - len(ranked)
        return json_ready(out)


def open_results(store: str | os.PathLike, storage_options: Storage | None = None
                 ) -> Results | CampaignResults:
    """A result store (single capture or campaign), local or at an fsspec URL."""
    from .campaign.cstore import SCHEMA as CAMPAIGN_SCHEMA

    path = os.fspath(store)
    if not is_url(path) and not os.path.exists(os.path.join(path, "zarr.json")):
        raise SettingsError(f"{path}: no result store here")
    try:
        group = open_store(path, storage_options)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise SettingsError(f"{path}: not a result store ({exc})") from exc
    schema = group.attrs.get("schema")
    if schema == CAMPAIGN_SCHEMA:
        return CampaignResults(group, path, storage_options)
    if schema == SCHEMA:
        return Results(group, path)
    raise SettingsError(f"{path}: not a streamlens-dist store (schema {schema!r})")
