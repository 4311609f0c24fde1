"""Airbus IENA (PROTOCOLS.md §3): header check and the packet-type rule of §3.3.

The type is a pure function of the frame's own bytes (and, later, a user key map), so it
cannot depend on chunking.
"""

from __future__ import annotations


def _walk_messages(payload: bytes, delay: bool) -> bool:
    """M/Q payloads: ParamID, [Delay], Length, Dataset [pad]; must end exactly, no Length 0."""
    pos, n = 0, len(payload)
    head = 6 if delay else 4
    while pos < n:
        if n - pos < head:
            return False
        length = int.from_bytes(payload[pos + head - 2:pos + head], "big")
        if length == 0:
            return False
        pos += head + length + (length & 1)
    return pos == n


def packet_type(p: bytes, key_map: dict[int, str] | None = None) -> str:
    key, status = int.from_bytes(p[0:2], "big"), p[10]
    if key_map and key in key_map:
        return "IENA-" + key_map[key]
    w = status & 0x07
    if status & 0x80:
        return "IENA-P"
    if status & 0x20:
        t = "M" if status & 0x10 else "Q"
    elif w >= 1:
        t = "D" if status & 0x10 else "N"
    else:
        return "IENA-Unknown"
    payload = p[14:-2]
    if t == "N":
        ok = len(payload) % (2 * (w + 1)) == 0
    elif t == "D":
        ok = len(payload) % (2 * (w + 2)) == 0
    else:
        ok = _walk_messages(payload, delay=(t == "M"))
    return "IENA-" + t if ok else "IENA-Unknown"


def detect(p: bytes, key_map: dict[int, str] | None = None) -> str | None:
    n = len(p)
    if n < 16 or n & 1 or int.from_bytes(p[2:4], "big") * 2 != n or p[-2:] != b"\xde\xad":
        return None
    return packet_type(p, key_map)


def malformed(p: bytes) -> bool:
    """A payload that ends with the IENA trailer but whose size field does not describe it
    (PROTOCOLS.md §3.4); the caller checks `detect` refused it and that the datagram is whole."""
    n = len(p)
    return n >= 16 and p[-2:] == b"\xde\xad" and (n & 1 or int.from_bytes(p[2:4], "big") * 2 != n)
