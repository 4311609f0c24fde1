"""The classification ladder (CONTRACT.md §3): one frame -> flow key, frame type, hints.

`classify(linktype, data)` returns None for an undecodable frame, else a tuple
(flow key, frame type, protocol hints, malformed) where the flow key is (src, dst, kind) and
`malformed` names a broken payload that was still classified (e.g. a Chapter 10 header
checksum mismatch), or None.
"""

from __future__ import annotations

from . import ch10, iena, ip, link, ptp, transport
from .ports import PTP_PORTS, TCP_HINTS, TCP_TYPES, UDP_HINTS, UDP_TYPES, by_port

Classified = tuple[tuple[str, str, str], str, tuple[str, ...], str | None]

_NO_HINTS: tuple[str, ...] = ()


def classify(linktype: int, data: bytes) -> Classified | None:
    layer = link.decode(linktype, data)
    if layer is None:
        return None
    if layer[0] == "l2":
        _, src, dst, etype, off = layer
        key = (src, dst, "l2")
        if etype == link.ETH_PTP:
            t = ptp.detect(data[off:])
            if t is not None:
                return key, t, ("PTP",), None
        return key, "ARP" if etype == link.ETH_ARP else "OTHER", _NO_HINTS, None
    info = ip.decode(data, layer[1], layer[4])
    if info is None:
        if layer[2] is None:
            return None
        # An Ethernet frame whose IP header is unusable carries no IP: it joins its MAC pair.
        key = (link.mac_text(layer[2]), link.mac_text(layer[3]), "l2")
        return key, "OTHER", _NO_HINTS, "IP-header"
    kind, src, dst, proto, l4, nonfirst, multicast = info
    key = (src, dst, kind)
    hints = ["Multicast"] if multicast else []
    if nonfirst:
        return key, "IP-Fragment", tuple(hints), None
    if proto == 17:
        return _udp(key, hints, l4)
    if proto == 6:
        ports = transport.tcp_ports(l4)
        if ports is None:
            hints.append("TCP")
            return key, "TCP", tuple(hints), None
        hints.append(by_port(TCP_HINTS, *ports) or "TCP")
        return key, by_port(TCP_TYPES, *ports) or "TCP", tuple(hints), None
    if proto == 1 or proto == 58:
        hints.append("ICMP")
        return key, "ICMP", tuple(hints), None
    if proto == 2:
        hints.append("IGMP")
        return key, "IGMP", tuple(hints), None
    return key, "OTHER", tuple(hints), None


def _udp(key: tuple[str, str, str], hints: list[str], l4: bytes) -> Classified:
    u = transport.udp(l4)
    if u is None:
        hints.append("UDP")
        return key, "UDP", tuple(hints), None
    sport, dport, payload = u
    hints.append(by_port(UDP_HINTS, sport, dport) or "UDP")
    c = ch10.detect(payload)
    if c is not None:
        ftype, csum_ok = c
        hints.append("CH10")
        if ftype == "TMATS":
            hints.append("TMATS")
        return key, ftype, tuple(hints), None if csum_ok else "CH10-header-checksum"
    if sport in PTP_PORTS or dport in PTP_PORTS:
        t = ptp.detect(payload)
        if t is not None:
            hints.append("PTP")
            return key, t, tuple(hints), None
    t = iena.detect(payload)
    if t is not None:
        hints.append("IENA")
        return key, t, tuple(hints), None
    return key, by_port(UDP_TYPES, sport, dport) or "UDP", tuple(hints), None
