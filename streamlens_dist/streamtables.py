"""Merged stream state -> the tables of docs/STREAMS.md: streams, stream_outliers,
sequence_gaps, tmats, ptp_grandmasters (as columns). Sequence accounting is evaluated here,
once, from the merged runs (seqstate.account)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from . import seqstate
from .dissect.names import TYPE_NAMES
from .dissect.ptp import NAMES as PTP_NAMES
from .dissect.streams import PROTOCOLS
from .outliers import outlier_columns
from .partial import FIRST_FRAME, N, Partial, Q, S, StreamKey
from .streamchunk import counter_key

STREAM_ID_COLUMNS = ("flow", "protocol", "id1", "id2", "id3", "id4", "stream")
SEQ_COLUMNS = ("seq_bits", "seq_first", "seq_last", "expected", "received", "lost",
               "duplicated", "out_of_order", "gap_count", "gap_missing", "seq_irregular",
               "errors", "status_changes", "status_first", "status_last", "segments",
               "unpaired_syncs", "iena_type", "iena_type_source", "tmats_name")
TEXT_COLUMNS = frozenset(("protocol", "stream", "iena_type", "iena_type_source", "tmats_name",
                          "text", "grandmaster"))
_RANK = {p: i for i, p in enumerate(PROTOCOLS)}
_TK1 = re.compile(r"R-(\d+)\\TK1-(\d+):([^;]*);")
_DSI = re.compile(r"R-(\d+)\\DSI-(\d+):([^;]*);")


def tmats_channel_names(text: str) -> dict[int, str]:
    """Channel ID -> data source ID from `R-x\\TK1-n` and `R-x\\DSI-n` attributes with the
    same x and n (STREAMS.md §4): IDs decimal or 0x hex, names as written, the first TK1
    declaring a channel wins."""
    names = {(r, n): v for r, n, v in _DSI.findall(text)}
    out: dict[int, str] = {}
    for r, n, v in _TK1.findall(text):
        v = v.strip()
        try:
            chan = int(v, 16) if v.lower().startswith("0x") else int(v, 10)
        except ValueError:
            continue
        if (r, n) in names:
            out.setdefault(chan, names[(r, n)])
    return out


def stream_text(key: StreamKey, key_names: dict[int, tuple[str, str]]) -> str:
    _flow, proto, a, b, c, d = key
    if proto == "CH10":
        return f"ch 0x{a:04x} type 0x{b:02x}"
    if proto == "CH10-UDP":
        return f"fmt 3 src 0x{b:x}" if a == 3 else f"fmt {a}"
    if proto == "PTP":
        name = PTP_NAMES.get(b, f"type {b}")
        return f"domain {a} {name} {c & 0xFFFFFFFFFFFFFFFF:016x}-{d}"
    if proto == "IENA":
        name = key_names.get(a, ("", ""))[1]
        return f"key 0x{a:04x}" + (f" {name}" if name else "")
    return f"stream 0x{a:08x}"


def _strings(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=np.dtypes.StringDType())


def _columns(rows: list[dict], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    out = {}
    for c in names:
        vals = [r[c] for r in rows]
        if c in TEXT_COLUMNS:
            out[c] = _strings(vals)
        elif c in ("iat_mean_ns", "iat_std_ns", "deviation"):
            out[c] = np.array(vals, dtype=np.float64)
        elif c == "seq_irregular":
            out[c] = np.array(vals, dtype=bool)
        else:
            out[c] = np.array(vals, dtype=np.int64)
    return out


@dataclass
class StreamRows:
    """The streams table's row numbering and each row's statistics (for its outliers)."""

    row_of: dict[StreamKey, int]
    stats: list[list]


def reported_streams(part: Partial) -> list[StreamKey]:
    """The streams the tables show: all but the CH10-UDP transport streams of flows without a
    Chapter 10 packet (random UDP payloads that pass the continuation-segment test)."""
    ch10_flows = {k[0] for k in part.streams if k[1] == "CH10"}
    return [k for k in part.streams if k[1] != "CH10-UDP" or k[0] in ch10_flows]


def stream_stats_tables(part: Partial, flow_row: dict, stat_columns, iena_keys: tuple = ()
                        ) -> tuple[dict[str, dict[str, np.ndarray]], StreamRows]:
    """Every stream table but stream_outliers and the streams' `outliers` column
    (`stream_outlier_tables`); `stat_columns(stats)` makes the statistics columns
    (results.py)."""
    key_names = {k: (t, n) for k, t, n in iena_keys}
    keys = reported_streams(part)
    keys.sort(key=lambda k: (flow_row[k[0]], part.streams[k][FIRST_FRAME], _RANK[k[1]], *k[2:]))
    row_of = {k: i for i, k in enumerate(keys)}
    stats = [part.streams[k] for k in keys]

    latest_tmats = {fk: tmats_channel_names(rows[-1][3]) for fk, rows in part.tmats.items()}
    # Sequence accounting per counter (a Chapter 10 channel: all its data types); gap rows
    # point at the stream row of the message after the gap.
    numbered: dict[StreamKey, int] = {}
    for k in keys:
        ck = counter_key(k)
        numbered[ck] = numbered.get(ck, 0) + part.counters[k][seqstate.NUMBERED]
    accounts: dict[StreamKey, seqstate.Accounting] = {}
    rows, gaps = [], []
    for k in keys:
        ck = counter_key(k)
        seq, cnt = part.seq.get(ck), part.counters[k]
        received = numbered[ck]
        acc = accounts.get(ck)
        if acc is None:
            acc = accounts[ck] = seqstate.account(seq, received)
            gaps.extend((row_of[(*k[:3], g[7], *k[4:])], *g[:7]) for g in acc.gaps)
        unpaired = 0
        if k[1] == "PTP" and k[3] == 0:
            sync = part.sync.get((k[0], k[2], k[4], k[5]))
            if sync is not None:
                unpaired = sync[seqstate.UNPAIRED] + sync[seqstate.PENDING]
        iena = k[1] == "IENA"
        rows.append({
            "flow": flow_row[k[0]], "protocol": k[1], "id1": k[2], "id2": k[3], "id3": k[4],
            "id4": k[5], "stream": stream_text(k, key_names),
            "seq_bits": seq[seqstate.BITS] if seq else 24,
            "seq_first": seq[seqstate.SEQ_FIRST] if seq else -1,
            "seq_last": seq[seqstate.SEQ_LAST] if seq else -1,
            "expected": acc.expected, "received": received,
            "lost": acc.lost, "duplicated": acc.duplicated, "out_of_order": acc.out_of_order,
            "gap_count": acc.gap_count, "gap_missing": acc.gap_missing,
            "seq_irregular": acc.irregular, "errors": cnt[seqstate.ERRORS],
            "status_changes": cnt[seqstate.CHANGES] if iena else 0,
            "status_first": cnt[seqstate.STATUS_FIRST] if iena else -1,
            "status_last": cnt[seqstate.STATUS_LAST] if iena else -1,
            "segments": cnt[seqstate.SEGMENTS], "unpaired_syncs": unpaired,
            "iena_type": ",".join(sorted(TYPE_NAMES[t].removeprefix("IENA-")
                                         for t in cnt[seqstate.TYPES])) if iena else "",
            "iena_type_source": ("map" if k[2] in key_names else "flags") if iena else "",
            "tmats_name": latest_tmats.get(k[0], {}).get(k[2], "") if k[1] == "CH10" else "",
        })
    ident = _columns(rows, STREAM_ID_COLUMNS)
    streams = {**ident, **{("messages" if c == "frames" else c): v
                           for c, v in stat_columns(stats).items()},
               **_columns(rows, SEQ_COLUMNS)}

    gaps.sort(key=lambda g: (g[2], g[0]))  # stable: ties keep message order
    gap_rows = [{"stream_row": g[0], "frame_before": g[1], "frame_after": g[2],
                 "ts_before_ns": g[3], "ts_after_ns": g[4], "span_ns": g[4] - g[3],
                 "seq_before": g[5], "seq_after": g[6], "missing": g[7]} for g in gaps]
    sequence_gaps = _columns(gap_rows, ("stream_row", "frame_before", "frame_after",
                                        "ts_before_ns", "ts_after_ns", "span_ns", "seq_before",
                                        "seq_after", "missing"))

    tm = []
    for fk, trows in part.tmats.items():
        tm.extend({"flow": flow_row[fk], "frame": f, "ts_ns": t, "channel_id": ch, "text": text,
                   "change": n} for n, (f, t, ch, text) in enumerate(trows))
    tm.sort(key=lambda r: r["frame"])
    gm = []
    for dom, grows in part.grandmasters.items():
        gm.extend({"domain": dom, "grandmaster": f"{g & 0xFFFFFFFFFFFFFFFF:016x}",
                   "flow": flow_row[fk], "frame": f, "ts_ns": t, "change": n}
                  for n, (g, fk, f, t) in enumerate(grows))
    gm.sort(key=lambda r: r["frame"])
    return {
        "streams": streams,
        "sequence_gaps": sequence_gaps,
        "tmats": _columns(tm, ("flow", "frame", "ts_ns", "channel_id", "text", "change")),
        "ptp_grandmasters": _columns(gm, ("domain", "grandmaster", "flow", "frame", "ts_ns",
                                          "change")),
    }, StreamRows(row_of, stats)


def stream_outlier_tables(rows: StreamRows, stream_out: np.ndarray
                          ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(the streams' `outliers` column, stream_outliers) from the outlier pass's rows:
    int64 (stream row, frame, ts, iat), in any order."""
    stream_out = np.asarray(stream_out, dtype=np.int64).reshape(-1, 4)
    # a frame may carry several messages: by frame, then stream row, then IAT
    outs = stream_out[np.lexsort((stream_out[:, 3], stream_out[:, 0], stream_out[:, 1]))]
    counts = np.bincount(outs[:, 0], minlength=len(rows.stats)).astype(np.int64)
    return counts, outlier_columns(outs, [(st[N], st[S], st[Q]) for st in rows.stats],
                                   "stream_row")
