"""The classification ladder (CONTRACT.md §3): one frame -> flow key, frame type, hints.

`classify(linktype, data)` returns None for an undecodable frame, else a tuple
(flow key, frame type, protocol hints, malformed) where the flow key is (src, dst, kind) and
`malformed` names a broken payload (or None): one that was still classified (a Chapter 10
header checksum mismatch or length beyond a full-packet datagram, an unusable IP header), or
one whose protocol test failed so that the frame fell down the ladder to a transport type (a
Chapter 10 header with impossible lengths, a PTP message on a PTP port or ethertype that is
too short or inconsistent, an IENA trailer with a size field that does not fit). A datagram
the capture cut short (snap length) is never called malformed.
"""

from __future__ import annotations

from . import ch10, iena, inetx, ip, link, ptp, transport
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
            return key, "OTHER", _NO_HINTS, "PTP-header" if ptp.malformed(data[off:], False) \
                else None
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
    # the datagram as its length field says, entirely captured: only then can a length that
    # disagrees with the bytes be the payload's fault rather than the snap length's
    whole = 8 <= int.from_bytes(l4[4:6], "big") <= len(l4)
    c = ch10.detect(payload, whole)
    if c is not None:
        ftype, bad = c
        hints.append("CH10")
        if ftype == "TMATS":
            hints.append("TMATS")
        return key, ftype, tuple(hints), bad
    ptp_port = sport in PTP_PORTS or dport in PTP_PORTS
    if ptp_port:
        t = ptp.detect(payload)
        if t is not None:
            hints.append("PTP")
            return key, t, tuple(hints), None
    t = iena.detect(payload)
    if t is not None:
        hints.append("IENA")
        return key, t, tuple(hints), None
    if inetx.detect(payload):
        hints.append("INETX")
        return key, "INETX", tuple(hints), None
    bad = None
    if whole:  # fell through: say which protocol's test it failed, first on the ladder
        if ch10.broken(payload):
            bad = "CH10-header"
        elif ptp_port and ptp.malformed(payload, True):
            bad = "PTP-header"
        elif iena.malformed(payload):
            bad = "IENA-size"
    return key, by_port(UDP_TYPES, sport, dport) or "UDP", tuple(hints), bad
