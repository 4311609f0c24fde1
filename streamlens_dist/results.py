"""Merged partial + outlier rows -> the four result tables of CONTRACT.md §7 (as columns),
and the malformed-payload counts per flow (docs/DECISIONS.md).

Rows are ordered as the contract says: flows by first frame, frame types by (flow row, first
frame), outliers by frame number. Floats (mean, std, deviation) are made here, once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .capture.records import TS_BOUND
from .errors import WireFormatError
from .gcpause import without_gc
from .outliers import mean_std, outlier_columns, threshold
from .partial import (
    BYTES,
    FIRST_FRAME,
    FIRST_NS,
    FRAMES,
    LAST_FRAME,
    LAST_NS,
    MAX,
    MIN,
    FlowKey,
    N,
    Partial,
    Q,
    S,
    StreamKey,
    TypeKey,
)
from .series import HIST_VALUES, SERIES_VALUES, Binned, canonical, renumber
from .streamtables import StreamRows, stream_outlier_tables, stream_stats_tables
from .wire import unpack

STAT_COLUMNS = ("frames", "bytes", "first_ns", "last_ns", "first_frame", "last_frame",
                "iat_count", "iat_sum_ns", "iat_min_ns", "iat_max_ns", "iat_mean_ns",
                "iat_std_ns", "outliers")


# Every IAT lies strictly between -MAX_IAT and MAX_IAT (timestamps are inside +-TS_BOUND).
MAX_IAT = 2 * TS_BOUND - 1


def thresholds(part: Partial, k: Fraction) -> tuple[dict[FlowKey, int], dict[TypeKey, int],
                                                    dict[StreamKey, int]]:
    """Per-scope integer thresholds of the scopes that can have outliers: n >= 2, and a
    threshold that an IAT can reach (one above every possible IAT, as for a huge std from
    wildly jumping times, is the same as none, and would not fit the int64 IATs it is
    compared with)."""
    def make(scopes: dict) -> dict:
        out = {}
        for key, st in scopes.items():
            x = threshold(st[N], st[S], st[Q], k)
            if x is not None and x < MAX_IAT:
                out[key] = x
        return out
    return make(part.flows), make(part.types), make(part.streams)


@dataclass
class Tables:
    flows: dict[str, np.ndarray]
    frame_types: dict[str, np.ndarray]
    flow_outliers: dict[str, np.ndarray]
    frame_type_outliers: dict[str, np.ndarray]
    malformed_payloads: dict[str, np.ndarray]
    # docs/STREAMS.md
    streams: dict[str, np.ndarray]
    stream_outliers: dict[str, np.ndarray]
    sequence_gaps: dict[str, np.ndarray]
    tmats: dict[str, np.ndarray]
    ptp_grandmasters: dict[str, np.ndarray]
    # docs/SERIES.md
    flow_series: dict[str, np.ndarray]
    frame_type_series: dict[str, np.ndarray]
    flow_histograms: dict[str, np.ndarray]
    frame_type_histograms: dict[str, np.ndarray]


def malformed_totals(part: Partial) -> dict[str, int]:
    """Frames with a malformed payload per name, over all flows (the store attribute)."""
    out: dict[str, int] = {}
    for (_key, name), (count, _first) in part.malformed.items():
        out[name] = out.get(name, 0) + count
    return dict(sorted(out.items()))


def _stat_columns(stats: list[list]) -> dict[str, np.ndarray]:
    """The STAT_COLUMNS but `outliers` (which the outlier pass decides: `outlier_tables`)."""
    cols: dict[str, list] = {c: [] for c in STAT_COLUMNS[:-1]}
    for st in stats:
        mean, std = mean_std(st[N], st[S], st[Q])
        for name, v in (("frames", st[FRAMES]), ("bytes", st[BYTES]),
                        ("first_ns", st[FIRST_NS]), ("last_ns", st[LAST_NS]),
                        ("first_frame", st[FIRST_FRAME]), ("last_frame", st[LAST_FRAME]),
                        ("iat_count", st[N]), ("iat_sum_ns", st[S]),
                        ("iat_min_ns", st[MIN] if st[N] else 0),
                        ("iat_max_ns", st[MAX] if st[N] else 0),
                        ("iat_mean_ns", mean), ("iat_std_ns", std)):
            cols[name].append(v)
    return {c: np.array(v, dtype=np.float64 if c in ("iat_mean_ns", "iat_std_ns") else np.int64)
            for c, v in cols.items()}


def _strings(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=np.dtypes.StringDType())


@dataclass
class StatsTables:
    """What the merged partial alone decides: every table and column but the outlier tables
    and the `outliers` counts (`outlier_tables` adds those once the outlier pass is done), and
    the row numbering they need. Made first so that the store can be written meanwhile."""

    tables: dict[str, dict[str, np.ndarray]]
    flow_row: dict[FlowKey, int]
    type_row: dict[TypeKey, int]
    fstats: list[list]
    tstats: list[list]
    streams: StreamRows


@without_gc
def stats_tables(part: Partial, iena_keys: tuple = ()) -> StatsTables:
    flow_keys = sorted(part.flows, key=lambda key: part.flows[key][FIRST_FRAME])
    flow_row = {key: i for i, key in enumerate(flow_keys)}
    type_keys = sorted(part.types, key=lambda t: (flow_row[t[0]], part.types[t][FIRST_FRAME]))
    type_row = {key: i for i, key in enumerate(type_keys)}
    fstats = [part.flows[key] for key in flow_keys]
    tstats = [part.types[key] for key in type_keys]
    flows = {"src": _strings([key[0] for key in flow_keys]),
             "dst": _strings([key[1] for key in flow_keys]),
             "kind": _strings([key[2] for key in flow_keys]),
             "protocols": _strings([",".join(sorted(part.hints.get(key, ()))) for key in flow_keys]),
             **_stat_columns(fstats)}
    frame_types = {"flow": np.array([flow_row[t[0]] for t in type_keys], dtype=np.int64),
                   "frame_type": _strings([t[1] for t in type_keys]),
                   **_stat_columns(tstats)}
    bad = sorted((flow_row[key], first, name, count)
                 for (key, name), (count, first) in part.malformed.items())
    malformed = {"flow": np.array([r[0] for r in bad], dtype=np.int64),
                 "problem": _strings([r[2] for r in bad]),
                 "frames": np.array([r[3] for r in bad], dtype=np.int64),
                 "first_frame": np.array([r[1] for r in bad], dtype=np.int64)}
    f_index = np.array([flow_row[key] for key in part.flows], dtype=np.int64)
    t_index = np.array([type_row[key] for key in part.types], dtype=np.int64)
    stream_tables, stream_rows = stream_stats_tables(part, flow_row, _stat_columns, iena_keys)
    tables = {
        "flows": flows, "frame_types": frame_types, "malformed_payloads": malformed,
        **stream_tables,
        "flow_series": _series_table(part.flow_series, f_index, "flow", part.bin_ns),
        "frame_type_series": _series_table(part.type_series, t_index, "frame_type_row",
                                           part.bin_ns),
        "flow_histograms": _hist_table(part.flow_hist, f_index, "flow"),
        "frame_type_histograms": _hist_table(part.type_hist, t_index, "frame_type_row")}
    return StatsTables(tables, flow_row, type_row, fstats, tstats, stream_rows)


@without_gc
def outlier_tables(base: StatsTables, outlier_messages: list[dict]
                   ) -> dict[str, dict[str, np.ndarray]]:
    """The outlier tables and the `outliers` count columns of flows, frame_types and streams,
    from the outlier pass's messages, decoded (`unpack(data, "outliers")`: outliers inside
    chunks and at their seams)."""
    flow_row, type_row, stream_row = base.flow_row, base.type_row, base.streams.row_of
    f_out = _outlier_rows(outlier_messages, "flows", lambda k: flow_row[tuple(k)])
    t_out = _outlier_rows(outlier_messages, "types",
                          lambda k: type_row[(tuple(k[:3]), k[3])])
    s_out = _outlier_rows(outlier_messages, "streams",
                          lambda k: stream_row.get((tuple(k[:3]), *k[3:8]), -1))
    # one frame is one flow's and one frame type's: frame numbers order these two
    f_out = f_out[np.argsort(f_out[:, 1], kind="stable")]
    t_out = t_out[np.argsort(t_out[:, 1], kind="stable")]
    s_counts, stream_outliers = stream_outlier_tables(base.streams, s_out[s_out[:, 0] >= 0])
    return {"flows": {"outliers": _counts(f_out, len(base.fstats))},
            "frame_types": {"outliers": _counts(t_out, len(base.tstats))},
            "streams": {"outliers": s_counts},
            "flow_outliers": outlier_columns(f_out, _nsq(base.fstats), "flow"),
            "frame_type_outliers": outlier_columns(t_out, _nsq(base.tstats), "frame_type_row"),
            "stream_outliers": stream_outliers}


def _outlier_rows(messages: list[dict], kind: str, row_of: Callable[[list], int]
                  ) -> np.ndarray:
    """The `kind` rows of all messages (chunktask.outlier_message), in message order, as
    int64 (table row of the scope, frame, ts, iat); `row_of` maps a message's key to it."""
    parts = [np.empty((0, 4), dtype=np.int64)]
    for m in messages:
        try:
            keys, data = m[kind]["keys"], m[kind]["rows"]
            rows = np.frombuffer(data, dtype="<i8").reshape(-1, 4).astype(np.int64)
            scope = np.array([row_of(k) for k in keys], dtype=np.int64)
            rows[:, 0] = scope[rows[:, 0]]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise WireFormatError(f"malformed outlier message ({kind}): {exc!r}") from exc
        parts.append(rows)
    return np.concatenate(parts)


def _nsq(stats: list[list]) -> list[tuple[int, int, int]]:
    return [(st[N], st[S], st[Q]) for st in stats]


def _counts(rows: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(rows[:, 0], minlength=n).astype(np.int64)


def build_tables(part: Partial, k: Fraction, outlier_messages: list[bytes],
                 iena_keys: tuple = ()) -> Tables:
    """All tables at once (`stats_tables`, then `outlier_tables`)."""
    base = stats_tables(part, iena_keys)
    return tables_of(base, outlier_tables(base, [unpack(m, "outliers")
                                                 for m in outlier_messages]))


def tables_of(base: StatsTables, outliers: dict[str, dict[str, np.ndarray]]) -> Tables:
    tables = {name: dict(cols) for name, cols in base.tables.items()}
    for name, cols in outliers.items():
        tables.setdefault(name, {}).update(cols)
    return Tables(**tables)


def _series_table(t: Binned, index: np.ndarray, row_col: str, bin_ns: int
                  ) -> dict[str, np.ndarray]:
    """Rows by (scope row, bin); min and max are 0 in bins where no IAT ends (like the
    summary tables' iat_min_ns of a one-frame flow)."""
    c = renumber(canonical(t, SERIES_VALUES), index).cols
    has = c["n"] > 0
    return {row_col: c["scope"], "bin_start_ns": c["bin"] * bin_ns, "frames": c["frames"],
            "bytes": c["bytes"], "iat_count": c["n"], "iat_sum_ns": c["s"],
            "iat_min_ns": np.where(has, c["mn"], 0), "iat_max_ns": np.where(has, c["mx"], 0),
            "iat_sumsq_hi": c["qh"], "iat_sumsq_lo": c["ql"]}


def _hist_table(t: Binned, index: np.ndarray, row_col: str) -> dict[str, np.ndarray]:
    c = renumber(canonical(t, HIST_VALUES), index).cols
    return {row_col: c["scope"], "bin": c["bin"], "count": c["count"]}


# What a summary row of a protocol stream holds, and what each column is called wherever it
# is shown (terminal tables, the HTML report; `--json` uses the keys): one definition, so that
# "late" means IAT outliers everywhere and "out of order" the sequence counter's.
STREAM_SUMMARY = {"messages": "messages", "outliers": "late", "lost": "lost",
                  "gap_count": "gaps", "out_of_order": "out of order",
                  "iat_mean_ns": "mean IAT ms"}
_SCOPE = ("frames", "outliers", "iat_count", "iat_mean_ns", "iat_std_ns", "iat_max_ns")


def _row(table: dict[str, np.ndarray], i: int, cols: tuple[str, ...]) -> dict[str, Any]:
    return {c: table[c][i].item() if hasattr(table[c][i], "item") else str(table[c][i])
            for c in cols}


def _ranked(table: dict[str, np.ndarray], keys: tuple[str, ...], n: int) -> list[int]:
    """Rows by `keys`, largest first; ties in row order (first seen first)."""
    cols = [np.asarray(table[k], dtype=np.int64) for k in keys]
    rows = len(cols[0]) if cols else 0
    return sorted(range(rows), key=lambda i: (*(-int(c[i]) for c in cols), i))[:n]


def top_flows(t: Tables, n: int = 5) -> list[dict[str, Any]]:
    """The `n` flows with the most outliers (ties: more frames first, then first seen)."""
    f = t.flows
    return [{"src": str(f["src"][i]), "dst": str(f["dst"][i]), "kind": str(f["kind"][i]),
             "protocols": str(f["protocols"][i]), **_row(f, i, _SCOPE)}
            for i in _ranked(f, ("outliers", "frames"), n)]


def top_frame_types(t: Tables, n: int = 5) -> list[dict[str, Any]]:
    """The `n` (flow, frame type) rows with the most outliers (ties as top_flows)."""
    ft, f = t.frame_types, t.flows
    return [{"src": str(f["src"][ft["flow"][i]]), "dst": str(f["dst"][ft["flow"][i]]),
             "frame_type": str(ft["frame_type"][i]), **_row(ft, i, _SCOPE)}
            for i in _ranked(ft, ("outliers", "frames"), n)]


def top_streams(t: Tables, n: int = 5, by: str = "lost") -> list[dict[str, Any]]:
    """The `n` protocol streams with the most lost messages (`by="lost"`; ties: more late
    frames, then more messages) or the most late frames (`by="outliers"`; ties: more lost)."""
    st, f = t.streams, t.flows
    then = "outliers" if by == "lost" else "lost"
    return [{"src": str(f["src"][st["flow"][i]]), "dst": str(f["dst"][st["flow"][i]]),
             "protocol": str(st["protocol"][i]), "stream": str(st["stream"][i]),
             **_row(st, i, tuple(STREAM_SUMMARY))}
            for i in _ranked(st, (by, then, "messages"), n)]


def results_summary(attrs: dict[str, Any], t: Tables) -> dict[str, Any]:
    """What `analyze --json` and `report --json` print about a capture's results."""
    return {"attrs": attrs, "flows": len(t.flows["src"]),
            "outliers": len(t.flow_outliers["frame"]), "top_flows": top_flows(t),
            "top_frame_types": top_frame_types(t),
            "streams": len(t.streams["flow"]), "sequence_gaps": len(t.sequence_gaps["stream_row"]),
            "top_streams_by_loss": top_streams(t, by="lost"),
            "top_streams_by_outliers": top_streams(t, by="outliers")}


def json_ready(value: Any) -> Any:
    """`value` as plain JSON data: NaN and infinities (the mean of a one-frame flow) become
    None, numpy scalars and arrays Python numbers and lists, tuples lists. What every
    `--json` output and every `to_dict`/`summary()` returns, so that strict parsers
    (JavaScript's JSON.parse, jq) read it."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
