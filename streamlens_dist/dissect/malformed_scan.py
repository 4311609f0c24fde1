"""Which frames the numpy fast path handled might carry a malformed payload that only the
per-frame ladder names (docs/DECISIONS.md "Malformed payload names"): a cheap superset of them,
which `columnar.classify_columns` sends to `classify` so both paths give identical records.
The compiled ladder names PTP-header and IENA-size itself and leaves the other such frames
unhandled (`_kernels.c`, `udp_ladder`, `ptp_malformed`).

Bytes are read eight at a time (`_Chunk.u64`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import fastlink, link
from .names import TYPE_ID as T
from .names import hint_bits
from .ports import PTP_PORTS, UDP_HINTS

if TYPE_CHECKING:
    from ..capture.columns import RecordColumns
    from .columnar import _Chunk, _Out

_FELL_THROUGH = np.array([T[n] for n in ("UDP", "DNS", "DHCP", "NTP")], dtype=np.int64)
_CH10_TYPES = np.array([T["CH10-Data"], T["TMATS"]], dtype=np.int64)
_PTP_PORT_LIST = np.array(sorted(PTP_PORTS), dtype=np.int64)
# hints a frame on port 319/320 carries: PTP, or the name of a lower port that won
_PTP_OR_LOWER = hint_bits(("PTP", *{n for p, n in UDP_HINTS.items() if p < max(PTP_PORTS)}))


def _byte(w: np.ndarray, k: int) -> np.ndarray:
    """Byte k of little-endian words from `_Chunk.u64`, as int64."""
    return ((w >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.int64)


def _be16(w: np.ndarray, k: int) -> np.ndarray:
    """The big-endian 16-bit field at bytes k, k+1 of words from `_Chunk.u64`."""
    return (_byte(w, k) << 8) | _byte(w, k + 1)


def _ip_layer(c: _Chunk, cols: RecordColumns, rows: np.ndarray) -> tuple:
    """(IP version is 4, offset of the IP header) of frames the fast path handled as IP."""
    _rows, et, l3, _ip_only, _end = fastlink.network_layer(c, cols, rows)  # each is found
    return et == link.ETH_IP4, l3


def maybe_malformed(c: _Chunk, cols: RecordColumns, out: _Out, done: np.ndarray
                     ) -> np.ndarray:
    """Frames the fast path handled that `classify` might call malformed in a way the fast
    path does not name (a PTP message on a PTP ethertype or port that fails its test, an IENA
    trailer with a bad size field, a Chapter 10 sync before an impossible header, a Format 1
    full-packet datagram shorter than its first packet). A cheap superset of those, sent to
    the per-frame classifier, which decides; real traffic has almost none of them. Bytes are
    read eight at a time; bytes past a datagram are read but never decide anything."""
    may = np.zeros(len(cols), dtype=bool)
    if not out.keys:
        return may
    flow_l2 = np.array([k[2] == "l2" for k in out.keys], dtype=bool)
    decoded = done & (out.flow >= 0)
    l2 = np.zeros(len(cols), dtype=bool)
    l2[decoded] = flow_l2[out.flow[decoded]]
    rows = np.flatnonzero(l2 & (out.ftype == T["OTHER"]))
    if len(rows):  # PTP ethertype behind up to two VLAN tags (type fields at 12, 16, 20)
        base, end = cols.offset[rows], cols.offset[rows] + cols.caplen[rows]
        w0, w1 = c.u64(base + 12), c.u64(base + 20)
        ptp = ((base + 14 <= end) & (_be16(w0, 0) == link.ETH_PTP)) \
            | ((base + 18 <= end) & (_be16(w0, 4) == link.ETH_PTP)) \
            | ((base + 22 <= end) & (_be16(w1, 0) == link.ETH_PTP))
        may[rows[ptp]] = True
    fell_all = np.isin(out.ftype, _FELL_THROUGH)
    rows = np.flatnonzero(decoded & ~l2 & (fell_all | np.isin(out.ftype, _CH10_TYPES)))
    if not len(rows):
        return may
    v4, l3 = _ip_layer(c, cols, rows)
    l4 = l3 + np.where(v4, (c.u8(l3) & 0x0F).astype(np.int64) * 4, 40)
    w = c.u64(l4 + 4)  # UDP length, checksum, payload bytes 0..3
    ulen = _be16(w, 0)
    # `classify` names nothing unless the datagram is whole: its UDP length fits the IP
    # payload, which lies within the frame, so fitting the frame is a (cheap) superset
    keep = (ulen >= 8) & (ulen <= cols.offset[rows] + cols.caplen[rows] - l4)
    rows, l4, ulen, w = rows[keep], l4[keep], ulen[keep], w[keep]
    q, plen = l4 + 8, ulen - 8
    fell = fell_all[rows]
    # a PTP port gives the PTP hint unless a lower port names another protocol: only frames
    # with one of those hints need their ports read
    suspect = np.zeros(len(rows), dtype=bool)
    i = np.flatnonzero(fell & ((out.hints[rows] & _PTP_OR_LOWER) != 0))
    if len(i):
        ports = c.u64(l4[i])
        suspect[i] = np.isin(_be16(ports, 0), _PTP_PORT_LIST) \
            | np.isin(_be16(ports, 2), _PTP_PORT_LIST)
    i = np.flatnonzero(fell & (plen >= 16))
    if len(i):  # the IENA trailer: the datagram's last two bytes
        t = c.u64(q[i] + plen[i] - 8)
        suspect[i] |= (_byte(t, 6) == 0xDE) & (_byte(t, 7) == 0xAD)
    big = np.flatnonzero(plen >= 28)
    if len(big):
        qb, pb, fb, wb = q[big], plen[big], fell[big], w[big]
        p4, p12 = c.u64(qb + 4), c.u64(qb + 12)  # payload bytes 4..11 and 12..19
        sync = ((_byte(p4, 0) == 0x25) & (_byte(p4, 1) == 0xEB)) \
            | ((_byte(p12, 0) == 0x25) & (_byte(p12, 1) == 0xEB))
        f3 = np.flatnonzero(fb & ~sync & ((_byte(wb, 4) & 0x0F) == 3))
        if len(f3):  # Format 3: the header sits at 8 + an offset field
            off = 8 + (_byte(wb[f3], 6) | (_byte(wb[f3], 7) << 8))
            inside = off + 2 <= pb[f3]
            t = c.u64(qb[f3] + np.where(inside, off, 0))
            sync[f3] = inside & (_byte(t, 0) == 0x25) & (_byte(t, 1) == 0xEB)
        plen_f = (p4 >> np.uint64(32)).astype(np.int64)  # the first packet's length field
        suspect[big] |= (fb & sync) | (~fb & (_byte(wb, 4) == 0x01) & (plen_f > pb - 4))
    may[rows[suspect]] = True
    return may
