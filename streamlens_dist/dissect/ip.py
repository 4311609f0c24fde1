"""IPv4 and IPv6 headers (PROTOCOLS.md §7.7-§7.8): addresses, upper protocol, fragments.

`decode(data, off)` returns None when no valid IP header starts at `off`, else a tuple
(kind, src, dst, proto, l4, nonfirst_fragment, multicast): `proto` is -1 when IPv6 extension
headers are cut short, `l4` the upper-layer bytes (None for non-first fragments).
"""

from __future__ import annotations

import ipaddress
import socket

# Extension headers whose length byte counts 8-octet units beyond the first 8.
_EXT_8 = frozenset((0, 43, 60, 135, 139, 140))
_AH, _FRAG = 51, 44
MAX_EXT_HEADERS = 16

_addr4: dict[bytes, str] = {}
_addr6: dict[bytes, str] = {}


def _text4(b: bytes) -> str:
    s = _addr4.get(b)
    if s is None:
        if len(_addr4) > 1 << 16:
            _addr4.clear()
        s = _addr4[b] = socket.inet_ntoa(b)
    return s


def _text6(b: bytes) -> str:
    s = _addr6.get(b)
    if s is None:
        if len(_addr6) > 1 << 16:
            _addr6.clear()
        s = _addr6[b] = ipaddress.IPv6Address(b).compressed
    return s


def decode(data: bytes, off: int, expect: int | None = None) -> tuple | None:
    """`expect`: the version the link layer announced (an IPv4 ethertype in front of a
    version-6 header is a broken IPv4 header, not IPv6); None lets the nibble decide."""
    if len(data) <= off:
        return None
    version = data[off] >> 4
    if expect is not None and version != expect:
        return None
    if version == 4:
        return _decode4(data, off)
    if version == 6:
        return _decode6(data, off)
    return None


def _decode4(data: bytes, off: int) -> tuple | None:
    avail = len(data) - off
    if avail < 20:
        return None
    ihl = (data[off] & 0x0F) * 4
    if ihl < 20 or avail < ihl:
        return None
    total = int.from_bytes(data[off + 2:off + 4], "big")
    end = off + total if ihl <= total <= avail else len(data)
    frag_off = int.from_bytes(data[off + 6:off + 8], "big") & 0x1FFF
    dst_b = data[off + 16:off + 20]
    src, dst = _text4(data[off + 12:off + 16]), _text4(dst_b)
    multicast = 224 <= dst_b[0] <= 239
    if frag_off:
        return ("ip4", src, dst, data[off + 9], None, True, multicast)
    return ("ip4", src, dst, data[off + 9], data[off + ihl:end], False, multicast)


def _decode6(data: bytes, off: int) -> tuple | None:
    if len(data) - off < 40:
        return None
    plen = int.from_bytes(data[off + 4:off + 6], "big")
    end = off + 40 + plen if plen and off + 40 + plen <= len(data) else len(data)
    src, dst = _text6(data[off + 8:off + 24]), _text6(data[off + 24:off + 40])
    multicast = data[off + 24] == 0xFF
    nxt, pos = data[off + 6], off + 40
    for _ in range(MAX_EXT_HEADERS):
        if nxt in _EXT_8 or nxt == _AH:
            if end - pos < 2:
                return ("ip6", src, dst, -1, None, False, multicast)
            hlen = (data[pos + 1] + 1) * 8 if nxt in _EXT_8 else (data[pos + 1] + 2) * 4
            if end - pos < hlen:
                return ("ip6", src, dst, -1, None, False, multicast)
            nxt, pos = data[pos], pos + hlen
        elif nxt == _FRAG:
            if end - pos < 8:
                return ("ip6", src, dst, -1, None, False, multicast)
            if int.from_bytes(data[pos + 2:pos + 4], "big") >> 3:
                return ("ip6", src, dst, data[pos], None, True, multicast)
            nxt, pos = data[pos], pos + 8
        else:
            break
    # Past the bound, whatever comes next is taken as the upper protocol (OTHER if it is yet
    # another extension header).
    return ("ip6", src, dst, nxt, data[pos:end], False, multicast)
