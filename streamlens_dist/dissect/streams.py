"""Protocol messages inside frames (docs/STREAMS.md §1): stream identity, sequence number,
size and status of every Chapter 10 packet and transfer header, PTP, IENA and iNET-X message.

`frame_messages(ftype, payload)` is the per-frame definition; `chunk_messages` applies it to a
whole chunk, with numpy for the one-message shapes (IENA, iNET-X, PTP, segment continuations)
and per frame for Chapter 10 datagrams, whose packets must be walked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:  # the compiled pass; the numpy path below gives the same messages
    from . import _messages
except ImportError:  # pragma: no cover - exercised by tests with the import blocked
    _messages = None
from . import ch10, ip, link, transport
from .names import TYPE_ID, TYPE_NAMES

PROTOCOLS = ("CH10-UDP", "CH10", "PTP", "IENA", "INETX")  # index = code = row-order rank
CH10_UDP, CH10, PTP, IENA, INETX = range(5)
FIRST_SEGMENT, CONTINUATION = 1, 2
MAX_PACKETS_PER_DATAGRAM = 4096
TMATS_TYPE = 0x01

# A message: (position in frame, protocol, id1, id2, id3, id4, seq, seq bits, bytes,
# state, error, segment, aux). state: IENA key status << 8 | N2 status, else -1; error: 0/1;
# segment (CH10-UDP): 0 full-packet datagram, 1 first segment, 2 continuation;
# aux: PTP Sync -> two-step flag, Announce -> grandmaster (signed 64-bit), else -1.
Message = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int]

_CH10_TYPES = frozenset((TYPE_ID["CH10-Data"], TYPE_ID["TMATS"]))
_PTP_TYPES = frozenset(i for i, n in enumerate(TYPE_NAMES) if n.startswith("PTP-"))
_IENA_TYPES = frozenset(i for i, n in enumerate(TYPE_NAMES) if n.startswith("IENA-"))
_INETX = TYPE_ID.get("INETX", -1)
_UDP = TYPE_ID["UDP"]
# frame type code -> which protocol's messages it may carry (_UDP_KIND: continuations)
_NONE, _UDP_KIND = -1, 5
_KIND = np.full(len(TYPE_NAMES), _NONE, dtype=np.int64)
_KIND[list(_CH10_TYPES)] = CH10
_KIND[list(_PTP_TYPES)] = PTP
_KIND[list(_IENA_TYPES)] = IENA
if _INETX >= 0:
    _KIND[_INETX] = INETX
_KIND[_UDP] = _UDP_KIND
PTP_SYNC, PTP_FOLLOW_UP, PTP_ANNOUNCE = 0x0, 0x8, 0xB


def _s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def app_payload(linktype: int, data: bytes) -> bytes | None:
    """The UDP payload (or the L2 payload of a PTP-over-Ethernet frame), else None."""
    layer = link.decode(linktype, data)
    if layer is None:
        return None
    if layer[0] == "l2":
        return data[layer[4]:] if layer[3] == link.ETH_PTP else None
    info = ip.decode(data, layer[1], layer[4])
    if info is None or info[5] or info[3] != 17:
        return None
    u = transport.udp(info[4])
    return None if u is None else u[2]


def _transfer(p: bytes) -> tuple[int, int, int, int, int, bool] | None:
    """(format, source id, seq, bits, first header offset, full-packet) of a datagram the
    ladder called Chapter 10: the first candidate whose packet header is valid."""
    for fmt, off in ch10.candidates(p):
        if ch10.header_ok(p, off) is None:
            continue
        if fmt == 2:
            return 2, 0, int.from_bytes(p[0:3], "big"), 24, off, p[3] >> 4 == 0
        if fmt == 1:
            return 1, 0, int.from_bytes(p[1:4], "little"), 24, off, p[0] >> 4 == 0
        word, bits = int.from_bytes(p[4:8], "little"), max(0, 32 - 4 * (p[0] >> 4))
        return 3, word >> bits if bits < 32 else 0, word & ((1 << bits) - 1), bits, off, True
    return None


def _continuation(p: bytes) -> tuple[int, int, int] | None:
    """(format, seq, bits) of a Chapter 10 segment with a non-zero offset (STREAMS.md §1.2)."""
    if len(p) < 12:
        return None
    if p[0] == 0x11 and int.from_bytes(p[8:12], "little") > 0:
        return 1, int.from_bytes(p[1:4], "little"), 24
    if p[3] == 0x12:
        offset = (p[4] << 16) | int.from_bytes(p[8:10], "big")
        if offset > 0 and int.from_bytes(p[5:8], "big") > offset:  # both in 32-bit words
            return 2, int.from_bytes(p[0:3], "big"), 24
    return None


def _ch10_messages(p: bytes, tmats: list[tuple[int, str]]) -> list[Message]:
    t = _transfer(p)
    if t is None:
        return []
    fmt, source, seq, bits, off, full = t
    out: list[Message] = [(0, CH10_UDP, fmt, source, 0, 0, seq, bits, len(p), -1, 0,
                           0 if full else FIRST_SEGMENT, -1)]
    n = len(p)
    while len(out) <= MAX_PACKETS_PER_DATAGRAM and n - off >= 24:
        h = ch10.header_ok(p, off)
        if h is None:
            break
        dtype, body, _ok = h
        chan = int.from_bytes(p[off + 2:off + 4], "little")
        plen = int.from_bytes(p[off + 4:off + 8], "little")
        flags = p[off + 14]
        out.append((len(out), CH10, chan, dtype, 0, 0, p[off + 13], 8, plen, -1,
                    1 if flags & 0x30 else 0, 0, -1))
        if dtype == TMATS_TYPE and full and off + plen <= n:
            dlen = int.from_bytes(p[off + 8:off + 12], "little")
            text = p[body + 4:body + max(dlen, 4)].decode("latin-1").rstrip("\0")
            tmats.append((chan, text))
        if not full:
            break
        off += plen
    return out


def _ptp_message(p: bytes) -> Message:
    mtype = p[0] & 0x0F
    mlen = int.from_bytes(p[2:4], "big")
    aux = -1
    if mtype == PTP_SYNC:
        aux = (p[6] >> 1) & 1
    elif mtype == PTP_ANNOUNCE and mlen >= 63:
        aux = _s64(int.from_bytes(p[53:61], "big"))
    return (0, PTP, p[4], mtype, _s64(int.from_bytes(p[20:28], "big")),
            int.from_bytes(p[28:30], "big"), int.from_bytes(p[30:32], "big"), 16, mlen, -1, 0,
            0, aux)


def frame_messages(ftype: int, payload: bytes, tmats: list[tuple[int, str]]
                   ) -> list[Message]:
    """The messages of one frame of type code `ftype` with application payload `payload`;
    TMATS texts found are appended to `tmats` as (channel ID, text)."""
    if ftype in _CH10_TYPES:
        return _ch10_messages(payload, tmats)
    if ftype in _PTP_TYPES:
        return [_ptp_message(payload)]
    if ftype in _IENA_TYPES:
        p = payload
        return [(0, IENA, int.from_bytes(p[0:2], "big"), 0, 0, 0, int.from_bytes(p[12:14], "big"),
                 16, len(p), (p[10] << 8) | p[11], 0, 0, -1)]
    if ftype == _INETX:
        p = payload
        pif = int.from_bytes(p[24:28], "big")
        return [(0, INETX, int.from_bytes(p[4:8], "big"), 0, 0, 0, int.from_bytes(p[8:12], "big"),
                 32, len(p), -1, 1 if pif & 0x84000000 else 0, 0, -1)]
    if ftype == _UDP:
        c = _continuation(payload)
        if c is not None:
            return [(0, CH10_UDP, c[0], 0, 0, 0, c[1], c[2], len(payload), -1, 0, CONTINUATION,
                     -1)]
    return []


MESSAGE_COLUMNS = ("row", "pos", "proto", "id1", "id2", "id3", "id4", "seq", "bits", "size",
                   "state", "error", "segment", "aux")


@dataclass
class ChunkMessages:
    """The messages of a chunk as columns, in message order (row = frame index in the chunk),
    and the TMATS texts as (row, channel ID, text)."""

    cols: dict[str, np.ndarray]
    tmats: list[tuple[int, int, str]]

    def __len__(self) -> int:
        return len(self.cols["row"])


def _empty() -> dict[str, np.ndarray]:
    return {c: np.zeros(0, dtype=np.int64) for c in MESSAGE_COLUMNS}


def _from_rows(rows: list[tuple]) -> dict[str, np.ndarray]:
    if not rows:
        return _empty()
    arr = np.array(rows, dtype=np.int64).T.copy()  # contiguous columns
    return {c: arr[i] for i, c in enumerate(MESSAGE_COLUMNS)}


class _Bytes:
    """Field gathers from the chunk buffer; offsets always lie inside a frame's payload."""

    def __init__(self, buf: bytes | memoryview) -> None:
        self.b = np.frombuffer(buf, dtype=np.uint8)
        self._views: dict[str, np.ndarray] = {}

    def _view(self, dtype: str) -> np.ndarray:
        # unaligned views with a one-byte stride: one gather per field, not one per byte
        v = self._views.get(dtype)
        if v is None:
            width = np.dtype(dtype).itemsize
            v = self._views[dtype] = np.ndarray((max(len(self.b) - width + 1, 0),), dtype=dtype,
                                                buffer=self.b, strides=(1,))
        return v

    def u8(self, i: np.ndarray) -> np.ndarray:
        return self.b[i].astype(np.int64)

    def le(self, i: np.ndarray, width: int) -> np.ndarray:
        if width == 3:
            return self.le(i, 2) | (self.u8(i + 2) << 16)
        return self._view(f"<u{width}")[i].astype(np.int64)

    def be(self, i: np.ndarray, width: int) -> np.ndarray:
        if width == 3:
            return (self.u8(i) << 16) | self.be(i + 1, 2)
        if width == 8:
            return self._view(">u8")[i].astype(np.uint64).view(np.int64)
        return self._view(f">u{width}")[i].astype(np.int64)


def _vector(b: _Bytes, rows: np.ndarray, q: np.ndarray, plen: np.ndarray, proto: int
            ) -> dict[str, np.ndarray]:
    n = len(rows)
    z, m1 = np.zeros(n, np.int64), np.full(n, -1, np.int64)
    cols = {"row": rows.astype(np.int64), "pos": z, "proto": np.full(n, proto, np.int64),
            "id2": z, "id3": z, "id4": z, "state": m1, "error": z, "segment": z, "aux": m1,
            "size": plen.astype(np.int64)}
    if proto == IENA:
        cols.update(id1=b.be(q, 2), seq=b.be(q + 12, 2), bits=np.full(n, 16, np.int64),
                    state=(b.u8(q + 10) << 8) | b.u8(q + 11))
    elif proto == INETX:
        pif = b.be(q + 24, 4)
        cols.update(id1=b.be(q + 4, 4), seq=b.be(q + 8, 4), bits=np.full(n, 32, np.int64),
                    error=((pif & 0x84000000) != 0).astype(np.int64))
    else:  # PTP
        mtype = b.u8(q) & 0x0F
        mlen = b.be(q + 2, 2)
        aux = np.where(mtype == PTP_SYNC, (b.u8(q + 6) >> 1) & 1, -1)
        ann = np.flatnonzero((mtype == PTP_ANNOUNCE) & (mlen >= 63))
        aux[ann] = b.be(q[ann] + 53, 8)
        cols.update(id1=b.u8(q + 4), id2=mtype, id3=b.be(q + 20, 8), id4=b.be(q + 28, 2),
                    seq=b.be(q + 30, 2), bits=np.full(n, 16, np.int64), size=mlen, aux=aux)
    return cols


def _ch10_header(b: _Bytes, h: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Vectorised ch10.header_ok (validity only) of headers at h with `room` bytes left."""
    ok = room >= 24
    idx = np.flatnonzero(ok)
    hh = h[idx]
    plen, dlen = b.le(hh + 4, 4), b.le(hh + 8, 4)
    hlen = np.where(b.u8(hh + 14) & 0x80, 36, 24)
    ok[idx] = (b.u8(hh) == 0x25) & (b.u8(hh + 1) == 0xEB) & (plen % 4 == 0) & (plen >= hlen) \
        & (dlen <= plen - hlen)
    return ok


def _ch10_vector(b: _Bytes, rows: np.ndarray, q: np.ndarray, n: np.ndarray
                 ) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Messages of Chapter 10 datagrams holding exactly one packet that is not TMATS (the
    transfer header and that packet), and the mask of rows left to the per-frame walk."""
    b0, b3 = b.u8(q), b.u8(q + 3)
    words = b.be(q + 5, 3) * 4
    f2 = ((b3 & 0x0F) == 2) & (b.u8(q + 4) == 0) & (b.u8(q + 8) == 0) & (b.u8(q + 9) == 0) \
        & ((words == n - 12) | (((b3 >> 4) == 1) & (words > n - 12)))
    f2 &= _ch10_header(b, q + 12, np.where(f2, n - 12, 0))
    fmt, typ = b0 & 0x0F, b0 >> 4
    off = np.full(len(q), -1, np.int64)
    off[(fmt == 1) & (typ == 0)] = 4
    seg = (fmt == 1) & (typ == 1)
    seg[seg] = b.le(q[seg] + 8, 4) == 0
    off[seg] = 12
    f3 = fmt == 3
    off[f3] = 8 + b.le(q[f3] + 2, 2)
    other = (off >= 0) & (off < n)
    other[other] = _ch10_header(b, q[other] + off[other], n[other] - off[other])
    other &= ~f2
    found = f2 | other
    off = np.where(f2, 12, off)
    tfmt = np.where(f2, 2, np.where(fmt == 3, 3, 1))
    full = np.where(f2, (b3 >> 4) == 0, (fmt == 3) | (typ == 0))
    h = q + np.where(found, off, 0)
    dtype = np.where(found, b.u8(h + 15), -1)
    plen = np.where(found, b.le(h + 4, 4), 0)
    single = found & (dtype != TMATS_TYPE) & (~full | (n - off - plen < 24))
    i = np.flatnonzero(single)
    if not len(i):
        return [], ~single
    qi, hi, m = q[i], h[i], len(i)
    word = b.le(qi + 4, 4)
    bits = np.where(tfmt[i] == 3, np.maximum(0, 32 - 4 * (b0[i] >> 4)), 24)
    seq = np.where(tfmt[i] == 2, b.be(qi, 3), np.where(tfmt[i] == 1, b.le(qi + 1, 3),
                                                         word & ((1 << bits) - 1)))
    source = np.where((tfmt[i] == 3) & (bits < 32), word >> np.minimum(bits, 63), 0)
    z, m1 = np.zeros(m, np.int64), np.full(m, -1, np.int64)
    flags = b.u8(hi + 14)
    transfer = {"row": rows[i], "pos": z, "proto": np.full(m, CH10_UDP, np.int64),
                "id1": tfmt[i], "id2": source, "id3": z, "id4": z, "seq": seq, "bits": bits,
                "size": n[i], "state": m1, "error": z,
                "segment": np.where(full[i], 0, FIRST_SEGMENT), "aux": m1}
    packet = {"row": rows[i], "pos": z + 1, "proto": np.full(m, CH10, np.int64),
              "id1": b.le(hi + 2, 2), "id2": dtype[i], "id3": z, "id4": z, "seq": b.u8(hi + 13),
              "bits": np.full(m, 8, np.int64), "size": plen[i], "state": m1,
              "error": ((flags & 0x30) != 0).astype(np.int64), "segment": z, "aux": m1}
    return [transfer, packet], ~single


def chunk_messages(buf: bytes | memoryview, offset: np.ndarray, caplen: np.ndarray,
                   linktype: np.ndarray, ftype: np.ndarray, in_flow: np.ndarray,
                   app_off: np.ndarray | None, app_len: np.ndarray | None,
                   force_numpy: bool = False) -> ChunkMessages:
    """Every message of a chunk's frames that belong to a flow (`in_flow`), in message order.

    `app_off`/`app_len`: the payload of each frame where the classifier located it (-1: not
    located); other frames are decoded again here, one at a time."""
    n = len(ftype)
    if app_off is None:
        app_off, app_len = np.full(n, -1, np.int64), np.zeros(n, np.int64)
    if _messages is not None and not force_numpy:
        parts, walk, texts = _compiled(buf, ftype, in_flow, app_off, app_len)
        tmats = []
        for i in texts.tolist():  # the messages are written; only the texts are read here
            found: list[tuple[int, str]] = []
            _ch10_messages(bytes(buf[int(app_off[i]):int(app_off[i] + app_len[i])]), found)
            tmats.extend((i, chan, text) for chan, text in found)
        return _finish(buf, offset, caplen, linktype, ftype, app_off, app_len, parts,
                       walk.tolist(), tmats)
    b = _Bytes(buf)
    parts, slow_rows = [], []
    kind = np.where(in_flow, _KIND[ftype], _NONE)
    located = app_off >= 0
    for proto, need in ((IENA, 16), (INETX, 28), (PTP, 34)):
        sel = kind == proto
        fast = np.flatnonzero(sel & located & (app_len >= need))
        if len(fast):
            parts.append(_vector(b, fast, app_off[fast], app_len[fast], proto))
        slow_rows.extend(np.flatnonzero(sel & ~(located & (app_len >= need))).tolist())
    # Chapter 10 datagrams: one packet with numpy, several walked per frame
    ch = np.flatnonzero(kind == CH10)
    walk = ch[app_off[ch] < 0]
    fast = ch[app_off[ch] >= 0]
    if len(fast):
        msgs, rest = _ch10_vector(b, fast, app_off[fast], app_len[fast])
        parts += msgs
        walk = np.concatenate([walk, fast[rest]])
    slow_rows.extend(walk.tolist())
    # UDP frames that may be segment continuations
    udp = kind == _UDP_KIND
    cont = udp & located & (app_len >= 12)
    maybe = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(cont)
    if len(idx):
        q = app_off[idx]
        maybe[idx] = (b.u8(q) == 0x11) | (b.u8(q + 3) == 0x12)
    slow_rows.extend(np.flatnonzero(maybe | (udp & ~located)).tolist())
    return _finish(buf, offset, caplen, linktype, ftype, app_off, app_len, parts, slow_rows)


def _compiled(buf: bytes | memoryview, ftype: np.ndarray, in_flow: np.ndarray,
              off: np.ndarray, length: np.ndarray
              ) -> tuple[list[dict[str, np.ndarray]], np.ndarray, np.ndarray]:
    """`_messages.messages` over the chunk's frames: message columns, the rows it left to the
    per-frame path, and the rows whose TMATS texts are still to be read."""
    n = len(ftype)
    ftype = np.ascontiguousarray(ftype, np.int16)
    in_flow = np.ascontiguousarray(in_flow, bool)
    off, length = (np.ascontiguousarray(x, np.int64) for x in (off, length))
    parts, flags, done = [], np.zeros(n, dtype=np.uint8), 0
    while done < n:
        # room for every frame's messages but those of Chapter 10 datagrams with three or more
        # packets; the pass stops where it is full, and the next one continues from there
        cap = 2 * (n - done) + 8192
        out = tuple(np.empty((len(MESSAGE_COLUMNS), cap), dtype=np.int64))
        k, done = _messages.messages(buf, ftype, in_flow, _KIND, off, length, done, out, flags)
        parts.append({c: col[:k] for c, col in zip(MESSAGE_COLUMNS, out, strict=True)})
    return parts, np.flatnonzero(flags == 1), np.flatnonzero(flags == 2)


def _finish(buf, offset, caplen, linktype, ftype, app_off, app_len,  # noqa: ANN001
            parts: list[dict[str, np.ndarray]], slow_rows: list[int],
            tmats: list[tuple[int, int, str]] | None = None) -> ChunkMessages:
    """Add the messages of `slow_rows` (per frame) and put everything in message order."""
    ft = ftype
    rows: list[tuple] = []
    tmats = [] if tmats is None else tmats
    for i in sorted(slow_rows):
        if app_off[i] >= 0:
            payload = bytes(buf[int(app_off[i]):int(app_off[i] + app_len[i])])
        else:
            off = int(offset[i])
            payload = app_payload(int(linktype[i]), bytes(buf[off:off + int(caplen[i])]))
            if payload is None:
                continue
        found: list[tuple[int, str]] = []
        for m in frame_messages(int(ft[i]), payload, found):
            rows.append((i, *m))
        tmats.extend((i, chan, text) for chan, text in found)
    parts = [p for p in parts if len(p["row"])] + ([_from_rows(rows)] if rows else [])
    if not parts:
        return ChunkMessages(_empty(), tmats)
    if len(parts) == 1:  # every producer writes its part in message order
        return ChunkMessages(parts[0], sorted(tmats, key=lambda t: t[0]))
    cols = {c: np.concatenate([p[c] for p in parts]) for c in MESSAGE_COLUMNS}
    # message order: by frame, then position (< 2^13) in the frame
    key = (cols["row"] << 13) | cols["pos"]
    if not (key[1:] > key[:-1]).all():
        order = np.argsort(key, kind="stable")
        cols = {c: v[order] for c, v in cols.items()}
    return ChunkMessages(cols, sorted(tmats, key=lambda t: t[0]))
