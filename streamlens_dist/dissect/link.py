"""Link layers: find the network layer (or the L2 addresses) of a frame.

Returns ("ip", offset, src MAC bytes or None, dst MAC bytes or None, IP version the link
layer announces or None) when an IP header is expected at `offset`, ("l2", src_mac, dst_mac,
ethertype, payload offset) for Ethernet frames without IP, or None when the frame cannot be
decoded (unknown link type, too short, non-IP on a link without MAC pairs).
"""

from __future__ import annotations

ETH_IP4, ETH_IP6, ETH_ARP, ETH_PTP = 0x0800, 0x86DD, 0x0806, 0x88F7
VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
MAX_VLAN_TAGS = 8  # bound the tag walk: hostile frames can stack tags forever

ETHERNET, NULL, LOOP, SLL, SLL2 = 1, 0, 108, 113, 276
RAW, RAW_DLT12, RAW_DLT14 = 101, 12, 14  # LINKTYPE_RAW and the raw DLT values old files carry
RAW_IP = frozenset((RAW, RAW_DLT12, RAW_DLT14))
IPV4_ONLY, IPV6_ONLY = 228, 229
# How the fast paths (fastlink.py, _kernels.c link_header) find the network layer of the link
# types they read: link type -> (header length, how the protocol is told): a 16-bit type
# field at that offset (>= 0; VLAN tags may follow), the IP version nibble, the BSD address
# family of a NULL header (the capturing host's byte order: little-endian first) or a LOOP
# header (big-endian), or the link type itself. Only Ethernet carries a MAC pair: behind the
# others only IP is decoded (as `decode` does).
BY_NIBBLE, BY_FAMILY_NULL, BY_FAMILY_LOOP, ONLY_IP4, ONLY_IP6 = -1, -2, -3, -4, -5
FAST_HEADERS = {ETHERNET: (14, 12), SLL: (16, 14), SLL2: (20, 0),
                RAW: (0, BY_NIBBLE), RAW_DLT12: (0, BY_NIBBLE), RAW_DLT14: (0, BY_NIBBLE),
                IPV4_ONLY: (0, ONLY_IP4), IPV6_ONLY: (0, ONLY_IP6),
                NULL: (4, BY_FAMILY_NULL), LOOP: (4, BY_FAMILY_LOOP)}
NULL_FAMILIES = {2: 4, 24: 6, 28: 6, 30: 6}  # BSD address families -> IP version
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
        hlen, type_at = FAST_HEADERS[ETHERNET]
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
        hlen, type_at = FAST_HEADERS[linktype]
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
            if f in NULL_FAMILIES:
                return ("ip", 4, None, None, NULL_FAMILIES[f])
        return None
    return None
