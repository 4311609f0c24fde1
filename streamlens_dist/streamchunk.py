"""A chunk's protocol messages -> the stream parts of its Partial (docs/STREAMS.md).

Messages arrive in message order with the chunk row (frame index) of each. Streams are
numbered per chunk; IAT statistics reuse `scope_stats` with messages in place of frames, and
sequence numbers are cut into runs of +1 steps with numpy.
"""

from __future__ import annotations

import numpy as np

from . import seqstate
from .dissect.streams import (
    CONTINUATION,
    PROTOCOLS,
    PTP,
    PTP_ANNOUNCE,
    PTP_FOLLOW_UP,
    PTP_SYNC,
    ChunkMessages,
)
from .partial import Partial, StreamKey, add_iat, keep_top, new_stats
from .scopestats import TS_LIMIT, scope_stats


def stream_ids(cm: ChunkMessages, flow: np.ndarray, keys: list) -> tuple[np.ndarray, list]:
    """Per message its chunk-local stream id, and the stream keys by id."""
    c = cm.cols
    if not len(cm):
        return np.zeros(0, np.int64), []
    # Two int64 words per message identify its stream (flow < 2^28, id1 < 2^32, id2 and
    # id4 < 2^16, id3 -- a 64-bit clock identity -- replaced by its index among the chunk's):
    # sorting word pairs is far cheaper than np.unique over rows of six.
    id3s, id3i = np.unique(c["id3"], return_inverse=True)
    hi = (flow[c["row"]].astype(np.int64) << 35) | (c["proto"] << 32) | c["id1"]
    lo = (c["id2"] << 48) | (c["id4"] << 32) | id3i.ravel()
    order = np.lexsort((lo, hi))
    hs, ls = hi[order], lo[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (hs[1:] != hs[:-1]) | (ls[1:] != ls[:-1])
    sid = np.empty(len(order), np.int64)
    sid[order] = np.cumsum(new) - 1
    first = order[new]
    f, p = flow[c["row"][first]].tolist(), c["proto"][first].tolist()
    ids = [c[k][first].tolist() for k in ("id1", "id2", "id3", "id4")]
    skeys = [(keys[a], PROTOCOLS[b], *rest) for a, b, *rest in zip(f, p, *ids, strict=True)]
    return sid, skeys


def accumulate_streams(p: Partial, cm: ChunkMessages, frame: np.ndarray, ts: np.ndarray,
                       flow: np.ndarray, ftype: np.ndarray, keys: list) -> None:
    if not len(cm):
        return
    c = cm.cols
    sid, skeys = stream_ids(cm, flow, keys)
    row = c["row"]
    mframe, mts = frame[row], ts[row]
    if int(np.abs(mts).max()) > TS_LIMIT:  # int64 IATs could overflow: exact Python ints
        for s, f, t, z in zip(sid.tolist(), mframe.tolist(), mts.tolist(), c["size"].tolist(),
                              strict=True):
            k = skeys[s]
            st = p.streams.get(k)
            if st is None:
                p.streams[k] = new_stats(f, t, z)
            else:
                keep_top(p.stream_tops, k, add_iat(st, f, t, z), f, t)
    else:
        ss = scope_stats(sid, mframe, mts, c["size"], np.zeros(len(sid), np.int32))
        for s, st, top in zip(ss.ids, ss.stats, ss.tops, strict=True):
            p.streams[skeys[s]] = st
            p.stream_tops[skeys[s]] = top
    _sequences(p, sid, skeys, c, mframe, mts)
    _counters(p, sid, skeys, c, ftype[row])
    _ptp(p, c, flow, keys, mframe, mts)
    for r, chan, text in cm.tmats:
        rows = p.tmats.setdefault(keys[flow[r]], [])
        if not rows or rows[-1][3] != text:
            rows.append([int(frame[r]), int(ts[r]), chan, text])


def _sequences(p: Partial, sid: np.ndarray, skeys: list[StreamKey], c: dict,
               mframe: np.ndarray, mts: np.ndarray) -> None:
    # segment continuations repeat their packet's number: not part of sequence accounting
    numbered = np.flatnonzero(c["segment"] != CONTINUATION)
    if not len(numbered):
        return
    order = numbered[np.argsort(sid[numbered], kind="stable")]
    g, s, bits = sid[order], c["seq"][order], c["bits"][order]
    f, t = mframe[order], mts[order]
    n = len(g)
    new = np.ones(n, dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (((s[1:] - s[:-1]) & ((1 << bits[1:]) - 1)) != 1)
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], n] - 1
    groups = g[starts]
    first_of = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    last_of = np.r_[first_of[1:], len(starts)]
    cols = [x.tolist() for x in (s[starts], ends - starts + 1, f[starts], t[starts], f[ends],
                                 t[ends])]
    runs_all = list(zip(*cols, strict=True))
    for a, b in zip(first_of.tolist(), last_of.tolist(), strict=True):
        k = skeys[int(groups[a])]
        runs = [list(r) for r in runs_all[a:b]] if b - a - 1 <= seqstate.IRREGULAR_PAIRS else None
        i0, i1 = starts[a], ends[b - 1]
        p.seq[k] = [int(bits[i0]), int(s[i0]), int(s[i1]), b - a - 1, runs]


def _counters(p: Partial, sid: np.ndarray, skeys: list[StreamKey], c: dict,
              ftype: np.ndarray) -> None:
    m = len(skeys)
    errors = np.bincount(sid, weights=c["error"], minlength=m).astype(np.int64).tolist()
    segments = np.bincount(sid, weights=c["segment"] > 0, minlength=m).astype(np.int64).tolist()
    numbered = np.bincount(sid, weights=c["segment"] != CONTINUATION, minlength=m)
    order = np.argsort(sid, kind="stable")
    g, st = sid[order], c["state"][order]
    same = g[1:] == g[:-1]
    changes = np.bincount(g[1:][same & (st[1:] != st[:-1])], minlength=m).tolist()
    first = np.r_[True, ~same]
    last = np.r_[~same, True]
    sfirst = dict(zip(g[first].tolist(), st[first].tolist(), strict=True))
    slast = dict(zip(g[last].tolist(), st[last].tolist(), strict=True))
    types: dict[int, set] = {}
    for s, ft in set(zip(sid.tolist(), ftype.tolist(), strict=True)):
        types.setdefault(s, set()).add(ft)
    for s, k in enumerate(skeys):
        p.counters[k] = [errors[s], segments[s], changes[s], sfirst[s], slast[s],
                         sorted(types[s]), int(numbered[s])]


def _ptp(p: Partial, c: dict, flow: np.ndarray, keys: list, mframe: np.ndarray,
         mts: np.ndarray) -> None:
    ptp = np.flatnonzero((c["proto"] == PTP) & np.isin(c["id2"], (PTP_SYNC, PTP_FOLLOW_UP,
                                                                  PTP_ANNOUNCE)))
    if not len(ptp):
        return
    events: dict[tuple, list] = {}
    for i in ptp.tolist():
        mtype, dom = int(c["id2"][i]), int(c["id1"][i])
        fk = keys[flow[c["row"][i]]]
        if mtype == PTP_ANNOUNCE:
            gm = int(c["aux"][i])
            if gm == -1 and int(c["size"][i]) < 63:
                continue
            rows = p.grandmasters.setdefault(dom, [])
            if not rows or rows[-1][0] != gm:
                rows.append([gm, fk, int(mframe[i]), int(mts[i])])
            continue
        key = (fk, dom, int(c["id3"][i]), int(c["id4"][i]))
        events.setdefault(key, []).append((mtype == PTP_SYNC, int(c["seq"][i]), int(c["aux"][i])))
    for key, ev in events.items():
        p.sync[key] = seqstate.sync_state(ev)
