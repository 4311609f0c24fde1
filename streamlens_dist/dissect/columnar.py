"""The columnar fast path: classify a whole chunk with numpy (same results as `classify`).

Header fields of every frame are gathered at once from the chunk buffer and the ladder is
applied with vectorised masks. Only the common shapes are handled here: Ethernet with up to
two VLAN tags; IP behind Linux cooked (SLL, SLL2), raw IP, NULL and LOOP headers
(fastlink.py); IPv4 (any IHL, fragments) and IPv6 without extension headers, UDP/TCP with the
whole ladder, ICMP/IGMP, L2 frames. Everything else (other link types, damaged headers,
IPv6 extension headers, Chapter 10 bodies that might be TMATS text)
goes through the per-frame `classify`, so both paths give identical records by construction
of the tests (`tests/test_columnar.py` holds them to it).

When the compiled kernel is built, `_kernels.classify_frames` runs the same decision procedure
as `_fast` in one C pass (same frames handled, same outputs, same flow keys interned in the
same order; `tests/test_columnar_kernel.py`); `_fast` stays the fallback for a missing or old
build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..capture.columns import RecordColumns

try:  # the compiled kernel; the numpy fallback below gives the same counts
    from . import _kernels
except ImportError:  # pragma: no cover - exercised by tests with the import blocked
    _kernels = None
from ..flowkeys import TextKeys, fast_flow_keys, flow_bytes, key_array
from . import fastlink, link
from .classify import classify
from .malformed_scan import maybe_malformed
from .names import HINT_BIT, MALFORMED_ID, TYPE_ID, hint_bits
from .ports import PTP_PORTS, TCP_HINTS, TCP_TYPES, UDP_HINTS, UDP_TYPES

FlowKey = tuple[str, str, str]

_IP6_EXT = np.array([0, 43, 44, 51, 60, 135, 139, 140], dtype=np.int64)
_PRINTABLE = np.zeros(256, dtype=np.int64)
_PRINTABLE[[*range(0x20, 0x7F), 9, 10, 13]] = 1
_NONPRINT = (1 - _PRINTABLE).astype(np.uint8)


def _port_table(table: dict[int, str], values: dict[str, int]) -> np.ndarray:
    arr = np.full(65536, -1, dtype=np.int64)
    for port, name in table.items():
        arr[port] = values[name]
    return arr


_UDP_HINT = _port_table(UDP_HINTS, HINT_BIT)
_TCP_HINT = _port_table(TCP_HINTS, HINT_BIT)
_UDP_TYPE = _port_table(UDP_TYPES, TYPE_ID)
_TCP_TYPE = _port_table(TCP_TYPES, TYPE_ID)
_PTP_TYPE = np.array([TYPE_ID.get("PTP-" + n, TYPE_ID["PTP-Unknown"]) for n in (
    "Sync", "Delay_Req", "Pdelay_Req", "Pdelay_Resp", "", "", "", "", "Follow_Up", "Delay_Resp",
    "Pdelay_Resp_Follow_Up", "Announce", "Signaling", "Management", "", "")], dtype=np.int64)
T = TYPE_ID
H = HINT_BIT


@dataclass
class FrameClasses:
    """Per frame of a chunk: flow id (-1: untimed or undecodable), frame type code, hint
    bits, malformed code (-1: none); `key_bytes[flow id]` is the flow's byte key
    (flowkeys.py) and `keys[flow id]` its text key, made when first read.

    `app_off`, `app_len` (int64): where the application payload of a frame the fast path
    handled lies in the chunk buffer: for a UDP datagram (a header of 8 bytes or more) the UDP
    payload (bytes 8..ulen when 8 <= ulen <= the IP payload, else all of it), for an Ethernet
    frame with ethertype 0x88F7 (PTP over L2, behind VLAN tags) the bytes after the ethertype.
    Every other frame, and every frame the per-frame `classify` handled (`slow_frames`), has
    app_off -1 and app_len 0: its payload must be found per frame. Which frames the fast path
    keeps differs between the compiled kernel and numpy (numpy sends a wider set of possibly
    malformed frames to `classify`), so -1 is "not located here", never "no payload"."""

    flow: np.ndarray
    ftype: np.ndarray
    hints: np.ndarray
    malformed: np.ndarray
    app_off: np.ndarray
    app_len: np.ndarray
    key_bytes: np.ndarray
    keys: TextKeys
    slow_frames: int = 0


def _by_port(table: np.ndarray, sport: np.ndarray, dport: np.ndarray) -> np.ndarray:
    """Vectorised ports.by_port: either port's value, the lower port's when both differ."""
    a, b = table[sport], table[dport]
    return np.where(a < 0, b, np.where((b < 0) | (a == b), a, np.where(sport < dport, a, b)))


class _Chunk:
    """The chunk buffer as uint8 with big/little-endian field gathers."""

    def __init__(self, buf: bytes) -> None:
        self.b = np.frombuffer(buf, dtype=np.uint8)
        self._w: np.ndarray | None = None

    def u64(self, at: np.ndarray) -> np.ndarray:
        """The 8 bytes from each offset as a little-endian uint64 (zeros past the end): one
        gather per row from an unaligned view, where byte-by-byte gathers would cost eight."""
        n = len(self.b)
        if self._w is None:
            self._w = np.ndarray((max(n - 7, 0),), dtype="<u8", buffer=self.b, strides=(1,))
        out = np.zeros(len(at), dtype=np.uint64)
        inside = at <= n - 8
        out[inside] = self._w[at[inside]]
        for i in np.flatnonzero(~inside).tolist():  # the last bytes of the chunk
            tail = bytes(self.b[int(at[i]):n])
            out[i] = int.from_bytes(tail + bytes(8 - len(tail)), "little")
        return out

    def nonprintable(self, s: np.ndarray, e: np.ndarray) -> np.ndarray:
        """How many bytes in each [s, e) are not printable text. Segments are non-empty,
        ascending and disjoint (frame bodies in buffer order)."""
        s, e = np.ascontiguousarray(s, np.int64), np.ascontiguousarray(e, np.int64)
        if _kernels is not None:
            out = np.empty(len(s), dtype=np.int64)
            _kernels.nonprintable(self.b, s, e, out)
            return out
        lo, hi = int(s[0]), int(e[-1])
        flags = _NONPRINT[self.b[lo:hi]]
        idx = np.empty(2 * len(s), dtype=np.int64)
        idx[0::2], idx[1::2] = s - lo, e - lo
        if idx[-1] == len(flags):
            idx = idx[:-1]
        return np.add.reduceat(flags, idx, dtype=np.int64)[0::2]

    def u8(self, i: np.ndarray) -> np.ndarray:
        """Raw bytes (uint8): compare and mask them; widen before arithmetic."""
        return self.b[i]

    def be16(self, i: np.ndarray) -> np.ndarray:
        return (self.b[i].astype(np.int64) << 8) | self.b[i + 1]

    def le16(self, i: np.ndarray) -> np.ndarray:
        return self.b[i] | (self.b[i + 1].astype(np.int64) << 8)

    def le32(self, i: np.ndarray) -> np.ndarray:
        return self.le16(i) | (self.le16(i + 2) << 16)


class _Out:
    """Result arrays plus flow-key interning shared by both paths."""

    def __init__(self, n: int) -> None:
        self.flow = np.full(n, -1, dtype=np.int32)
        self.ftype = np.zeros(n, dtype=np.int16)
        self.hints = np.zeros(n, dtype=np.int32)
        self.malformed = np.full(n, -1, dtype=np.int8)
        self.app_off = np.full(n, -1, dtype=np.int64)
        self.app_len = np.zeros(n, dtype=np.int64)
        self._kb: list[np.ndarray] = []  # byte keys of the flow ids, in id order
        self._count = 0
        self._index: dict[bytes, int] | None = None  # byte key -> id, once a key may repeat
        self._kinds: set[str] = set()

    @property
    def key_bytes(self) -> np.ndarray:
        if len(self._kb) != 1:
            self._kb = [np.concatenate(self._kb) if self._kb else np.zeros(0, "S1")]
        return self._kb[0]

    @property
    def keys(self) -> TextKeys:
        return TextKeys(self.key_bytes)

    def _lookup(self) -> dict[bytes, int]:
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.key_bytes.tolist())}
        return self._index

    def intern(self, key: FlowKey) -> int:
        """The id of a flow's text key (the per-frame path)."""
        return self.intern_bytes(key_array([flow_bytes(key)]))[0]

    def intern_bytes(self, kb: np.ndarray, kind: str | None = None) -> np.ndarray:
        """Ids of distinct byte keys, new ones appended in order. The fast path gives each
        kind once and first, so its keys are new without a lookup."""
        if kind is not None and kind not in self._kinds and self._index is None:
            self._kinds.add(kind)
            ids = np.arange(self._count, self._count + len(kb), dtype=np.int32)
            self._kb.append(kb)
            self._count += len(kb)
            return ids
        index = self._lookup()
        ids = np.empty(len(kb), np.int32)
        fresh = []
        for j, k in enumerate(kb.tolist()):
            i = index.get(k)
            if i is None:
                i = index[k] = self._count
                self._count += 1
                fresh.append(j)
            ids[j] = i
        if fresh:
            self._kb.append(kb[fresh])
        return ids

    def set(self, rows: np.ndarray, ftype: np.ndarray | int, hints: np.ndarray | int,
            malformed: np.ndarray | int = -1) -> None:
        self.ftype[rows] = ftype
        self.hints[rows] = hints
        self.malformed[rows] = malformed

    def app(self, rows: np.ndarray, off: np.ndarray, length: np.ndarray) -> None:
        self.app_off[rows] = off
        self.app_len[rows] = length


def _intern_keys(out: _Out, c: _Chunk, rows: np.ndarray, src: np.ndarray, dst: np.ndarray,
                 width: int, kind: str, packed: np.ndarray | None = None) -> None:
    """Flow ids for frames whose addresses are `width` bytes at offsets src/dst (`packed`:
    the IPv4 pairs already read as big-endian uint64 by the kernel)."""
    if not len(rows):
        return
    if packed is not None:
        keys = packed
    else:
        span = np.arange(width)
        raw = np.concatenate([c.b[src[:, None] + span], c.b[dst[:, None] + span]], axis=1)
        raw = np.ascontiguousarray(raw)
        # IPv4 pairs are one big-endian uint64 (a fast sort); others compare as raw bytes
        keys = raw.view(">u8").ravel() if width == 4 else \
            raw.view(np.dtype((np.void, 2 * width))).ravel()
    # distinct keys in order of first appearance (both paths intern identically)
    if _kernels is not None and width == 4 and hasattr(_kernels, "intern_u64"):
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        inverse, uniq = np.empty(len(keys), np.int32), np.empty(len(keys), np.uint64)
        uniq = uniq[:_kernels.intern_u64(keys, inverse, uniq)]
    else:
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        order = np.argsort(first)
        uniq, inverse = uniq[order], np.argsort(order)[inverse.ravel()]
    if width == 4:
        pairs = np.ascontiguousarray(uniq, dtype=">u8").view(np.uint8).reshape(-1, 8)
    else:
        pairs = np.ascontiguousarray(uniq).view(np.uint8).reshape(-1, 2 * width)
    ids = out.intern_bytes(fast_flow_keys(kind, pairs), kind)
    out.flow[rows] = ids[inverse.ravel()]


# The compiled ladder (`_kernels.classify_frames`) reads its codes and tables from here, so
# names.py, ports.py and link.py stay the one definition of every number it uses: the kernel
# lists the names it needs (`CLASSIFY_NAMES`, "space:name") and gets their values in order.
_KERNEL_SPACES: dict[str, dict] = {"type": TYPE_ID, "hint": HINT_BIT, "malformed": MALFORMED_ID,
                                   "link": vars(link)}
_kernel_cache: list = [None, None]  # [module, its tables]


def _kernel_tables(kern) -> tuple | None:
    """The constant arguments of `kern.classify_frames`, or None when `kern` has no compiled
    ladder (missing or an old build) or asks for a name this version does not define."""
    if kern is None:
        return None
    if _kernel_cache[0] is not kern:
        tables = None
        names = getattr(kern, "CLASSIFY_NAMES", None)
        # version 2 leaves frames that might carry a malformed payload to the per-frame path;
        # version 3 adds iNET-X and the application payload offsets (app_off, app_len);
        # version 4 reads Linux cooked captures (SLL, SLL2) as `_fast` does
        if hasattr(kern, "classify_frames") and names is not None and \
                getattr(kern, "LADDER_VERSION", 0) >= 4:
            try:
                values = [_KERNEL_SPACES[space][name]
                          for space, name in (n.split(":", 1) for n in names)]
            except (KeyError, ValueError):
                values = None
            if values is not None and all(isinstance(v, int) for v in values):
                i32 = np.int32
                tables = (np.array(values, dtype=np.int64), fastlink.TPIDS, _IP6_EXT,
                          np.array(sorted(PTP_PORTS), dtype=np.int64), _PTP_TYPE,
                          _UDP_HINT.astype(i32), _UDP_TYPE.astype(i32),
                          _TCP_HINT.astype(i32), _TCP_TYPE.astype(i32))
        _kernel_cache[:] = [kern, tables]
    return _kernel_cache[1]


def _compiled(c: _Chunk, cols: RecordColumns, out: _Out, tables: tuple) -> np.ndarray:
    """`_fast` in one compiled pass: fills out's ftype/hints/malformed/app_off/app_len, interns
    the flow keys (same frames, same order as `_fast`) and returns the mask of frames it
    handled."""
    n = len(cols)
    handled = np.empty(n, dtype=np.uint8)
    kind = np.empty(n, dtype=np.int8)
    src = np.empty(n, dtype=np.int64)
    dst = np.empty(n, dtype=np.int64)
    key4 = np.empty(n, dtype=np.uint64)
    _kernels.classify_frames(
        c.b, np.ascontiguousarray(cols.offset, np.int64), np.ascontiguousarray(cols.caplen, np.int64),
        np.ascontiguousarray(cols.linktype, np.int32),
        np.ascontiguousarray(cols.untimed, np.bool_).view(np.uint8), *tables,
        handled, kind, src, dst, out.ftype, out.hints, out.malformed, key4, out.app_off,
        out.app_len)
    for code, width, name in ((2, 6, "l2"), (0, 4, "ip4"), (1, 16, "ip6")):
        rows = np.flatnonzero(kind == code)
        _intern_keys(out, c, rows, src[rows], dst[rows], width, name,
                     key4[rows] if code == 0 else None)
    return handled.view(np.bool_)


def classify_columns(buf: bytes | memoryview, cols: RecordColumns, force_slow: bool = False
                     ) -> FrameClasses:
    n = len(cols)
    out = _Out(n)
    slow = ~cols.untimed
    if n and not force_slow:
        c = _Chunk(buf)
        tables = _kernel_tables(_kernels)
        if tables is None:
            done = _fast(c, cols, out)
            done &= ~maybe_malformed(c, cols, out, done)
        else:
            done = _compiled(c, cols, out, tables)
        slow = slow & ~done
    rows = np.flatnonzero(slow)
    # frames classified per frame carry no payload offsets (numpy's `_fast` located payloads of
    # frames its suspect scan then sends on)
    out.app_off[rows] = -1
    out.app_len[rows] = 0
    for i in rows.tolist():
        off = int(cols.offset[i])
        r = classify(int(cols.linktype[i]), bytes(buf[off:off + int(cols.caplen[i])]))
        if r is None:
            continue
        key, ftype, hints, bad = r
        out.flow[i] = out.intern(key)
        out.ftype[i] = TYPE_ID[ftype]
        out.hints[i] = hint_bits(hints)
        if bad is not None:
            out.malformed[i] = MALFORMED_ID[bad]
    return FrameClasses(flow=out.flow, ftype=out.ftype, hints=out.hints, malformed=out.malformed,
                        app_off=out.app_off, app_len=out.app_len, key_bytes=out.key_bytes,
                        keys=out.keys,
                        slow_frames=len(rows))


def _fast(c: _Chunk, cols: RecordColumns, out: _Out) -> np.ndarray:
    """Classify what the fast path can; return the mask of frames it handled."""
    done = np.zeros(len(cols), dtype=bool)
    rows, et, l3, ip_only, end = fastlink.network_layer(c, cols)
    base = cols.offset[rows]
    is4 = (et == link.ETH_IP4)
    is6 = (et == link.ETH_IP6)
    l2 = ~(is4 | is6 | ip_only)  # only Ethernet has a MAC pair; the rest: per frame
    done[rows[l2]] = _l2(c, out, rows[l2], base[l2], end[l2], et[l2], l3[l2])
    done[rows[is4]] = _ip4(c, out, rows[is4], end[is4], l3[is4])
    done[rows[is6]] = _ip6(c, out, rows[is6], end[is6], l3[is6])
    return done


def _l2(c: _Chunk, out: _Out, rows, base, end, et, l3) -> np.ndarray:
    ftype = np.where(et == link.ETH_ARP, T["ARP"], T["OTHER"])
    hints = np.zeros(len(rows), dtype=np.int64)
    ptp = np.flatnonzero(et == link.ETH_PTP)
    if len(ptp):
        t = _ptp_type(c, l3[ptp], end[ptp])
        found = t >= 0
        ftype[ptp[found]] = t[found]
        hints[ptp[found]] = H["PTP"]
        out.app(rows[ptp], l3[ptp], end[ptp] - l3[ptp])
    out.set(rows, ftype, hints)
    _intern_keys(out, c, rows, base + 6, base, 6, "l2")
    return np.ones(len(rows), dtype=bool)


def _ptp_type(c: _Chunk, q: np.ndarray, pe: np.ndarray) -> np.ndarray:
    """PTPv2 frame type code of the message at q (ending at pe), or -1 (ptp.detect)."""
    t = np.full(len(q), -1, dtype=np.int64)
    has = np.flatnonzero(pe - q >= 34)
    if len(has):
        qq = q[has]
        mlen = c.be16(qq + 2)
        good = ((c.u8(qq + 1) & 0x0F) == 2) & (mlen >= 34) & (mlen <= pe[has] - qq)
        t[has[good]] = _PTP_TYPE[c.u8(qq[good]) & 0x0F]
    return t


def _ip4(c: _Chunk, out: _Out, rows, end, l3) -> np.ndarray:
    avail = end - l3
    good = avail >= 20
    vhl = np.zeros(len(rows), dtype=np.int64)
    vhl[good] = c.u8(l3[good])
    ihl = (vhl & 0x0F) * 4  # vhl is int64
    good &= ((vhl >> 4) == 4) & (ihl >= 20) & (avail >= ihl)
    handled = good.copy()
    rows, end, l3, avail, ihl = rows[good], end[good], l3[good], avail[good], ihl[good]
    total = c.be16(l3 + 2)
    l4end = np.where((total >= ihl) & (total <= avail), l3 + total, end)
    frag = (c.be16(l3 + 6) & 0x1FFF) > 0
    proto = c.u8(l3 + 9)
    d0 = c.u8(l3 + 16)
    mcast = np.where((d0 >= 224) & (d0 <= 239), H["Multicast"], 0)
    _intern_keys(out, c, rows, l3 + 12, l3 + 16, 4, "ip4")
    out.set(rows[frag], T["IP-Fragment"], mcast[frag])
    whole = ~frag
    sub = _transport(c, out, rows[whole], proto[whole], l3[whole] + ihl[whole], l4end[whole],
                     mcast[whole])
    handled[np.flatnonzero(good)[whole]] = sub
    return handled


def _ip6(c: _Chunk, out: _Out, rows, end, l3) -> np.ndarray:
    good = end - l3 >= 40
    good[good] = (c.u8(l3[good]) >> 4) == 6
    nh = np.zeros(len(rows), dtype=np.int64)
    nh[good] = c.u8(l3[good] + 6)
    good &= ~np.isin(nh, _IP6_EXT)
    handled = good.copy()
    rows, end, l3, nh = rows[good], end[good], l3[good], nh[good]
    plen = c.be16(l3 + 4)
    l4end = np.where((plen != 0) & (l3 + 40 + plen <= end), l3 + 40 + plen, end)
    mcast = np.where(c.u8(l3 + 24) == 0xFF, H["Multicast"], 0)
    _intern_keys(out, c, rows, l3 + 8, l3 + 24, 16, "ip6")
    handled[np.flatnonzero(good)] = _transport(c, out, rows, nh, l3 + 40, l4end, mcast)
    return handled


def _transport(c: _Chunk, out: _Out, rows, proto, l4, l4end, mcast) -> np.ndarray:
    """Ladder from the IP payload on; returns which rows were handled."""
    handled = np.ones(len(rows), dtype=bool)
    l4len = l4end - l4
    udp, tcp = proto == 17, proto == 6
    icmp = (proto == 1) | (proto == 58)
    igmp = proto == 2
    other = ~(udp | tcp | icmp | igmp)
    out.set(rows[icmp], T["ICMP"], mcast[icmp] | H["ICMP"])
    out.set(rows[igmp], T["IGMP"], mcast[igmp] | H["IGMP"])
    out.set(rows[other], T["OTHER"], mcast[other])
    short = udp & (l4len < 8)
    out.set(rows[short], T["UDP"], mcast[short] | H["UDP"])
    u = udp & ~short
    handled[u] = _udp(c, out, rows[u], l4[u], l4end[u], mcast[u])
    short = tcp & (l4len < 4)
    out.set(rows[short], T["TCP"], mcast[short] | H["TCP"])
    t = tcp & ~short
    sport, dport = c.be16(l4[t]), c.be16(l4[t] + 2)
    hint = _by_port(_TCP_HINT, sport, dport)
    ftype = _by_port(_TCP_TYPE, sport, dport)
    out.set(rows[t], np.where(ftype < 0, T["TCP"], ftype),
            mcast[t] | np.where(hint < 0, H["TCP"], hint))
    return handled


def _be32(w: np.ndarray, k: int) -> np.ndarray:
    """The big-endian 32-bit field at bytes k..k+3 of little-endian words from `_Chunk.u64`,
    as int64."""
    w = w >> np.uint64(8 * k)
    return (((w & np.uint64(0xFF)) << np.uint64(24)) | ((w & np.uint64(0xFF00)) << np.uint64(8))
            | ((w >> np.uint64(8)) & np.uint64(0xFF00)) | ((w >> np.uint64(24)) & np.uint64(0xFF))
            ).astype(np.int64)


def _ch10_header(c: _Chunk, q: np.ndarray, plen: np.ndarray, off: np.ndarray) -> dict:
    """Vectorised ch10.header_ok at payload offset `off` (off < 0: no candidate)."""
    ok = (off >= 0) & (plen - off >= 24)
    h = np.where(ok, q + off, 0)
    idx = np.flatnonzero(ok)
    f = {k: np.zeros(len(q), dtype=np.int64) for k in ("dtype", "dlen", "hlen", "csum")}
    if len(idx):
        hh = h[idx]
        sync = (c.u8(hh) == 0x25) & (c.u8(hh + 1) == 0xEB)
        plen_f, dlen = c.le32(hh + 4), c.le32(hh + 8)
        flags = c.u8(hh + 14)
        hlen = np.where(flags & 0x80, 36, 24)
        good = sync & (plen_f % 4 == 0) & (plen_f >= hlen) & (dlen <= plen_f - hlen)
        total = sum(c.le16(hh + 2 * k) for k in range(11)) & 0xFFFF
        ok[idx] = good
        f["dtype"][idx], f["dlen"][idx], f["hlen"][idx] = c.u8(hh + 15), dlen, hlen
        f["csum"][idx] = total == c.le16(hh + 22)
    f["ok"] = ok
    return f


def _iena_records_fit(c: _Chunk, pos: np.ndarray, end: np.ndarray, head: np.ndarray
                     ) -> np.ndarray:
    """Vectorised iena._walk_messages: do the (ParamID, [Delay], Length, Dataset, pad)
    records tile [pos, end) exactly with no Length 0? All frames step together."""
    ok = np.zeros(len(pos), dtype=bool)
    active = np.ones(len(pos), dtype=bool)
    pos = pos.copy()
    while active.any():
        at = np.flatnonzero(active)
        finished = pos[at] == end[at]
        ok[at[finished]] = True
        active[at[finished]] = False
        at = at[~finished]
        fits = end[at] - pos[at] >= head[at]
        active[at[~fits]] = False
        at = at[fits]
        length = c.be16(pos[at] + head[at] - 2)
        active[at[length == 0]] = False
        pos[at] += head[at] + length + (length & 1)
    return ok


def _udp(c: _Chunk, out: _Out, rows, l4, l4end, mcast) -> np.ndarray:
    handled = np.ones(len(rows), dtype=bool)
    sport, dport, ulen = c.be16(l4), c.be16(l4 + 2), c.be16(l4 + 4)
    q = l4 + 8
    pe = np.where((ulen >= 8) & (ulen <= l4end - l4), l4 + ulen, l4end)
    plen = pe - q
    hint = _by_port(_UDP_HINT, sport, dport)
    hints = mcast | np.where(hint < 0, H["UDP"], hint)
    port_type = _by_port(_UDP_TYPE, sport, dport)
    ftype = np.where(port_type < 0, T["UDP"], port_type)
    malformed = np.full(len(rows), -1, dtype=np.int64)
    todo = np.ones(len(rows), dtype=bool)

    # 1. Chapter 10 over UDP
    cand = np.flatnonzero(plen >= 28)
    if len(cand):
        qc, pc = q[cand], plen[cand]
        b3, b0 = c.u8(qc + 3), c.u8(qc)
        words = ((c.u8(qc + 5).astype(np.int64) << 16) | c.be16(qc + 6)) * 4
        f2 = ((b3 & 0x0F) == 2) & (c.u8(qc + 4) == 0) & (c.u8(qc + 8) == 0) & \
            (c.u8(qc + 9) == 0) & ((words == pc - 12) | (((b3 >> 4) == 1) & (words > pc - 12)))
        fmt, typ = b0 & 0x0F, b0 >> 4
        other = np.full(len(cand), -1, dtype=np.int64)
        other[(fmt == 1) & (typ == 0)] = 4
        seg = (fmt == 1) & (typ == 1)
        seg[seg] = c.le32(qc[seg] + 8) == 0
        other[seg] = 12
        f3 = fmt == 3
        other[f3] = 8 + c.le16(qc[f3] + 2)
        first = _ch10_header(c, qc, pc, np.where(f2, 12, -1))
        second = _ch10_header(c, qc, pc, other)
        pick1 = first["ok"]
        found = pick1 | second["ok"]
        fld = {k: np.where(pick1, first[k], second[k]) for k in ("dtype", "dlen", "hlen", "csum")}
        off = np.where(pick1, 12, other)
        hit = cand[found]
        tmats = fld["dtype"][found] == 1
        # a body that might be TMATS text goes to the per-frame regex test
        s = qc[found] + off[found] + fld["hlen"][found] + 4
        e = np.minimum(qc[found] + off[found] + fld["hlen"][found] + fld["dlen"][found],
                       pe[hit])
        length = e - s
        maybe = ~tmats & (length > 0)
        if maybe.any():
            sm, em = s[maybe], e[maybe]
            printable = c.nonprintable(sm, em) * 10 < (em - sm)
            handled[hit[np.flatnonzero(maybe)[printable]]] = False
        ftype[hit] = np.where(tmats, T["TMATS"], T["CH10-Data"])
        hints[hit] |= H["CH10"] | np.where(tmats, H["TMATS"], 0)
        malformed[hit] = np.where(fld["csum"][found] == 1, -1, MALFORMED_ID["CH10-header-checksum"])
        todo[hit] = False

    # 2. PTP on port 319/320
    ptp_port = todo & ((sport == 319) | (sport == 320) | (dport == 319) | (dport == 320))
    idx = np.flatnonzero(ptp_port)
    if len(idx):
        t = _ptp_type(c, q[idx], pe[idx])
        hit = idx[t >= 0]
        ftype[hit] = t[t >= 0]
        hints[hit] |= H["PTP"]
        todo[hit] = False

    # 3. IENA
    idx = np.flatnonzero(todo & (plen >= 16) & (plen % 2 == 0))
    if len(idx):
        qi, pi = q[idx], plen[idx]
        valid = (c.be16(qi + 2) * 2 == pi) & (c.u8(pe[idx] - 2) == 0xDE) & (c.u8(pe[idx] - 1) == 0xAD)
        idx, qi, pi = idx[valid], qi[valid], pi[valid]
        ks = c.u8(qi + 10).astype(np.int64)
        w = ks & 0x07
        payload = pi - 16
        t = np.full(len(idx), T["IENA-Unknown"], dtype=np.int64)
        is_p = (ks & 0x80) != 0
        is_mq = ~is_p & ((ks & 0x20) != 0)
        dn = ~is_p & ~is_mq & (w >= 1)
        is_d = dn & ((ks & 0x10) != 0)
        is_n = dn & ~is_d
        t[is_p] = T["IENA-P"]
        t[is_d & (payload % (2 * (w + 2)) == 0)] = T["IENA-D"]
        t[is_n & (payload % (2 * (w + 1)) == 0)] = T["IENA-N"]
        if is_mq.any():
            is_m = (ks[is_mq] & 0x10) != 0
            ok = _iena_records_fit(c, qi[is_mq] + 14, pe[idx[is_mq]] - 2, np.where(is_m, 6, 4))
            t[np.flatnonzero(is_mq)[ok]] = np.where(is_m[ok], T["IENA-M"], T["IENA-Q"])
        ftype[idx] = t
        hints[idx] |= H["IENA"]
        todo[idx] = False

    # 3b. iNET-X: control word, packet length == payload length, nanoseconds < 10^9
    idx = np.flatnonzero(todo & (plen >= 28))
    if len(idx):
        qx = q[idx]
        w0, w8, w16 = c.u64(qx), c.u64(qx + 8), c.u64(qx + 16)  # payload bytes 0..23
        valid = ((w0 & np.uint64(0xFFFFFFFF)) == 0x11) & (_be32(w8, 4) == plen[idx]) & \
            (_be32(w16, 4) < 1_000_000_000)
        idx = idx[valid]
        ftype[idx] = T["INETX"]
        hints[idx] |= H["INETX"]
        todo[idx] = False

    keep = handled
    out.set(rows[keep], ftype[keep], hints[keep], malformed[keep])
    out.app(rows[keep], q[keep], plen[keep])
    return handled
