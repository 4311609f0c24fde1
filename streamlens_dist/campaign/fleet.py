"""Fleet tables: per flow key and per (flow key, frame type) across the captures of a
campaign, and the same per tail, pooled exactly from per-capture summaries.

A capture's summary keeps, per flow and per (flow, frame type), the exact integer IAT sums of
its merged partial (count n, sum S, sum of squares Q, min, max), frames, bytes and its outlier
count (outliers are decided per capture, against that capture's own mean and std). Pooling
adds the integers, so the pooled mean and std are those of all the captures' IATs together;
IATs never span two captures. Nothing here re-reads a capture.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..outliers import mean_std
from ..partial import Q

# one scope of one capture: frames, bytes, n, S, Q, min, max, outliers
FRAMES, BYTES, N, S, SQ, MIN, MAX, OUTLIERS = range(8)


def capture_summary(summary: Any) -> dict:
    """The pooling inputs of one analysed capture (an api.Summary with `merged`)."""
    t, part = summary.tables, summary.merged
    f = t.flows
    keys = [(str(a), str(b), str(c)) for a, b, c in zip(f["src"], f["dst"], f["kind"],
                                                         strict=True)]

    def scope(cols: dict, i: int, q: int) -> list:
        n = int(cols["iat_count"][i])
        return [int(cols["frames"][i]), int(cols["bytes"][i]), n, int(cols["iat_sum_ns"][i]), q,
                int(cols["iat_min_ns"][i]) if n else None,
                int(cols["iat_max_ns"][i]) if n else None, int(cols["outliers"][i])]

    flows = [[*k, *scope(f, i, part.flows[k][Q])] for i, k in enumerate(keys)]
    ft = t.frame_types
    types = []
    for i, (row, name) in enumerate(zip(ft["flow"].tolist(), ft["frame_type"], strict=True)):
        key = (keys[row], str(name))
        types.append([*keys[row], str(name), *scope(ft, i, part.types[key][Q])])
    return {"flows": flows, "types": types}


def record_to_attrs(record: dict) -> dict:
    """A commit record as JSON-safe attributes (sums of squares, unbounded ints, as text)."""
    body = dict(record)
    if "fleet" in body:
        fl = body["fleet"]
        body["fleet"] = {"flows": [[*r[:7], str(r[7]), *r[8:]] for r in fl["flows"]],
                         "types": [[*r[:8], str(r[8]), *r[9:]] for r in fl["types"]]}
    return body


def record_from_attrs(attrs: dict) -> dict:
    body = dict(attrs)
    if "fleet" in body:
        fl = body["fleet"]
        body["fleet"] = {"flows": [[*r[:7], int(r[7]), *r[8:]] for r in fl["flows"]],
                         "types": [[*r[:8], int(r[8]), *r[9:]] for r in fl["types"]]}
    return body


def _add(acc: list | None, sc: list) -> list:
    if acc is None:
        return [*sc, 1]
    out = [acc[i] + sc[i] for i in (FRAMES, BYTES, N, S, SQ)]
    lo = [x for x in (acc[MIN], sc[MIN]) if x is not None]
    hi = [x for x in (acc[MAX], sc[MAX]) if x is not None]
    return [*out, min(lo) if lo else None, max(hi) if hi else None,
            acc[OUTLIERS] + sc[OUTLIERS], acc[-1] + 1]


FLEET_STATS = ("captures", "frames", "bytes", "iat_count", "iat_sum_ns", "iat_min_ns",
               "iat_max_ns", "iat_mean_ns", "iat_std_ns", "outliers", "outlier_rate")
CAPTURE_STATS = ("frames", "iat_count", "iat_mean_ns", "iat_std_ns", "outliers")


def _stat_cols(rows: list[list]) -> dict[str, np.ndarray]:
    cols: dict[str, list] = {c: [] for c in FLEET_STATS}
    for acc in rows:
        mean, std = mean_std(acc[N], acc[S], acc[SQ])
        # a pooled sum beyond int64 (captures whose times span centuries, only from hostile
        # timestamps) is stored as INT64_MIN; the mean and std come from the exact sums
        total = acc[S] if -(1 << 63) <= acc[S] < 1 << 63 else -(1 << 63)
        vals = (acc[-1], acc[FRAMES], acc[BYTES], acc[N], total,
                acc[MIN] if acc[N] else 0, acc[MAX] if acc[N] else 0, mean, std,
                acc[OUTLIERS], acc[OUTLIERS] / acc[N] if acc[N] else math.nan)
        for c, v in zip(FLEET_STATS, vals, strict=True):
            cols[c].append(v)
    floats = ("iat_mean_ns", "iat_std_ns", "outlier_rate")
    return {c: np.array(v, dtype=np.float64 if c in floats else np.int64)
            for c, v in cols.items()}


def _strings(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=np.dtypes.StringDType())


def fleet_tables(captures: list[tuple[str, dict]]) -> dict[str, dict[str, np.ndarray]]:
    """`captures`: (tail, fleet summary) per capture, in capture-index row order. Rows: flow
    keys sorted, frame types by (flow row, name), per-capture rows by (scope row, capture)."""
    flows: dict[tuple, list] = {}
    types: dict[tuple, list] = {}
    tflows: dict[tuple, list] = {}
    ttypes: dict[tuple, list] = {}
    per_flow: list[tuple[tuple, int, list]] = []
    per_type: list[tuple[tuple, int, list]] = []
    for ci, (tail, fl) in enumerate(captures):
        for r in fl["flows"]:
            key, sc = tuple(r[:3]), r[3:]
            flows[key] = _add(flows.get(key), sc)
            tflows[(tail, key)] = _add(tflows.get((tail, key)), sc)
            per_flow.append((key, ci, sc))
        for r in fl["types"]:
            key, sc = (tuple(r[:3]), r[3]), r[4:]
            types[key] = _add(types.get(key), sc)
            ttypes[(tail, key)] = _add(ttypes.get((tail, key)), sc)
            per_type.append((key, ci, sc))
    flow_keys = sorted(flows)
    flow_row = {k: i for i, k in enumerate(flow_keys)}
    type_keys = sorted(types, key=lambda k: (flow_row[k[0]], k[1]))
    type_row = {k: i for i, k in enumerate(type_keys)}
    tflow_keys = sorted(tflows)
    tflow_row = {k: i for i, k in enumerate(tflow_keys)}
    ttype_keys = sorted(ttypes, key=lambda k: (tflow_row[(k[0], k[1][0])], k[1][1]))

    def per_capture(rows: list, row_of: dict, col: str) -> dict[str, np.ndarray]:
        rows = sorted(rows, key=lambda r: (row_of[r[0]], r[1]))
        out: dict[str, list] = {col: [], "capture": [], **{c: [] for c in CAPTURE_STATS}}
        for key, ci, sc in rows:
            mean, std = mean_std(sc[N], sc[S], sc[SQ])
            for c, v in ((col, row_of[key]), ("capture", ci), ("frames", sc[FRAMES]),
                         ("iat_count", sc[N]), ("iat_mean_ns", mean), ("iat_std_ns", std),
                         ("outliers", sc[OUTLIERS])):
                out[c].append(v)
        return {c: np.array(v, dtype=np.float64 if c in ("iat_mean_ns", "iat_std_ns")
                            else np.int64) for c, v in out.items()}

    return {
        "fleet_flows": {"src": _strings([k[0] for k in flow_keys]),
                        "dst": _strings([k[1] for k in flow_keys]),
                        "kind": _strings([k[2] for k in flow_keys]),
                        **_stat_cols([flows[k] for k in flow_keys])},
        "fleet_frame_types": {"flow": np.array([flow_row[k[0]] for k in type_keys], np.int64),
                              "frame_type": _strings([k[1] for k in type_keys]),
                              **_stat_cols([types[k] for k in type_keys])},
        "fleet_flow_captures": per_capture(per_flow, flow_row, "flow"),
        "fleet_frame_type_captures": per_capture(per_type, type_row, "frame_type_row"),
        "tail_flows": {"tail": _strings([k[0] for k in tflow_keys]),
                       "src": _strings([k[1][0] for k in tflow_keys]),
                       "dst": _strings([k[1][1] for k in tflow_keys]),
                       "kind": _strings([k[1][2] for k in tflow_keys]),
                       **_stat_cols([tflows[k] for k in tflow_keys])},
        "tail_frame_types": {"tail_flow": np.array([tflow_row[(k[0], k[1][0])]
                                                    for k in ttype_keys], np.int64),
                             "frame_type": _strings([k[1][1] for k in ttype_keys]),
                             **_stat_cols([ttypes[k] for k in ttype_keys])},
    }
