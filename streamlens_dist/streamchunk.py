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
    IENA,
    PROTOCOLS,
    PTP,
    PTP_ANNOUNCE,
    PTP_FOLLOW_UP,
    PTP_SYNC,
    ChunkMessages,
)
from .partial import Partial, StreamKey, add_iat, keep_top, new_stats
from .scopestats import TS_LIMIT, scope_stats

try:  # the compiled interning; the numpy path below gives the same streams
    from .dissect import _messages
except ImportError:  # pragma: no cover - exercised by tests with the import blocked
    _messages = None


def stream_ids(cm: ChunkMessages, flow: np.ndarray, keys: list
               ) -> tuple[np.ndarray, list, np.ndarray]:
    """Per message its chunk-local stream id, the stream keys by id, and the messages in
    stream order (a stable sort by id: message order within each stream)."""
    c = cm.cols
    if not len(cm):
        return np.zeros(0, np.int64), [], np.zeros(0, np.int64)
    if _messages is not None:
        n = len(cm)
        mflow = flow[c["row"]].astype(np.int64)
        sid, order = np.empty(n, np.int64), np.empty(n, np.int64)
        table = np.empty(1 << max(4, (2 * n - 1).bit_length()), np.int64)
        cols6 = [np.ascontiguousarray(x, np.int64) for x in
                 (mflow, c["proto"], c["id1"], c["id2"], c["id3"], c["id4"])]
        k = _messages.intern(*cols6, sid, order, table)
        starts = np.r_[0, np.cumsum(np.bincount(sid, minlength=k))[:-1]]
        first = order[starts]
        cols = [mflow[first].tolist(), c["proto"][first].tolist(),
                *(c[x][first].tolist() for x in ("id1", "id2", "id3", "id4"))]
        skeys = [(keys[a], PROTOCOLS[b], *rest) for a, b, *rest in zip(*cols, strict=True)]
        return sid, skeys, order
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
    return sid, skeys, order  # lexsort is stable


def accumulate_streams(p: Partial, cm: ChunkMessages, frame: np.ndarray, ts: np.ndarray,
                       flow: np.ndarray, ftype: np.ndarray, keys: list) -> None:
    if not len(cm):
        return
    c = cm.cols
    sid, skeys, order = stream_ids(cm, flow, keys)
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
    _sequences(p, sid, skeys, c, mframe, mts, order)
    _counters(p, sid, skeys, c, ftype[row], order)
    _ptp(p, c, flow, keys, mframe, mts)
    for r, chan, text in cm.tmats:
        rows = p.tmats.setdefault(keys[flow[r]], [])
        if not rows or rows[-1][3] != text:
            rows.append([int(frame[r]), int(ts[r]), chan, text])


def counter_key(key: StreamKey) -> StreamKey:
    """The sequence counter a stream's messages use: a Chapter 10 packet sequence number is
    per channel ID, shared by all data types on it (docs/STREAMS.md §2); other protocols'
    counters are per stream."""
    if key[1] == "CH10":
        return (key[0], "CH10", key[2], -1, 0, 0)
    return key


def _sequences(p: Partial, sid: np.ndarray, skeys: list[StreamKey], c: dict,
               mframe: np.ndarray, mts: np.ndarray, order: np.ndarray) -> None:
    """Sequence runs per counter. `order`: the messages sorted stably by stream id."""
    ckeys: dict[StreamKey, int] = {}
    counter = np.array([ckeys.setdefault(counter_key(k), len(ckeys)) for k in skeys],
                       dtype=np.int64)
    # segment continuations repeat their packet's number: not part of sequence accounting
    order = order[c["segment"][order] != CONTINUATION]
    if not len(order):
        return
    if len(ckeys) < len(skeys):  # a Chapter 10 channel with several data types in this chunk
        idx = np.sort(order)  # message order, then stably by counter
        order = idx[np.argsort(counter[sid[idx]], kind="stable")]
    n = len(order)
    if _messages is not None:
        group = sid if len(ckeys) == len(skeys) else counter[sid]  # one stream per counter
        starts = np.empty(n, np.int64)
        starts = starts[:_messages.runs(order, np.ascontiguousarray(group, np.int64),
                                        c["seq"], c["bits"], starts)]
        s = c["seq"][order[starts]]
        groups = counter[sid[order[starts]]]
        ends = np.r_[starts[1:], n] - 1
        s_end = c["seq"][order[ends]]
    else:
        g, s, bits = counter[sid[order]], c["seq"][order], c["bits"][order]
        new = np.ones(n, dtype=bool)
        new[1:] = (g[1:] != g[:-1]) | (((s[1:] - s[:-1]) & ((1 << bits[1:]) - 1)) != 1)
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], n] - 1
        groups = g[starts]
        s, s_end = s[starts], s[ends]
    first_of = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    last_of = np.r_[first_of[1:], len(starts)]
    a, z = order[starts], order[ends]  # messages opening and closing each run
    cols = [x.tolist() for x in (s, ends - starts + 1, mframe[a], mts[a], mframe[z],
                                 mts[z], c["id2"][a])]
    runs_all = list(zip(*cols, strict=True))
    names = list(ckeys)
    for a, b in zip(first_of.tolist(), last_of.tolist(), strict=True):
        k = names[int(groups[a])]
        runs = [list(r) for r in runs_all[a:b]] if b - a - 1 <= seqstate.IRREGULAR_PAIRS else None
        # bits of the counter's first message (a stream's width never changes but for a
        # Format 3 sender changing its source-ID length, which keeps the first)
        p.seq[k] = [int(c["bits"][order[starts[a]]]), int(s[a]), int(s_end[b - 1]), b - a - 1,
                    runs]


def _counters(p: Partial, sid: np.ndarray, skeys: list[StreamKey], c: dict,
              ftype: np.ndarray, order: np.ndarray) -> None:
    m = len(skeys)
    seg = c["segment"]
    if _messages is not None:
        err, segs, cont = (np.empty(m, np.int64) for _ in range(3))
        _messages.counts(sid, c["error"], seg, err, segs, cont)
        errors, segments = err.tolist(), segs.tolist()
        numbered = (np.bincount(sid, minlength=m) - cont).tolist()
    else:
        errors = np.bincount(sid[c["error"] != 0], minlength=m).tolist()
        segments = np.bincount(sid[seg > 0], minlength=m).tolist()
        numbered = (np.bincount(sid, minlength=m) - np.bincount(sid[seg == CONTINUATION],
                                                                minlength=m)).tolist()
    changes, sfirst, slast = [0] * m, [-1] * m, [-1] * m
    types: dict[int, list] = {}
    # only IENA messages have a status, and only IENA rows report their frame types
    iena = np.flatnonzero(c["proto"] == IENA)
    if len(iena):
        iena = iena[np.argsort(sid[iena], kind="stable")]
        g, st = sid[iena], c["state"][iena]
        same = g[1:] == g[:-1]
        for s, n in enumerate(np.bincount(g[1:][same & (st[1:] != st[:-1])], minlength=m)
                              .tolist()):
            changes[s] = n
        for s, v in zip(g[np.r_[True, ~same]].tolist(), st[np.r_[True, ~same]].tolist(),
                        strict=True):
            sfirst[s] = v
        for s, v in zip(g[np.r_[~same, True]].tolist(), st[np.r_[~same, True]].tolist(),
                        strict=True):
            slast[s] = v
        for combo in np.unique(g * 65536 + ftype[iena]).tolist():
            types.setdefault(combo >> 16, []).append(combo & 0xFFFF)
    for s, k in enumerate(skeys):
        p.counters[k] = [errors[s], segments[s], changes[s], sfirst[s], slast[s],
                         types.get(s, []), numbered[s]]


def _ptp(p: Partial, c: dict, flow: np.ndarray, keys: list, mframe: np.ndarray,
         mts: np.ndarray) -> None:
    """Grandmaster changes per domain and Sync/Follow_Up pairing per PTP source."""
    is_ptp = c["proto"] == PTP
    ann = np.flatnonzero(is_ptp & (c["id2"] == PTP_ANNOUNCE) & ((c["aux"] != -1)
                                                                | (c["size"] >= 63)))
    if len(ann):
        ann = ann[np.argsort(c["id1"][ann], kind="stable")]
        dom, gm = c["id1"][ann], c["aux"][ann]
        keep = np.ones(len(ann), dtype=bool)
        keep[1:] = (dom[1:] != dom[:-1]) | (gm[1:] != gm[:-1])
        for i in ann[keep].tolist():
            p.grandmasters.setdefault(int(c["id1"][i]), []).append(
                [int(c["aux"][i]), keys[flow[c["row"][i]]], int(mframe[i]), int(mts[i])])
    sel = np.flatnonzero(is_ptp & ((c["id2"] == PTP_SYNC) | (c["id2"] == PTP_FOLLOW_UP)))
    if not len(sel):
        return
    mflow = flow[c["row"][sel]].astype(np.int64)
    sel = sel[np.lexsort((c["id4"][sel], c["id3"][sel], c["id1"][sel], mflow))]  # stable
    mflow = flow[c["row"][sel]].astype(np.int64)
    dom, clock, port = c["id1"][sel], c["id3"][sel], c["id4"][sel]
    n = len(sel)
    start = np.ones(n, dtype=bool)
    start[1:] = (mflow[1:] != mflow[:-1]) | (dom[1:] != dom[:-1]) | (clock[1:] != clock[:-1]) \
        | (port[1:] != port[:-1])
    group = np.cumsum(start) - 1
    gstart = np.flatnonzero(start)
    is_sync = c["id2"][sel] == PTP_SYNC
    seq, two_step = c["seq"][sel], c["aux"][sel] == 1
    j = np.arange(n)
    last_sync = np.maximum.accumulate(np.where(is_sync, j, -1))
    last_sync[last_sync < gstart[group]] = -1  # a Sync of an earlier source
    fu = ~is_sync
    head = fu & (last_sync < 0)
    follows = np.flatnonzero(fu & (last_sync >= 0))
    matched = np.zeros(n, dtype=bool)
    matched[last_sync[follows][seq[follows] == seq[last_sync[follows]]]] = True
    waiting = is_sync & two_step & ~matched
    gend = np.r_[gstart[1:], n]
    for a, b in zip(gstart.tolist(), gend.tolist(), strict=True):
        syncs = np.flatnonzero(is_sync[a:b]) + a
        last = int(syncs[-1]) if len(syncs) else -1
        unpaired = int(waiting[syncs[:-1]].sum()) if len(syncs) else 0
        key = (keys[mflow[a]], int(dom[a]), int(clock[a]), int(port[a]))
        p.sync[key] = [unpaired, sorted(set(seq[a:b][head[a:b]].tolist())), int(last >= 0),
                       int(seq[last]) if last >= 0 else -1, int(waiting[last]) if last >= 0 else 0]
