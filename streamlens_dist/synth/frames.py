"""Link, network and transport layer builders: Ethernet, IPv4/IPv6, UDP, TCP, ICMP, IGMP, ARP.

Each builder returns the bytes of its layer, so layers compose from the inside out::

    ether(dst_mac, src_mac, 0x0800, ipv4(src, dst, 17, udp(5000, 8010, payload)))

:func:`ipv4` and :func:`ipv6` fill in the UDP/TCP/ICMPv6 checksum (pseudo-header) when it
is zero and the packet is not a fragment, so captures look like a real stack's output.
MACs are ``"aa:bb:cc:dd:ee:ff"`` strings or 6 bytes; IP addresses are text.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

__all__ = [
    "arp", "default_mac", "ether", "host_mac", "icmp_echo", "igmp", "inet_checksum", "ip_frame",
    "ipv4", "ipv4_fragments", "ipv6", "ipv6_fragment_header", "multicast_mac", "tcp", "udp",
    "udp_frame",
]

Mac = str | bytes

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
ETH_PTP = 0x88F7
_MIN_FRAME = 60  # Ethernet minimum without FCS
_CSUM_OFFSET = {6: 16, 17: 6, 58: 2}  # TCP, UDP, ICMPv6


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of ``data`` (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\0"
    # 2^16 == 1 (mod 0xFFFF): the big integer's residue is the ones' complement word sum.
    x = int.from_bytes(data, "big")
    if x == 0:
        return 0xFFFF
    return ~(x % 0xFFFF or 0xFFFF) & 0xFFFF


@lru_cache(maxsize=4096)
def _mac(mac: Mac) -> bytes:
    raw = mac if isinstance(mac, bytes) else bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"a MAC address has 6 bytes, e.g. '02:00:00:00:00:01'; got {mac!r}")
    return raw


@lru_cache(maxsize=4096)
def _ip(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


@lru_cache(maxsize=4096)
def _is_multicast(addr: str) -> bool:
    return ipaddress.ip_address(addr).is_multicast


@lru_cache(maxsize=4096)
def host_mac(ip: str) -> str:
    """A stable locally administered unicast MAC derived from an IP address."""
    tail = _ip(ip)[-4:]
    return "02:00:" + ":".join(f"{b:02x}" for b in tail)


@lru_cache(maxsize=4096)
def multicast_mac(ip: str) -> str:
    """The Ethernet group address of an IPv4 (01:00:5e) or IPv6 (33:33) multicast group."""
    raw = _ip(ip)
    v4 = len(raw) == 4
    tail = bytes([0x01, 0x00, 0x5E, raw[1] & 0x7F, raw[2], raw[3]]) if v4 else b"\x33\x33" + raw[-4:]
    return ":".join(f"{b:02x}" for b in tail)


def default_mac(ip: str) -> str:
    """Destination MAC a host would use: the group address for multicast, else host_mac."""
    return multicast_mac(ip) if _is_multicast(ip) else host_mac(ip)


def ether(
    dst_mac: Mac,
    src_mac: Mac,
    ethertype: int,
    payload: bytes,
    vlans: Sequence[tuple[int, int]] = (),
    *,
    pad: bool = True,
) -> bytes:
    """Ethernet II frame; ``vlans`` = outer-to-inner ``(tpid, vid)`` tags; pads to 60 bytes."""
    head = _mac(dst_mac) + _mac(src_mac)
    for tpid, vid in vlans:
        if not 0 <= vid < 4096:
            raise ValueError(f"VLAN id must be 0..4095, got {vid}")
        head += struct.pack(">HH", tpid, vid)
    frame = head + struct.pack(">H", ethertype) + payload
    if pad and len(frame) < _MIN_FRAME:
        frame += b"\0" * (_MIN_FRAME - len(frame))
    return frame


def _fill_l4_checksum(proto: int, pseudo: bytes, payload: bytes) -> bytes:
    off = _CSUM_OFFSET.get(proto)
    if off is None or len(payload) < off + 2 or payload[off : off + 2] != b"\0\0":
        return payload
    csum = inet_checksum(pseudo + payload)
    if proto == 17 and csum == 0:
        csum = 0xFFFF  # 0 means "no checksum" for UDP
    return payload[:off] + struct.pack(">H", csum) + payload[off + 2 :]


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    ident: int = 0,
    frag_offset: int = 0,
    more_fragments: bool = False,
    dont_fragment: bool = False,
    ttl: int = 64,
    tos: int = 0,
    options: bytes = b"",
    fill_checksum: bool = True,
) -> bytes:
    """IPv4 packet with a correct total length and header checksum.

    ``frag_offset`` is in bytes (a multiple of 8).
    """
    if frag_offset % 8:
        raise ValueError(f"frag_offset is in bytes and must be a multiple of 8, got {frag_offset}")
    options += b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload)
    if total > 0xFFFF:
        raise ValueError(f"IPv4 packet of {total} bytes exceeds 65535: use ipv4_fragments")
    s, d = _ip(src), _ip(dst)
    if fill_checksum and frag_offset == 0 and not more_fragments:
        payload = _fill_l4_checksum(proto, s + d + struct.pack(">xBH", proto, len(payload)), payload)
    flags = (0x4000 if dont_fragment else 0) | (0x2000 if more_fragments else 0)
    head = struct.pack(
        ">BBHHHBBH4s4s", 0x40 | ihl, tos, total, ident & 0xFFFF, flags | frag_offset // 8,
        ttl, proto, 0, s, d,
    ) + options
    csum = inet_checksum(head)
    return head[:10] + struct.pack(">H", csum) + head[12:] + payload


def ipv4_fragments(
    src: str,
    dst: str,
    datagram: bytes,
    *,
    proto: int = 17,
    mtu: int = 1500,
    ident: int = 0,
    ttl: int = 64,
) -> list[bytes]:
    """Split a transport datagram (e.g. :func:`udp` output) into IPv4 fragment packets.

    The transport checksum is computed over the whole datagram first.
    """
    step = (mtu - 20) // 8 * 8
    if step <= 0:
        raise ValueError(f"mtu {mtu} leaves no room for fragment data (need at least 28)")
    s, d = _ip(src), _ip(dst)
    datagram = _fill_l4_checksum(proto, s + d + struct.pack(">xBH", proto, len(datagram)), datagram)
    return [
        ipv4(src, dst, proto, datagram[off : off + step], ident=ident, frag_offset=off,
             more_fragments=off + step < len(datagram), ttl=ttl, fill_checksum=False)
        for off in range(0, max(len(datagram), 1), step)
    ]


def ipv6_fragment_header(offset: int, more: bool, ident: int) -> tuple[int, bytes]:
    """An ``ext_headers`` entry for an IPv6 fragment header (``offset`` in bytes, multiple of 8)."""
    if offset % 8:
        raise ValueError(f"fragment offset is in bytes and must be a multiple of 8, got {offset}")
    return 44, struct.pack(">HI", offset | int(more), ident & 0xFFFFFFFF)


def _ext_header(kind: int, nxt: int, data: bytes) -> bytes:
    if kind == 44:
        if len(data) != 6:
            raise ValueError("fragment header data is 6 bytes: use ipv6_fragment_header()")
        return bytes([nxt, 0]) + data
    gap = -(2 + len(data)) % 8  # pad with Pad1 / PadN options
    pad = b"\0" if gap == 1 else (bytes([1, gap - 2]) + b"\0" * (gap - 2) if gap else b"")
    return bytes([nxt, (2 + len(data) + gap) // 8 - 1]) + data + pad


def ipv6(
    src: str,
    dst: str,
    next_header: int,
    payload: bytes,
    ext_headers: Sequence[tuple[int, bytes]] = (),
    *,
    hop_limit: int = 64,
    flow_label: int = 0,
    fill_checksum: bool = True,
) -> bytes:
    """IPv6 packet; ``ext_headers`` = ``(type, data)`` pairs in order (0, 43, 44, 60, ...)."""
    s, d = _ip(src), _ip(dst)
    kinds = [k for k, _ in ext_headers]
    if fill_checksum and 44 not in kinds:
        pseudo = s + d + struct.pack(">I3xB", len(payload), next_header)
        payload = _fill_l4_checksum(next_header, pseudo, payload)
    chain = b"".join(
        _ext_header(kind, (kinds + [next_header])[i + 1], data)
        for i, (kind, data) in enumerate(ext_headers)
    )
    body = chain + payload
    first = kinds[0] if kinds else next_header
    head = struct.pack(">IHBB", 0x60000000 | (flow_label & 0xFFFFF), len(body), first, hop_limit)
    return head + s + d + body


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    """UDP datagram (checksum 0: :func:`ipv4`/:func:`ipv6` fill it in)."""
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(
    sport: int,
    dport: int,
    payload: bytes = b"",
    flags: int = 0x02,
    *,
    seq: int = 0,
    ack: int = 0,
    window: int = 65535,
) -> bytes:
    """TCP segment without options (checksum filled in by the IP builder)."""
    return struct.pack(
        ">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
        window, 0, 0,
    ) + payload


def icmp_echo(
    ident: int = 0, seq: int = 0, payload: bytes = b"", *, reply: bool = False, v6: bool = False
) -> bytes:
    """ICMP (v4: type 8/0, checksummed) or ICMPv6 (type 128/129, filled by :func:`ipv6`) echo."""
    kind = (129 if reply else 128) if v6 else (0 if reply else 8)
    msg = struct.pack(">BBHHH", kind, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + payload
    if v6:
        return msg
    return msg[:2] + struct.pack(">H", inet_checksum(msg)) + msg[4:]


def igmp(group: str, *, msg_type: int = 0x16, max_resp: int = 0) -> bytes:
    """IGMPv2 message (default: membership report for ``group``)."""
    msg = struct.pack(">BBH4s", msg_type, max_resp, 0, _ip(group))
    return msg[:2] + struct.pack(">H", inet_checksum(msg)) + msg[4:]


def arp(op: int, sender_mac: Mac, sender_ip: str, target_mac: Mac, target_ip: str) -> bytes:
    """ARP payload for Ethernet/IPv4 (op 1 request, 2 reply)."""
    return struct.pack(">HHBBH", 1, ETH_IPV4, 6, 4, op) + (
        _mac(sender_mac) + _ip(sender_ip) + _mac(target_mac) + _ip(target_ip)
    )


def ip_frame(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    src_mac: Mac | None = None,
    dst_mac: Mac | None = None,
    vlans: Sequence[tuple[int, int]] = (),
    **ip_opts: Any,
) -> bytes:
    """Whole Ethernet frame around an IPv4 or IPv6 packet (chosen from the address form).

    MACs default to :func:`host_mac` of the source and, for the destination, the multicast
    group address or :func:`host_mac`. ``ip_opts`` go to :func:`ipv4`/:func:`ipv6`.
    """
    if dst_mac is None:
        dst_mac = default_mac(dst)
    src_mac = host_mac(src) if src_mac is None else src_mac
    if len(_ip(dst)) == 4:
        return ether(dst_mac, src_mac, ETH_IPV4, ipv4(src, dst, proto, payload, **ip_opts), vlans)
    return ether(dst_mac, src_mac, ETH_IPV6, ipv6(src, dst, proto, payload, **ip_opts), vlans)


def udp_frame(
    src: str, dst: str, sport: int, dport: int, payload: bytes, **frame_opts: Any
) -> bytes:
    """Whole Ethernet frame carrying one UDP datagram (options as :func:`ip_frame`)."""
    return ip_frame(src, dst, 17, udp(sport, dport, payload), **frame_opts)
