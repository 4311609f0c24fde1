"""Link layers: find the network layer (or the L2 addresses) of a frame.

Returns ("ip", offset, src MAC bytes or None, dst MAC bytes or None, IP version the link
layer announces or None) when an IP header is expected at `offset`, ("l2", src_mac, dst_mac,
ethertype, payload offset) for Ethernet frames without IP, or None when the frame cannot be
decoded (unknown link type, too short, non-IP on a link without MAC pairs).
"""

from __future__ import annotations

import numpy as np

ETH_IP4, ETH_IP6, ETH_ARP, ETH_PTP = 0x0800, 0x86DD, 0x0806, 0x88F7
VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
MAX_VLAN_TAGS = 8  # bound the tag walk: hostile frames can stack tags forever

ETHERNET, NULL, LOOP, SLL, SLL2 = 1, 0, 108, 113, 276
# link type -> (header length, offset of its protocol type field); the fast paths read these
# (columnar._fast, _kernels.c link_header): Ethernet, and the Linux cooked captures that
# `tcpdump -i any` writes, which carry no MAC pair (only IP behind them is decoded)
TYPED_HEADERS = {ETHERNET: (14, 12), SLL: (16, 14), SLL2: (20, 0)}
RAW_IP = frozenset((101, 12, 14))  # LINKTYPE_RAW and the raw DLT values old files carry
IPV4_ONLY, IPV6_ONLY = 228, 229
_NULL_AF = {2: 4, 24: 6, 28: 6, 30: 6}  # BSD address families -> IP version
_ETH_VERSION = {ETH_IP4: 4, ETH_IP6: 6}

_mac_cache: dict[bytes, str] = {}
_MAC_CACHE_MAX = 1 << 16  # damaged or hostile frames carry random MACs: stay bounded


def mac_text(b: bytes) -> str:
    s = _mac_cache.get(b)
    if s is None:
        if len(_mac_cache) >= _MAC_CACHE_MAX:
            _mac_cache.clear()
        s = _mac_cache[b] = b.hex(":")
    return s


def skip_vlans(data: bytes, type_off: int, payload_off: int) -> tuple[int, int] | None:
    """(ethertype, payload offset) after any VLAN tags; the type field is at type_off and the
    payload (where a first tag would sit) at payload_off. None if the tags are cut short."""
    if len(data) < type_off + 2:
        return None
    etype = int.from_bytes(data[type_off:type_off + 2], "big")
    off = payload_off
    tags = 0
    while etype in VLAN_TPIDS:
        if tags == MAX_VLAN_TAGS or len(data) < off + 4:
            return None
        etype = int.from_bytes(data[off + 2:off + 4], "big")
        off += 4
        tags += 1
    return etype, off


def decode(linktype: int, data: bytes) -> tuple | None:
    if linktype == ETHERNET:
        hlen, type_at = TYPED_HEADERS[ETHERNET]
        if len(data) < hlen:
            return None
        r = skip_vlans(data, type_at, hlen)
        if r is None:
            # A truncated tag stack is still an Ethernet frame between two MACs.
            return ("l2", mac_text(data[6:12]), mac_text(data[0:6]), -1, len(data))
        etype, off = r
        if etype in _ETH_VERSION:
            return ("ip", off, data[6:12], data[0:6], _ETH_VERSION[etype])
        return ("l2", mac_text(data[6:12]), mac_text(data[0:6]), etype, off)
    if linktype in RAW_IP:
        return ("ip", 0, None, None, None)  # the version nibble decides
    if linktype in (IPV4_ONLY, IPV6_ONLY):
        return ("ip", 0, None, None, 4 if linktype == IPV4_ONLY else 6)
    if linktype in (SLL, SLL2):
        hlen, type_at = TYPED_HEADERS[linktype]
        if len(data) < hlen:
            return None
        r = skip_vlans(data, type_at, hlen)
        if r is None:
            return None
        etype, off = r
        return ("ip", off, None, None, _ETH_VERSION[etype]) if etype in _ETH_VERSION else None
    if linktype in (NULL, LOOP):
        if len(data) < 4:
            return None
        # NULL stores the family in the capturing host's byte order: little-endian first
        fams = (int.from_bytes(data[:4], "big"),) if linktype == LOOP else (
            int.from_bytes(data[:4], "little"), int.from_bytes(data[:4], "big"))
        for f in fams:
            if f in _NULL_AF:
                return ("ip", 4, None, None, _NULL_AF[f])
        return None
    return None


def headers(linktype: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame (the fast paths' columns), the length of its link header and the offset of
    the header's protocol type field (TYPED_HEADERS), 0 and 0 for other link types."""
    hlen, type_at = np.zeros(len(linktype), np.int64), np.zeros(len(linktype), np.int64)
    for lt, (n, at) in TYPED_HEADERS.items():
        on = linktype == lt
        hlen[on], type_at[on] = n, at
    return hlen, type_at
