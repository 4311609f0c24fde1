"""UDP and TCP headers: ports and the UDP payload (trimmed by the UDP length field)."""

from __future__ import annotations


def udp(l4: bytes) -> tuple[int, int, bytes] | None:
    """(sport, dport, payload) or None when fewer than 8 header bytes were captured.

    The payload is cut to the UDP length when that length is sane, which drops Ethernet
    trailers that some recorders append after the datagram (PROTOCOLS.md §7.4).
    """
    if len(l4) < 8:
        return None
    ulen = int.from_bytes(l4[4:6], "big")
    payload = l4[8:ulen] if 8 <= ulen <= len(l4) else l4[8:]
    return int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big"), payload


def tcp_ports(l4: bytes) -> tuple[int, int] | None:
    if len(l4) < 4:
        return None
    return int.from_bytes(l4[0:2], "big"), int.from_bytes(l4[2:4], "big")
