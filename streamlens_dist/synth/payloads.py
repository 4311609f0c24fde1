"""Application payload builders (UDP/TCP payloads or L2 bodies): PTP, IENA, iNET-X, DNS, NTP,
DHCP, HTTP. Layouts follow PROTOCOLS.md §2-§4; all return ``bytes``. Chapter 10 is in ch10.py.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = [
    "PTP_TYPES", "dhcp_discover", "dns_query", "dns_response", "http_request", "http_response",
    "iena", "iena_key_status", "inetx", "ntp", "ptp",
]

# ----------------------------------------------------------------------------- PTP

PTP_TYPES = {
    "Sync": 0x0, "Delay_Req": 0x1, "Pdelay_Req": 0x2, "Pdelay_Resp": 0x3, "Follow_Up": 0x8,
    "Delay_Resp": 0x9, "Pdelay_Resp_Follow_Up": 0xA, "Announce": 0xB, "Signaling": 0xC,
    "Management": 0xD,
}
_PTP_LEN = {0x0: 44, 0x1: 44, 0x2: 54, 0x3: 54, 0x8: 44, 0x9: 54, 0xA: 54, 0xB: 64, 0xC: 44,
            0xD: 48}
_PTP_CONTROL = {0x0: 0, 0x1: 1, 0x8: 2, 0x9: 3, 0xD: 4}
_CLOCK = bytes.fromhex("001b19fffe000001")


def ptp(
    message_type: int,
    *,
    domain: int = 0,
    seq: int = 0,
    length: int | None = None,
    version: int = 2,
    minor_version: int = 0,
    sdo_id: int = 0,
    flags: int | None = None,
    clock_identity: bytes = _CLOCK,
    port_number: int = 1,
    origin_ns: int = 0,
    tlvs: bytes = b"",
) -> bytes:
    """PTPv2 message of the minimum size for its type (§2.3) followed by ``tlvs``.

    ``length`` overrides only the messageLength field (to build implausible messages).
    """
    mt = message_type & 0x0F
    sec, ns = divmod(origin_ns, 10**9)
    body = (sec & 0xFFFFFFFFFFFF).to_bytes(6, "big") + struct.pack(">I", ns)
    if mt == 0xB:
        body += struct.pack(">hxBBBHB8sHB", 37, 128, 6, 0x21, 0x4E5D, 128, _CLOCK, 0, 0x20)
    elif mt in (0xC, 0xD):
        body = b"\xff" * 10 + (b"\x01\x01\x01\x00" if mt == 0xD else b"")
    body += b"\0" * (_PTP_LEN.get(mt, 44) - 34 - len(body)) + tlvs
    if flags is None:
        flags = {0x0: 0x0200, 0xB: 0x000C}.get(mt, 0)
    log_interval = 0 if mt in (0x0, 0x8, 0xB) else 0x7F
    head = struct.pack(
        ">BBHBBHq4x8sHHBB", (sdo_id << 4) | mt, (minor_version << 4) | version,
        34 + len(body) if length is None else length, domain, 0, flags, 0, clock_identity,
        port_number, seq & 0xFFFF, _PTP_CONTROL.get(mt, 5), log_interval,
    )
    return head + body


# ----------------------------------------------------------------------------- IENA

_IENA_STATUS = {"P": 0x80, "D": 0x10, "N": 0x00, "M": 0x30, "Q": 0x20}


def iena_key_status(ptype: str, words: int = 1) -> int:
    """Key status byte for which the PROTOCOLS.md §3.3 rule yields ``ptype``."""
    if ptype not in _IENA_STATUS:
        raise ValueError(f"IENA type must be one of 'PDNMQ', got {ptype!r}")
    return _IENA_STATUS[ptype] | (words & 0x07 if ptype in "DN" else 0)


def iena(
    key: int,
    ptype: str,
    seq: int,
    n_params: int,
    *,
    key_status: int | None = None,
    trailer: int = 0xDEAD,
    time_us: int = 0,
    n2: int = 0,
    words: int = 1,
    message_lengths: Sequence[int] | None = None,
) -> bytes:
    """IENA packet whose payload fits type ``ptype`` (§3.2) with ``n_params`` parameters.

    ``words`` = 16-bit data words per D/N parameter (1..7). M/Q message lengths default to
    a deterministic mix of odd and even sizes (odd ones get a pad byte); ``message_lengths``
    overrides them (and ``n_params``).
    """
    status = iena_key_status(ptype, words) if key_status is None else key_status
    if ptype in "DN" and not 1 <= words <= 7:
        raise ValueError(f"IENA D/N parameters have 1..7 data words, got words={words}")
    base = (key * 7 + seq * 13) & 0xFFFF
    if ptype == "P":
        payload = struct.pack(f">{n_params}H", *((base + i) & 0xFFFF for i in range(n_params)))
    elif ptype in "DN":
        delay_word: tuple[int, ...] = (0,) if ptype == "D" else ()
        fields = [v for i in range(n_params)
                  for v in ((0x100 + i, *delay_word) + ((base + i) & 0xFFFF,) * words)]
        payload = struct.pack(f">{len(fields)}H", *fields)
    else:
        lengths = message_lengths or [1 + (3 * i + key) % 12 for i in range(n_params)]
        parts = []
        for i, n in enumerate(lengths):
            delay = struct.pack(">H", 0) if ptype == "M" else b""
            data = bytes((base + i + j) & 0xFF for j in range(n)) + b"\0" * (n % 2)
            parts.append(struct.pack(">H", 0x200 + i) + delay + struct.pack(">H", n) + data)
        payload = b"".join(parts)
    size = (14 + len(payload) + 2) // 2
    if size > 0xFFFF:
        raise ValueError(f"IENA packet of {size} words exceeds the 16-bit size field")
    time48 = (time_us & 0xFFFFFFFFFFFF).to_bytes(6, "big")
    head = struct.pack(">HH", key, size) + time48 + struct.pack(">BBH", status, n2, seq & 0xFFFF)
    return head + payload + struct.pack(">H", trailer)


# ----------------------------------------------------------------------------- iNET-X


def inetx(
    stream_id: int, seq: int, payload: bytes, *, ptp_ns: int = 0, pif: int = 0,
    control: int = 0x11000000,
) -> bytes:
    """iNET-X packet: 28-byte header (length includes it) + ``payload``."""
    sec, ns = divmod(ptp_ns, 10**9)
    return struct.pack(
        ">7I", control, stream_id, seq & 0xFFFFFFFF, 28 + len(payload), sec & 0xFFFFFFFF, ns, pif
    ) + payload


# ----------------------------------------------------------------------------- IT protocols


def _qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def dns_query(name: str, *, ident: int = 0, qtype: int = 1) -> bytes:
    """DNS query message (for UDP port 53)."""
    return struct.pack(">6H", ident, 0x0100, 1, 0, 0, 0) + _qname(name) + struct.pack(">HH", qtype, 1)


def dns_response(name: str, address: bytes, *, ident: int = 0) -> bytes:
    """DNS response with one A record (``address`` = 4 bytes)."""
    question = _qname(name) + struct.pack(">HH", 1, 1)
    answer = struct.pack(">HHHIH", 0xC00C, 1, 1, 300, len(address)) + address
    return struct.pack(">6H", ident, 0x8180, 1, 1, 0, 0) + question + answer


def ntp(mode: int = 3, *, transmit_ns: int = 0, stratum: int = 0) -> bytes:
    """48-byte NTPv4 message (mode 3 client, 4 server)."""
    sec, ns = divmod(transmit_ns, 10**9)
    stamp = struct.pack(">II", (sec + 2_208_988_800) & 0xFFFFFFFF, (ns << 32) // 10**9)
    head = struct.pack(">BBbb", (4 << 3) | mode, stratum, 6, -20) + b"\0" * 12
    return head + b"\0" * 8 + (stamp if mode == 4 else b"\0" * 8) * 2 + stamp


def dhcp_discover(mac: bytes, xid: int) -> bytes:
    """DHCPDISCOVER (BOOTP request, UDP 68 -> 67)."""
    boot = struct.pack(">BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000) + b"\0" * 16
    boot += mac.ljust(16, b"\0") + b"\0" * 192
    return boot + bytes.fromhex("63825363") + bytes([53, 1, 1, 255])


def http_request(host: str, path: str = "/") -> bytes:
    """HTTP/1.1 GET request."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: synth\r\n\r\n".encode()


def http_response(body: bytes) -> bytes:
    """HTTP/1.1 200 response carrying ``body``."""
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nContent-Type: text/plain\r\n\r\n"
    return head.encode() + body
