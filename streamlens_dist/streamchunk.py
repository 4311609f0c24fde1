"""A chunk's protocol messages -> the stream parts of its Partial (docs/STREAMS.md).

Messages arrive in message order with the chunk row (frame index) of each. Streams are
numbered per chunk. The compiled pass (_streams.c) computes every per-stream part in message
order; the numpy path gives the same: IAT statistics from `scope_stats` with messages in place
of frames, sequence numbers cut into runs of +1 steps, counters with bincounts.
"""

from __future__ import annotations

import numpy as np

from . import seqstate
from .dissect.names import TYPE_NAMES
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
from .scopestats import KEEP_ABOVE_STD, KEEP_ALL_UP_TO, TS_LIMIT, scope_stats

try:  # the compiled interning; the numpy path below gives the same streams
    from .dissect import _messages
except ImportError:  # pragma: no cover - exercised by tests with the import blocked
    _messages = None
try:  # the compiled stream pass; the numpy path below gives the same parts
    from . import _streams
except ImportError:  # pragma: no cover - exercised by tests with the import blocked
    _streams = None
NTYPES = len(TYPE_NAMES)
# message columns the compiled pass reads, in its order
_PASS_COLUMNS = ("row", "proto", "id1", "id2", "id3", "id4", "seq", "bits", "size", "state",
                 "error", "segment")


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
        sid, order, count = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
        cols6 = [np.ascontiguousarray(x, np.int64) for x in
                 (mflow, c["proto"], c["id1"], c["id2"], c["id3"], c["id4"])]
        k = _messages.intern(*cols6, sid, order, count)
        first = order[np.r_[0, np.cumsum(count[:k - 1])]]
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
    if _streams is None or NTYPES > _streams.MAX_TYPES or not _compiled(
            p, c, frame, ts, flow, ftype, keys):
        _numpy(p, c, frame, ts, flow, ftype, keys)
    _ptp(p, c, flow, keys, frame, ts)
    for r, chan, text in cm.tmats:
        rows = p.tmats.setdefault(keys[flow[r]], [])
        if not rows or rows[-1][3] != text:
            rows.append([int(frame[r]), int(ts[r]), chan, text])


def _numpy(p: Partial, c: dict, frame: np.ndarray, ts: np.ndarray, flow: np.ndarray,
           ftype: np.ndarray, keys: list) -> None:
    sid, skeys, order = stream_ids(ChunkMessages(c, []), flow, keys)
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
    _counters(p, sid, skeys, c, ftype, row)


def _compiled(p: Partial, c: dict, frame: np.ndarray, ts: np.ndarray, flow: np.ndarray,
              ftype: np.ndarray, keys: list) -> bool:
    """The stream parts from `_streams.accumulate`; False (nothing done) where timestamps
    are too far apart for its int64 IATs."""
    out = _streams.accumulate(
        np.ascontiguousarray(flow, np.int32), np.ascontiguousarray(frame, np.int64),
        np.ascontiguousarray(ts, np.int64), np.ascontiguousarray(ftype, np.int16),
        *(np.ascontiguousarray(c[x], np.int64) for x in _PASS_COLUMNS), KEEP_ABOVE_STD,
        KEEP_ALL_UP_TO)
    if out is None:
        return False
    streams, q, kept, runs = out
    st = np.frombuffer(streams, np.int64).reshape(-1, _streams.SCOLS)
    first, row = st[:, 0], c["row"]
    skeys = [(keys[a], PROTOCOLS[b], *rest) for a, b, *rest in zip(
        flow[row[first]].tolist(), *(c[x][first].tolist() for x in
                                     ("proto", "id1", "id2", "id3", "id4")), strict=True)]
    (counter, frames, nbytes, ff, fns, lf, lns, m, lo, hi, left_out, all_kept, n_kept, errors,
     segments, numbered, changes, sfirst, slast, types, _iena) = st[:, 1:].T.tolist()
    kept = np.frombuffer(kept, np.int64).reshape(-1, 4)
    k_iat, k_fr, k_ts = (kept[:, j].tolist() for j in (1, 2, 3))
    at = 0
    for s, (key, (q0, q1, q2)) in enumerate(zip(
            skeys, np.frombuffer(q, np.uint64).reshape(-1, 3).tolist(), strict=True)):
        ms, ks = m[s], n_kept[s]
        p.streams[key] = [frames[s], nbytes[s], ff[s], fns[s], lf[s], lns[s], ms,
                          lns[s] - fns[s], (q2 << 128) | (q1 << 64) | q0,
                          lo[s] if ms else None, hi[s] if ms else None]
        p.stream_tops[key] = [list(zip(k_iat[at:at + ks], k_fr[at:at + ks], k_ts[at:at + ks],
                                       strict=True)),
                              None if all_kept[s] else left_out[s], ms]
        at += ks
        p.counters[key] = [errors[s], segments[s], changes[s], sfirst[s], slast[s],
                           [t for t in range(NTYPES) if types[s] >> t & 1], numbered[s]]
    names: list[StreamKey] = []  # counters are numbered in order of their first stream
    for s, key in enumerate(skeys):
        if counter[s] == len(names):
            names.append(counter_key(key))
    group, a, z, count = np.frombuffer(runs, np.int64).reshape(-1, 4).T
    _put_runs(p, names, group, a, z, count, c, frame[row[a]], ts[row[a]], frame[row[z]],
              ts[row[z]])
    return True


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
    if len(ckeys) < len(skeys):  # a Chapter 10 channel with several data types
        idx = np.sort(order)  # message order, then stably by counter
        order = idx[np.argsort(counter[sid[idx]], kind="stable")]
    # segment continuations repeat their packet's number: not part of sequence accounting
    order = order[c["segment"][order] != CONTINUATION]
    if not len(order):
        return
    g, s, bits = counter[sid[order]], c["seq"][order], c["bits"][order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (((s[1:] - s[:-1]) & ((1 << bits[1:]) - 1)) != 1)
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(order)] - 1
    first, last, count = order[starts], order[ends], ends - starts + 1
    _put_runs(p, list(ckeys), counter[sid[first]], first, last, count, c, mframe[first],
              mts[first], mframe[last], mts[last])


def _put_runs(p: Partial, names: list[StreamKey], groups: np.ndarray, first: np.ndarray,
              last: np.ndarray, count: np.ndarray, c: dict, *frame_ts: np.ndarray) -> None:
    """p.seq from the runs, grouped by counter (`groups`: counter ids, `names`: their keys):
    first and last message and messages of each, and `frame_ts`: frame and timestamp of
    their first messages, then of their last."""
    if not len(first):
        return
    s, s_end = c["seq"][first], c["seq"][last]
    first_of = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    last_of = np.r_[first_of[1:], len(first)]
    cols = [x.tolist() for x in (s, count, *frame_ts, c["id2"][first])]
    runs_all = list(map(list, zip(*cols, strict=True)))  # each run belongs to one counter
    for a, b in zip(first_of.tolist(), last_of.tolist(), strict=True):
        k = names[int(groups[a])]
        runs = runs_all[a:b] if b - a - 1 <= seqstate.IRREGULAR_PAIRS else None
        # bits of the counter's first message (a stream's width never changes but for a
        # Format 3 sender changing its source-ID length, which keeps the first)
        p.seq[k] = [int(c["bits"][first[a]]), int(s[a]), int(s_end[b - 1]), b - a - 1,
                    runs]


def _counters(p: Partial, sid: np.ndarray, skeys: list[StreamKey], c: dict,
              ftype: np.ndarray, row: np.ndarray) -> None:
    """`ftype`: frame type code per frame (int16), `row`: each message's frame."""
    m = len(skeys)
    seg = c["segment"]
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
        for combo in np.unique(g * 65536 + ftype[row[iena]]).tolist():
            types.setdefault(combo >> 16, []).append(combo & 0xFFFF)
    for s, k in enumerate(skeys):
        p.counters[k] = [errors[s], segments[s], changes[s], sfirst[s], slast[s],
                         types.get(s, []), numbered[s]]


def _ptp(p: Partial, c: dict, flow: np.ndarray, keys: list, frame: np.ndarray,
         ts: np.ndarray) -> None:
    """Grandmaster changes per domain and Sync/Follow_Up pairing per PTP source."""
    ptp = np.flatnonzero(c["proto"] == PTP)  # usually few: the masks below see only these
    mtype = c["id2"][ptp]
    ann = ptp[(mtype == PTP_ANNOUNCE) & ((c["aux"][ptp] != -1) | (c["size"][ptp] >= 63))]
    if len(ann):
        ann = ann[np.argsort(c["id1"][ann], kind="stable")]
        dom, gm = c["id1"][ann], c["aux"][ann]
        keep = np.ones(len(ann), dtype=bool)
        keep[1:] = (dom[1:] != dom[:-1]) | (gm[1:] != gm[:-1])
        for i, r in zip(ann[keep].tolist(), c["row"][ann[keep]].tolist(), strict=True):
            p.grandmasters.setdefault(int(c["id1"][i]), []).append(
                [int(c["aux"][i]), keys[flow[r]], int(frame[r]), int(ts[r])])
    sel = ptp[(mtype == PTP_SYNC) | (mtype == PTP_FOLLOW_UP)]
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
