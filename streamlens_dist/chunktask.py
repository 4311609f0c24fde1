"""The two chunk tasks, plain functions `(chunk, settings, ...) -> bytes` (STYLE §2).

Pass 1 (`analyze_chunk`) reads a chunk into columns, classifies it (columnar fast path, per
frame where needed) and reduces it to a Partial with vectorised per-scope statistics. Pass 2
(`chunk_outliers`) answers from the partial's kept top IATs and re-reads the chunk only for
scopes that may hold more outliers than were kept; it also tests the IATs that end at the
chunk's seam, from the last timestamps of its scopes before it (partial.Before) it is given.
"""

from __future__ import annotations

import functools
import mmap
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .capture import compressed, pcap, pcapng, source
from .capture.columns import record_columns
from .capture.split import ChunkSpec
from .dissect.columnar import FrameClasses, classify_columns
from .dissect.names import MALFORMED_NAMES, TYPE_ID, TYPE_NAMES, hint_names
from .dissect.streams import IENA, ChunkMessages, chunk_messages
from .errors import CaptureFormatError, WireFormatError
from .flowkeys import KeyIndex, fast_type_keys, flow_bytes, flow_text, key_array, type_text
from .gcpause import without_gc
from .partial import (
    MAX,
    MAX_UNDECODABLE_LISTED,
    Before,
    Partial,
    add_iat,
    keep_top,
    new_stats,
    stream_seams,
    table_seams,
)
from .scopestats import TS_LIMIT, scope_stats
from .scopetable import ScopeTable, ScopeValues, Tops
from .series import chunk_series, python_series
from .settings import Settings
from .streamchunk import accumulate_streams, stream_ids
from .wire import (
    before_from_bytes,
    pack,
    partial_from_bytes,
    partial_to_bytes,
    unpack,
    values_from_wire,
    values_to_wire,
)

NTYPES = len(TYPE_NAMES)


def read_range(path: str, start: int, end: int, storage: source.Storage | None = None,
               codec: str = "", restart: tuple[int, int] = (0, 0)) -> bytes:
    """Bytes [start, end) of a file or URL; of its decompressed data for a compressed file
    (`codec`, `restart`: a compressed chunk's ChunkSpec fields), b"" if those no longer
    reach `end` (the frame count check then reports the changed file)."""
    if codec:
        return compressed.read_range(path, codec, restart, start, end, storage) or b""
    if source.is_url(path):
        return source.read_range(path, start, end, storage)
    with open(source.local_path(path), "rb") as f:
        f.seek(start)
        return f.read(end - start)


def map_range(path: str, start: int, end: int, storage: source.Storage | None = None,
              codec: str = "", restart: tuple[int, int] = (0, 0)) -> memoryview | bytes:
    """The bytes of [start, end) without copying them: a read-only view of a file mapping.

    The view keeps the mapping alive; it is unmapped when the last view (or numpy array made
    from it) is gone. Falls back to a plain read where mapping is not possible, and reads a
    URL's range with one ranged request (capture/source.py). A compressed file's range is
    decompressed from its restart point (`read_range`).
    """
    if end <= start:
        return b""
    if codec or source.is_url(path):
        return read_range(path, start, end, storage, codec, restart)
    lo = start - start % mmap.ALLOCATIONGRANULARITY
    path = source.local_path(path)
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < end:
                return f.read(0)  # the file shrank: the frame count check reports it
            mm = mmap.mmap(f.fileno(), end - lo, offset=lo, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return read_range(path, start, end)
    return memoryview(mm)[start - lo:end - lo]


def iter_frames(spec: ChunkSpec, storage: source.Storage | None = None
                ) -> Iterator[tuple[int, int | None, int, int, bytes]]:
    """(frame number, ts_ns or None, linktype, captured length, frame bytes) per frame."""
    buf = read_range(spec.path, spec.start, spec.end, storage, spec.codec, spec.restart)
    frame = spec.first_frame
    if spec.container == "pcap":
        hdr = pcap.PcapHeader(spec.endian, spec.interfaces[0])
        lt = hdr.interface.linktype
        for _off, ts, data, cap in pcap.walk(buf, 0, len(buf), hdr, spec.path):
            yield frame, ts, lt, cap, buf[data:data + cap]
            frame += 1
    else:
        section = pcapng.Section(spec.endian, list(spec.interfaces))
        for _off, ts, lt, data, cap in pcapng.walk(buf, 0, len(buf), section, spec.path):
            yield frame, ts, lt, cap, buf[data:data + cap]
            frame += 1
    if frame - spec.first_frame != spec.frames:
        raise CaptureFormatError(
            f"{spec.path}: bytes {spec.start}-{spec.end} held {spec.frames} frames when the "
            f"capture was split but {frame - spec.first_frame} now; did the file change?")


@dataclass
class ChunkFrames:
    """A dissected chunk as columns: frame numbers, timestamps, sizes and classes."""

    frame: np.ndarray
    ts: np.ndarray
    untimed: np.ndarray
    size: np.ndarray
    cls: FrameClasses
    msgs: ChunkMessages


def apply_key_map(ftype: np.ndarray, msgs: ChunkMessages, settings: Settings) -> None:
    """IENA frames whose key the user's map declares get the map's type (STREAMS.md §6)."""
    c = msgs.cols
    iena = np.flatnonzero(c["proto"] == IENA)
    if not len(iena) or not settings.iena_keys:
        return
    rows, keys = c["row"][iena], c["id1"][iena]
    for key, ptype, _name in settings.iena_keys:
        ftype[rows[keys == key]] = TYPE_ID["IENA-" + ptype]


def chunk_frames(spec: ChunkSpec, settings: Settings, profile: dict[str, float] | None = None,
                 storage: source.Storage | None = None) -> ChunkFrames:
    t0 = time.perf_counter()
    buf = map_range(spec.path, spec.start, spec.end, storage, spec.codec, spec.restart)
    t1 = time.perf_counter()
    cols = record_columns(spec, buf)
    t2 = time.perf_counter()
    cls = classify_columns(buf, cols)
    t3 = time.perf_counter()
    msgs = chunk_messages(buf, cols.offset, cols.caplen, cols.linktype, cls.ftype, cls.flow >= 0,
                          cls.app_off, cls.app_len)
    apply_key_map(cls.ftype, msgs, settings)
    t4 = time.perf_counter()
    if profile is not None:
        profile.update(read=t1 - t0, walk=t2 - t1, classify=t3 - t2, messages=t4 - t3,
                       slow_path_frames=float(cls.slow_frames))
    frame = spec.first_frame + np.arange(len(cols), dtype=np.int64)
    return ChunkFrames(frame, cols.ts, cols.untimed, cols.caplen, cls, msgs)


def analyze_chunk(spec: ChunkSpec, settings: Settings,
                  storage: source.Storage | None = None) -> bytes:
    """Pass 1: the chunk's Partial, as wire bytes (`storage`: fsspec options of a URL)."""
    p = Partial(lo=spec.index, hi=spec.index, frames=spec.frames, bin_ns=settings.bin_ns)
    cf = chunk_frames(spec, settings, p.profile, storage)
    t0 = time.perf_counter()
    cls = cf.cls
    timed = ~cf.untimed
    p.untimed = int(cf.untimed.sum())
    timed_ts = cf.ts[timed]
    if len(timed_ts):
        p.first_ns, p.last_ns = int(timed_ts[0]), int(timed_ts[-1])
    decoded = cls.flow >= 0
    undecodable = np.flatnonzero(timed & ~decoded)
    p.undecodable = len(undecodable)
    p.undecodable_first = cf.frame[undecodable[:MAX_UNDECODABLE_LISTED]].tolist()
    bad = np.flatnonzero(decoded & (cls.malformed >= 0))
    if len(bad):
        combo = cls.flow[bad].astype(np.int64) * len(MALFORMED_NAMES) + cls.malformed[bad]
        ids, first, counts = np.unique(combo, return_index=True, return_counts=True)
        for c, f, k in zip(ids.tolist(), cf.frame[bad[first]].tolist(), counts.tolist(),
                           strict=True):
            key = (cls.keys[c // len(MALFORMED_NAMES)], MALFORMED_NAMES[c % len(MALFORMED_NAMES)])
            p.malformed[key] = [k, f]
    idx = np.flatnonzero(decoded)
    sel = slice(None) if len(idx) == len(decoded) else idx  # all decoded: views, not copies
    dts = cf.ts[sel]
    if len(idx) and max(int(dts.max()), -int(dts.min())) > TS_LIMIT:
        _accumulate_per_frame(p, cf, idx)  # int64 IATs could overflow: exact Python ints
    elif len(idx):
        _accumulate_columnar(p, cf, sel)
    accumulate_streams(p, cf.msgs, cf.frame, cf.ts, cls.flow, cls.ftype, cls.keys)
    p.profile["stats"] = time.perf_counter() - t0
    return partial_to_bytes(p)


def _accumulate_columnar(p: Partial, cf: ChunkFrames, idx: np.ndarray | slice) -> None:
    cls = cf.cls
    frame, ts, size, flow = cf.frame[idx], cf.ts[idx], cf.size[idx], cls.flow[idx]
    hints = cls.hints[idx]
    flow = flow.astype(np.int64)
    fs = scope_stats(flow, frame, ts, size, hints)
    p.flows = fs.table(cls.key_bytes[fs.id_array], flow_text)
    p.flow_series, p.flow_hist = chunk_series(_dense(flow, fs.id_array), ts, size, p.bin_ns)
    tsid = flow * NTYPES + cls.ftype[idx]
    ts_ = scope_stats(tsid, frame, ts, size, hints)
    ids = ts_.id_array
    p.types = ts_.table(fast_type_keys(ids % NTYPES, cls.key_bytes[ids // NTYPES]), type_text)
    p.type_series, p.type_hist = chunk_series(_dense(tsid, ids), ts, size, p.bin_ns)


def _dense(sid: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each frame's scope as its row in `ids` (the order of the partial's tables)."""
    ids_a = np.asarray(ids, dtype=np.int64)
    if len(ids_a) and int(ids_a.max()) < 4 * len(sid) + 4096:
        lookup = np.empty(int(ids_a.max()) + 1, np.int64)
        lookup[ids_a] = np.arange(len(ids_a))
        return lookup[sid]
    order = np.argsort(ids_a)
    return order[np.searchsorted(ids_a, sid, sorter=order)]


def _accumulate_per_frame(p: Partial, cf: ChunkFrames, idx: np.ndarray) -> None:
    """The exact per-frame path, for chunks whose timestamps are too far apart for int64."""
    cls = cf.cls
    for i in idx.tolist():
        frame, ts, size = int(cf.frame[i]), int(cf.ts[i]), int(cf.size[i])
        key = cls.keys[cls.flow[i]]
        for scopes, tops, k in ((p.flows, p.flow_tops, key),
                                (p.types, p.type_tops, (key, TYPE_NAMES[cls.ftype[i]]))):
            st = scopes.get(k)
            if st is None:
                scopes[k] = new_stats(frame, ts, size)
            else:
                keep_top(tops, k, add_iat(st, frame, ts, size), frame, ts)
        p.hints.setdefault(key, set()).update(hint_names(int(cls.hints[i])))
    rows = idx.tolist()
    ts, size = cf.ts[idx].tolist(), cf.size[idx].tolist()
    fkeys = [cls.keys[cls.flow[i]] for i in rows]
    fpos = {k: j for j, k in enumerate(p.flows)}
    tpos = {k: j for j, k in enumerate(p.types)}
    p.flow_series, p.flow_hist = python_series([fpos[k] for k in fkeys], ts, size, p.bin_ns)
    p.type_series, p.type_hist = python_series(
        [tpos[(k, TYPE_NAMES[cls.ftype[i]])] for k, i in zip(fkeys, rows, strict=True)],
        ts, size, p.bin_ns)
    p.flows, p.types = p.flow_table(), p.type_table()
    p.hints, p.flow_tops, p.type_tops = {}, {}, {}


def thresholds_to_bytes(flows: Mapping, types: Mapping, streams: dict) -> bytes:
    """Thresholds (results.thresholds) as a message: flows and frame types as byte-keyed
    columns, protocol streams as lists."""
    return pack("thresholds", {
        "flows": values_to_wire(ScopeValues.of(flows)),
        "types": values_to_wire(ScopeValues.of(types, types=True)),
        "streams": [[*k[0], *k[1:], x] for k, x in streams.items()],
    })


@functools.lru_cache(maxsize=2)  # the same thresholds reach every chunk of a run
@without_gc
def thresholds_from_bytes(data: bytes) -> tuple[ScopeValues, ScopeValues, dict]:
    """The thresholds message (shared by the chunks of a run: never modify it)."""
    m = unpack(data, "thresholds")
    try:
        return (values_from_wire(m["flows"], flow_text), values_from_wire(m["types"], type_text),
                {(tuple(r[:3]), *r[3:8]): r[8] for r in m["streams"]})
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise WireFormatError(f"malformed thresholds message: {exc!r}") from exc


def _from_tops(scopes: dict, tops: dict, thr: dict) -> tuple[list, dict]:
    """`_from_table` of protocol streams (stats lists), without the seams."""
    rows, reread = [], {}
    for key, st in scopes.items():
        x = thr.get(key)
        if x is None or st[MAX] is None or st[MAX] < x:
            continue
        heap, dropped, _count = tops[key]
        if dropped is None or dropped < x:
            rows.extend((key, frame, ts, iat) for iat, frame, ts in heap if iat >= x)
        else:
            reread[key] = x
    return rows, reread


def _from_table(t: ScopeTable, thr: ScopeValues, seam: np.ndarray, has: np.ndarray
                ) -> tuple[list, dict]:
    """Outlier rows (key, frame, ts, iat) of a chunk's table answerable without re-reading
    it: from the kept top IATs, and at the seams with the chunks before (`seam`, `has`: the
    table's columns of partial.Before); and the scopes that need a re-read (key ->
    threshold)."""
    if not len(thr) or not len(t):
        return [], {}
    x = thr.at(t, _I64_MAX)
    c, keys = t.cols, t.key_list
    found: list = []
    cand = (c["n"] > 0) & (c["max"] >= x)
    reread: dict = {}
    if cand.any():
        k = t.tops if t.tops is not None else Tops.empty(len(t))
        answered = cand & (k.all_kept | (k.dropped < x))
        hit = answered[k.row] & (k.iat >= x[k.row])
        found = list(zip([keys[r] for r in k.row[hit].tolist()], k.frame[hit].tolist(),
                         k.ts[hit].tolist(), k.iat[hit].tolist(), strict=True))
        reread = {keys[r]: int(x[r]) for r in np.flatnonzero(cand & ~answered).tolist()}
    rows, iat = table_seams(seam, has)
    hit = iat >= x[rows]
    rows = rows[hit]
    found += zip([keys[r] for r in rows.tolist()], c["first_frame"][rows].tolist(),
                 c["first_ns"][rows].tolist(), iat[hit].tolist(), strict=True)
    return found, reread


_I64_MAX = (1 << 63) - 1


def _iat_hits(group: np.ndarray, frame: np.ndarray, ts: np.ndarray, thr: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(group, frame, ts, iat) of every in-chunk IAT >= its group's threshold `thr[group]`."""
    order = np.argsort(group, kind="stable")
    g, f, t = group[order], frame[order], ts[order]
    same = g[1:] == g[:-1]
    iat = t[1:] - t[:-1]
    hit = same & (iat >= thr[g[1:]])
    return g[1:][hit], f[1:][hit], t[1:][hit], iat[hit]


def _rescan(frame: np.ndarray, ts: np.ndarray, scope: np.ndarray, nscopes: int,
            cand: dict[int, int], key_of: Callable[[int], Any]) -> list[list]:
    """Outlier rows [key, frame, ts, iat] for the candidate scopes (scope id -> threshold),
    from the chunk's frames (or messages) in order; `key_of` names a scope id."""
    thr = np.full(nscopes, _I64_MAX, dtype=np.int64)
    for i, x in cand.items():
        if x <= _I64_MAX:
            thr[i] = x
    g, f, t, iat = _iat_hits(scope, frame, ts, thr)
    return [[key_of(gi), fi, ti, xi] for gi, fi, ti, xi in
            zip(g.tolist(), f.tolist(), t.tolist(), iat.tolist(), strict=True)]


def _flow_ids(index: KeyIndex, flows: list) -> np.ndarray:
    """The chunk's flow id (its row in `index`, the chunk's flow byte keys) of each text flow
    key, -1 where the chunk has none: one search, not a text key made for every flow."""
    return index.rows_of(key_array([flow_bytes(k) for k in flows]))


def chunk_outliers(spec: ChunkSpec, settings: Settings, partial: bytes | Partial,
                   thresholds: bytes | tuple[Mapping, Mapping, dict],
                   before: bytes | Before, storage: source.Storage | None = None
                   ) -> bytes:
    """Pass 2: outlier rows [flow key, frame, ts, iat] (and per frame type) of the IATs that
    end in this chunk: at its seam (from `before`: what the chunks before it left, as wire
    bytes or decoded) and inside it.

    Scopes whose in-chunk maximum is below the threshold have none inside; scopes whose kept
    top IATs include every IAT at or above the threshold are answered from the partial; the
    chunk is re-read only for the rest. The serial pipeline passes the three inputs decoded.
    """
    t0 = time.perf_counter()
    part = partial_from_bytes(partial) if isinstance(partial, bytes) else partial
    flow_thr, type_thr, stream_thr = thresholds_from_bytes(thresholds) \
        if isinstance(thresholds, bytes) else thresholds
    flow_thr, type_thr = ScopeValues.of(flow_thr), ScopeValues.of(type_thr, types=True)
    if isinstance(before, bytes):
        before = before_from_bytes(before)
    if len(before.flows_has) != len(part.flow_table()) or \
            len(before.types_has) != len(part.type_table()):
        raise WireFormatError("a chunk's Before does not match its partial")
    f_found, fcand = _from_table(part.flow_table(), flow_thr, before.flows, before.flows_has)
    t_found, tcand = _from_table(part.type_table(), type_thr, before.types, before.types_has)
    s_found, scand = _from_tops(part.streams, part.stream_tops, stream_thr)
    s_found += [r for r in stream_seams(before.streams, part.streams)
                if r[0] in stream_thr and r[3] >= stream_thr[r[0]]]
    if fcand or tcand or scand:
        cf = chunk_frames(spec, settings, storage=storage)
        cls = cf.cls
        decoded = cls.flow >= 0
        flow = cls.flow[decoded].astype(np.int64)
        frame, ts = cf.frame[decoded], cf.ts[decoded]
        index = KeyIndex(cls.key_bytes) if fcand or tcand else None
        if fcand:
            ids = _flow_ids(index, list(fcand))
            f_found += _rescan(frame, ts, flow, len(cls.keys),
                               {i: x for i, x in zip(ids.tolist(), fcand.values(), strict=True)
                                if i >= 0}, cls.keys.__getitem__)
        if tcand:
            ids = _flow_ids(index, [k[0] for k in tcand])
            t_found += _rescan(
                frame, ts, flow * NTYPES + cls.ftype[decoded], len(cls.keys) * NTYPES,
                {i * NTYPES + TYPE_ID[k[1]]: x for i, (k, x) in
                 zip(ids.tolist(), tcand.items(), strict=True) if i >= 0},
                lambda s: (cls.keys[s // NTYPES], TYPE_NAMES[s % NTYPES]))
        if scand:
            sid, skeys, _order = stream_ids(cf.msgs, cls.flow, cls.keys)
            row = cf.msgs.cols["row"]
            s_found += _rescan(cf.frame[row], cf.ts[row], sid, len(skeys),
                               {i: scand[k] for i, k in enumerate(skeys) if k in scand},
                               skeys.__getitem__)
    return pack("outliers", {"index": spec.index,
                             "flows": _outlier_message(f_found, list),
                             "types": _outlier_message(t_found, lambda k: [*k[0], k[1]]),
                             "streams": _outlier_message(s_found, lambda k: [*k[0], *k[1:]]),
                             "reread": bool(fcand or tcand or scand),
                             "seconds": time.perf_counter() - t0})


def _outlier_message(rows: list, flat: Callable[[Any], list]) -> dict:
    """Outlier rows (key, frame, ts, iat) as the client reads them (results._outlier_rows):
    the distinct keys, flattened by `flat`, and one int64 row (key's index, frame, ts, iat)
    per outlier, as bytes: thousands of outliers decode at numpy's speed, not msgpack's."""
    index: dict = {}
    cols = np.array([(index.setdefault(k, len(index)), f, t, x) for k, f, t, x in rows],
                    dtype="<i8").reshape(-1, 4)
    return {"keys": [flat(k) for k in index], "rows": cols.tobytes()}
