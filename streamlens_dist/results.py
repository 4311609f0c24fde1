"""Merged partial + outlier rows -> the four result tables of CONTRACT.md §7 (as columns),
and the malformed-payload counts per flow (docs/DECISIONS.md).

Rows are ordered as the contract says: flows by first frame, frame types by (flow row, first
frame), outliers by frame number. Floats (mean, std, deviation) are made here, once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .capture.records import TS_BOUND
from .dissect.names import TYPE_NAMES, hint_names
from .errors import WireFormatError
from .flowkeys import flow_bytes, flow_columns, key_array, type_bytes, type_parts, type_text
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
    N,
    Partial,
    Q,
    S,
    StreamKey,
    referenced_flows,
)
from .scopetable import ScopeTable, ScopeValues, q_ints
from .series import HIST_VALUES, SERIES_VALUES, Binned, canonical, renumber
from .streamtables import (
    StreamRows,
    reported_streams,
    stream_outlier_tables,
    stream_stats_tables,
)
from .wire import unpack

STAT_COLUMNS = ("frames", "bytes", "first_ns", "last_ns", "first_frame", "last_frame",
                "iat_count", "iat_sum_ns", "iat_min_ns", "iat_max_ns", "iat_mean_ns",
                "iat_std_ns", "outliers")


# Every IAT lies strictly between -MAX_IAT and MAX_IAT (timestamps are inside +-TS_BOUND).
MAX_IAT = 2 * TS_BOUND - 1


def thresholds(part: Partial, k: Fraction) -> tuple[ScopeValues, ScopeValues,
                                                    dict[StreamKey, int]]:
    """Per-scope integer thresholds of the scopes that can have outliers: n >= 2, and a
    threshold that an IAT can reach (one above every possible IAT, as for a huge std from
    wildly jumping times, is the same as none, and would not fit the int64 IATs it is
    compared with). Flows and frame types get one only where their own largest IAT reaches
    it: the others have no outliers, and most of them are left out by a vectorised bound
    before the exact threshold is made (`_may_have_outliers`)."""
    def make(scopes: dict) -> dict:
        out = {}
        for key, st in scopes.items():
            x = threshold(st[N], st[S], st[Q], k)
            if x is not None and x < MAX_IAT:
                out[key] = x
        return out

    def table(t: ScopeTable) -> ScopeValues:
        rows = _may_have_outliers(t, k)
        has, out = [], []
        for r, n, s, q in zip(rows.tolist(), t.cols["n"][rows].tolist(),
                              t.sum_iat()[rows].tolist(), _q_of(t, rows), strict=True):
            x = threshold(n, s, q, k)
            if x is not None and x < MAX_IAT and x <= t.cols["max"][r]:
                has.append(r)
                out.append(x)
        return ScopeValues(t.kb[has], np.array(out, np.int64), t.text)
    # streams the tables never show get none: they would only make pass 2 re-read chunks
    return table(part.flow_table()), table(part.type_table()), \
        make({key: part.streams[key] for key in reported_streams(part)})


_ULP = 2.0 ** -52


def _may_have_outliers(t: ScopeTable, k: Fraction) -> np.ndarray:
    """The rows (n >= 2) whose largest IAT may reach the threshold: the exact one is made
    only for these. An outlier exceeds mean + k * std, so a row is left out when its largest
    IAT is at most its mean (n * max <= S, in exact int64 where that fits) or below a float
    lower bound of mean + k * std: every rounding of the float work is taken against it."""
    c = t.cols
    rows = np.flatnonzero(c["n"] >= 2)
    if not len(rows) or c["max"].dtype == object:
        return rows
    s = t.sum_iat()[rows]
    if s.dtype == object:
        return rows
    n, mx = c["n"][rows], c["max"][rows]
    fits = (n < 1 << 31) & (np.abs(mx) < 1 << 31)
    rows, n, mx, s = (x[~(fits & (n * mx <= s))] for x in (rows, n, mx, s))
    nf, sf = n.astype(np.float64), s.astype(np.float64)
    q0, q1, q2 = (x[rows].astype(np.float64) for x in t.q)
    qf = q0 + q1 * 2.0 ** 64 + q2 * 2.0 ** 128
    nq, s2 = nf * qf, sf * sf
    d_lo = np.maximum(nq - s2 - 16 * _ULP * (nq + s2), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_lo = sf / nf - np.abs(sf / nf) * 1e-12 - 1.0
        std_lo = np.sqrt(d_lo / (nf * (nf - 1.0))) * (1.0 - 1e-12)
        low = mean_lo + float(k) * (1.0 - 1e-12) * std_lo - 1.0
    keep = ~(mx.astype(np.float64) * (1.0 + 1e-12) + 1.0 < low)  # NaN bounds keep the row
    return rows[keep]


def _q_of(t: ScopeTable, rows: np.ndarray) -> list[int]:
    return q_ints(*(x[rows] for x in t.q))


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


class ScopeSums:
    """(n, S, Q) of the result rows of a table (`rows`: table row by result row), made as
    Python ints for the rows asked for (the deviations of outliers), not for every scope."""

    def __init__(self, t: ScopeTable, rows: np.ndarray) -> None:
        self.t, self.rows = t, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, int, int]:
        st = self.t.stats(int(self.rows[i]))
        return st[6], st[7], st[8]


_EXACT = 1 << 53  # integers below this are floats exactly: one division rounds correctly


def _mean_std(t: ScopeTable, rows: np.ndarray, n: np.ndarray, s: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """`outliers.mean_std` of the rows, column-wise where the integers are exact in
    float64 and int64 (the same correctly rounded division, the same root), else per row."""
    mean, std = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    if s.dtype == object:
        slow = np.ones(len(rows), bool)
    else:
        q0, q1, q2 = (x[rows] for x in t.q)
        small_s = np.abs(s) < 3_037_000_499  # s * s < 2^63
        nq_fits = (q1 == 0) & (q2 == 0) & (q0 < np.uint64(1 << 62))
        n2 = np.maximum(n, 1)
        nq_fits &= q0.astype(np.int64) <= ((1 << 63) - 1) // n2
        d = np.where(nq_fits & small_s, n * q0.astype(np.int64) - s * s, -1)
        m = n * (n - 1)
        one = (n >= 1) & (np.abs(s) < _EXACT) & (n < _EXACT)
        two = (n >= 2) & (d >= 0) & (d < _EXACT) & (m < _EXACT)
        mean[one] = s[one].astype(np.float64) / n[one].astype(np.float64)
        std[two] = np.sqrt(d[two].astype(np.float64) / m[two].astype(np.float64))
        slow = ((n >= 1) & ~one) | ((n >= 2) & ~two)
    slow = np.flatnonzero(slow)
    if len(slow):  # exact Python ints, one correctly rounded division each, as mean_std
        sr = rows[slow]
        for i, m, x, q in zip(slow.tolist(), n[slow].tolist(), s[slow].tolist(), _q_of(t, sr),
                              strict=True):
            mean[i], std[i] = mean_std(m, x, q)
    return mean, std


def _table_columns(t: ScopeTable, rows: np.ndarray) -> tuple[dict[str, np.ndarray], ScopeSums]:
    """`_stat_columns` of table rows `rows` (in that order), and their (n, S, Q)."""
    c = {name: v[rows] for name, v in t.cols.items()}
    s = t.sum_iat()[rows]
    mean, std = _mean_std(t, rows, c["n"], s)
    has = c["n"] > 0
    cols = {"frames": c["frames"], "bytes": c["bytes"], "first_ns": c["first_ns"],
            "last_ns": c["last_ns"], "first_frame": c["first_frame"],
            "last_frame": c["last_frame"], "iat_count": c["n"],
            "iat_sum_ns": np.array(s, dtype=np.int64),
            "iat_min_ns": np.array(np.where(has, c["min"], 0), dtype=np.int64),
            "iat_max_ns": np.array(np.where(has, c["max"], 0), dtype=np.int64),
            "iat_mean_ns": mean, "iat_std_ns": std}
    return {k: np.asarray(v, dtype=np.int64) if k not in ("iat_mean_ns", "iat_std_ns") else v
            for k, v in cols.items()}, ScopeSums(t, rows)


def _strings(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=np.dtypes.StringDType())


class RowOf:
    """Text key -> the result row of its scope (from the byte keys: no dict of all keys)."""

    def __init__(self, table: ScopeTable, result_row: np.ndarray) -> None:
        self.table, self.result_row = table, result_row
        self._bytes = type_bytes if table.text is type_text else flow_bytes
        self._known: dict = {}

    def prime(self, keys: list) -> None:
        """Look `keys` up at once, for the `[key]` lookups that follow."""
        self._known.update(zip(keys, self.rows(keys).tolist(), strict=True))

    def __getitem__(self, key: Any) -> int:
        got = self._known.get(key)
        return int(self.rows([key])[0]) if got is None else got

    def rows(self, keys: list) -> np.ndarray:
        r = self.table.keyidx.rows_of(key_array([self._bytes(k) for k in keys]))
        if (r < 0).any():
            raise KeyError(keys[int(np.flatnonzero(r < 0)[0])])
        return self.result_row[r]


@dataclass
class StatsTables:
    """What the merged partial alone decides: every table and column but the outlier tables
    and the `outliers` counts (`outlier_tables` adds those once the outlier pass is done), and
    the row numbering they need. Made first so that the store can be written meanwhile."""

    tables: dict[str, dict[str, np.ndarray]]
    flow_row: RowOf  # text key -> result row
    type_row: RowOf
    fstats: ScopeSums  # (n, S, Q) per result row
    tstats: ScopeSums
    streams: StreamRows


@without_gc
def stats_tables(part: Partial, iena_keys: tuple = ()) -> StatsTables:
    ft, tt = part.flow_table(), part.type_table()
    forder = np.argsort(ft.cols["first_frame"], kind="stable")
    f_index = np.argsort(forder)  # a table row -> its row in the result
    flow_row = RowOf(ft, f_index)
    code, tflow = type_parts(tt.kb)
    if (code >= 0).all():  # frame types of real flows: no text per row but the type's name
        t_flow = f_index[ft.keyidx.rows_of(tflow)]
        t_names = [TYPE_NAMES[c] for c in code.tolist()]
    else:
        t_flow = np.fromiter((flow_row[t[0]] for t in tt.key_list), np.int64, len(tt))
        t_names = [t[1] for t in tt.key_list]
    torder = np.lexsort((tt.cols["first_frame"], t_flow))
    t_index = np.argsort(torder)
    type_row = RowOf(tt, t_index)
    fcols, fstats = _table_columns(ft, forder)
    tcols, tstats = _table_columns(tt, torder)
    bits = ft.cols["hints"][forder].tolist()
    src, dst, kind = flow_columns(ft.kb[forder])
    flows = {"src": src, "dst": dst, "kind": kind,
             "protocols": _strings([_hint_text(b) for b in bits]),
             **fcols}
    frame_types = {"flow": t_flow[torder],
                   "frame_type": _strings([t_names[r] for r in torder.tolist()]),
                   **tcols}
    flow_row.prime(referenced_flows(part))  # streams, TMATS, grandmasters, malformed counts
    bad = sorted((flow_row[key], first, name, count)
                 for (key, name), (count, first) in part.malformed.items())
    malformed = {"flow": np.array([r[0] for r in bad], dtype=np.int64),
                 "problem": _strings([r[2] for r in bad]),
                 "frames": np.array([r[3] for r in bad], dtype=np.int64),
                 "first_frame": np.array([r[1] for r in bad], dtype=np.int64)}
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
    f_out = _outlier_rows(outlier_messages, "flows",
                          lambda keys: flow_row.rows([tuple(k) for k in keys]))
    t_out = _outlier_rows(outlier_messages, "types",
                          lambda keys: type_row.rows([(tuple(k[:3]), k[3]) for k in keys]))
    s_out = _outlier_rows(outlier_messages, "streams", lambda keys: np.array(
        [stream_row.get((tuple(k[:3]), *k[3:8]), -1) for k in keys], dtype=np.int64))
    # one frame is one flow's and one frame type's: frame numbers order these two
    f_out = f_out[np.argsort(f_out[:, 1], kind="stable")]
    t_out = t_out[np.argsort(t_out[:, 1], kind="stable")]
    s_counts, stream_outliers = stream_outlier_tables(base.streams, s_out[s_out[:, 0] >= 0])
    return {"flows": {"outliers": _counts(f_out, len(base.fstats))},
            "frame_types": {"outliers": _counts(t_out, len(base.tstats))},
            "streams": {"outliers": s_counts},
            "flow_outliers": outlier_columns(f_out, base.fstats, "flow"),
            "frame_type_outliers": outlier_columns(t_out, base.tstats, "frame_type_row"),
            "stream_outliers": stream_outliers}


def _outlier_rows(messages: list[dict], kind: str, row_of: Callable[[list], np.ndarray]
                  ) -> np.ndarray:
    """The `kind` rows of all messages (chunktask.outlier_message), in message order, as
    int64 (table row of the scope, frame, ts, iat); `row_of` maps a message's keys to theirs."""
    parts = [np.empty((0, 4), dtype=np.int64)]
    for m in messages:
        try:
            keys, data = m[kind]["keys"], m[kind]["rows"]
            rows = np.frombuffer(data, dtype="<i8").reshape(-1, 4).astype(np.int64)
            scope = np.asarray(row_of(keys), dtype=np.int64).reshape(len(keys))
            rows[:, 0] = scope[rows[:, 0]]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise WireFormatError(f"malformed outlier message ({kind}): {exc!r}") from exc
        parts.append(rows)
    return np.concatenate(parts)


@functools.cache
def _hint_text(bits: int) -> str:
    return ",".join(sorted(hint_names(bits)))


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
