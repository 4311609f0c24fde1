"""The two chunk tasks, plain functions `(chunk, settings, ...) -> bytes` (STYLE §2).

Pass 1 (`analyze_chunk`) dissects a chunk into a Partial. Pass 2 (`chunk_outliers`) re-reads
a chunk only if some scope in it has an in-chunk IAT at or above that scope's global
threshold, and returns the outlier rows found inside the chunk; IATs spanning chunk seams are
tested by the reducer from the boundary IATs.
"""

from __future__ import annotations

from collections.abc import Iterator

from .capture import pcap, pcapng
from .capture.split import ChunkSpec
from .dissect.classify import Classified, classify
from .errors import CaptureFormatError
from .partial import MAX, MAX_UNDECODABLE_LISTED, Partial, add_iat, keep_top, new_stats
from .settings import Settings
from .wire import pack, partial_from_bytes, partial_to_bytes, unpack


def read_range(path: str, start: int, end: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start)


def iter_frames(spec: ChunkSpec) -> Iterator[tuple[int, int | None, int, int, bytes]]:
    """(frame number, ts_ns or None, linktype, captured length, frame bytes) per frame."""
    buf = read_range(spec.path, spec.start, spec.end)
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


def iter_classified(spec: ChunkSpec) -> Iterator[tuple[int, int | None, int, Classified | None]]:
    for frame, ts, lt, cap, data in iter_frames(spec):
        yield frame, ts, cap, (classify(lt, data) if ts is not None else None)


def analyze_chunk(spec: ChunkSpec, settings: Settings) -> bytes:
    """Pass 1: the chunk's Partial, as wire bytes."""
    p = Partial(lo=spec.index, hi=spec.index, frames=spec.frames)
    flows, types, hints, malformed = p.flows, p.types, p.hints, p.malformed
    ftops, ttops = p.flow_tops, p.type_tops
    for frame, ts, cap, c in iter_classified(spec):
        if ts is None:
            p.untimed += 1
            continue
        if p.first_ns is None:
            p.first_ns = ts
        p.last_ns = ts
        if c is None:
            p.undecodable += 1
            if len(p.undecodable_first) < MAX_UNDECODABLE_LISTED:
                p.undecodable_first.append(frame)
            continue
        key, ftype, frame_hints, bad = c
        st = flows.get(key)
        if st is None:
            flows[key] = new_stats(frame, ts, cap)
            hints[key] = set(frame_hints)
        else:
            keep_top(ftops, key, add_iat(st, frame, ts, cap), frame, ts)
            hints[key].update(frame_hints)
        tkey = (key, ftype)
        st = types.get(tkey)
        if st is None:
            types[tkey] = new_stats(frame, ts, cap)
        else:
            keep_top(ttops, tkey, add_iat(st, frame, ts, cap), frame, ts)
        if bad is not None:
            malformed[bad] = malformed.get(bad, 0) + 1
    return partial_to_bytes(p)


def thresholds_to_bytes(flows: dict, types: dict) -> bytes:
    return pack("thresholds", {
        "flows": [[*k, x] for k, x in flows.items()],
        "types": [[*k[0], k[1], x] for k, x in types.items()],
    })


def thresholds_from_bytes(data: bytes) -> tuple[dict, dict]:
    m = unpack(data, "thresholds")
    return ({tuple(r[:3]): r[3] for r in m["flows"]},
            {(tuple(r[:3]), r[3]): r[4] for r in m["types"]})


def _from_tops(scopes: dict, tops: dict, thr: dict) -> tuple[list, dict]:
    """Outlier rows answerable from the kept top IATs, and the scopes that need a re-read."""
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


def chunk_outliers(spec: ChunkSpec, settings: Settings, partial: bytes,
                   thresholds: bytes) -> bytes:
    """Pass 2: outlier rows [flow key, frame, ts, iat] (and per frame type) inside the chunk.

    Scopes whose in-chunk maximum is below the threshold have none; scopes whose kept top IATs
    include every IAT at or above the threshold are answered from the partial; the chunk is
    re-read only for the rest.
    """
    part = partial_from_bytes(partial)
    flow_thr, type_thr = thresholds_from_bytes(thresholds)
    f_found, fcand = _from_tops(part.flows, part.flow_tops, flow_thr)
    t_found, tcand = _from_tops(part.types, part.type_tops, type_thr)
    frows = [[*k, f, t, i] for k, f, t, i in f_found]
    trows = [[*k[0], k[1], f, t, i] for k, f, t, i in t_found]
    if fcand or tcand:
        flast: dict = {}
        tlast: dict = {}
        for frame, ts, _cap, c in iter_classified(spec):
            if c is None:
                continue
            key, ftype = c[0], c[1]
            thr = fcand.get(key)
            if thr is not None:
                prev = flast.get(key)
                if prev is not None and ts - prev >= thr:
                    frows.append([*key, frame, ts, ts - prev])
                flast[key] = ts
            tkey = (key, ftype)
            thr = tcand.get(tkey)
            if thr is not None:
                prev = tlast.get(tkey)
                if prev is not None and ts - prev >= thr:
                    trows.append([*key, ftype, frame, ts, ts - prev])
                tlast[tkey] = ts
    return pack("outliers", {"index": spec.index, "flows": frows, "types": trows,
                             "reread": bool(fcand or tcand)})
