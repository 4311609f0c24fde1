"""Chapter 10 over UDP (PROTOCOLS.md §1): packets, transfer headers formats 1-3, TMATS."""

from __future__ import annotations

import struct

__all__ = [
    "ch10_checksum", "ch10_packet", "ch10_tmats_udp", "ch10_transfer", "ch10_udp", "tmats_text",
]

def ch10_checksum(header: bytes) -> int:
    """Chapter 10 header checksum: sum of the eleven LE words at bytes 0-21, mod 2^16."""
    words: tuple[int, ...] = struct.unpack_from("<11H", header)
    return sum(words) & 0xFFFF


def ch10_packet(
    data_type: int,
    channel_id: int,
    seq: int,
    body: bytes,
    *,
    rtc: int = 0,
    version: int = 0x08,
    secondary_time_ns: int | None = None,
    bad_checksum: bool = False,
    flags: int = 0,
) -> bytes:
    """One Chapter 10 packet; ``body`` starts with the CSDW. Filler pads it to 4 bytes.

    ``secondary_time_ns`` adds a 12-byte IEEE-1588 secondary header (flags bits 7 and 2).
    ``bad_checksum`` stores a wrong header checksum (the packet stays structurally valid).
    """
    secondary = b""
    if secondary_time_ns is not None:
        flags |= 0x84
        sec, ns = divmod(secondary_time_ns, 10**9)
        words = struct.pack("<IIH", ns, sec & 0xFFFFFFFF, 0)
        secondary = words + struct.pack("<H", sum(struct.unpack("<5H", words)) & 0xFFFF)
    hlen = 24 + len(secondary)
    filler = b"\0" * (-len(body) % 4)
    plen = hlen + len(body) + len(filler)
    head = struct.pack(
        "<HHIIBBBB", 0xEB25, channel_id, plen, len(body), version, seq & 0xFF, flags, data_type
    ) + (rtc & 0xFFFFFFFFFFFF).to_bytes(6, "little")
    csum = ch10_checksum(head) ^ (0x5A5A if bad_checksum else 0)
    return head + struct.pack("<H", csum) + secondary + body + filler


def ch10_transfer(
    fmt: int,
    data: bytes,
    *,
    udp_seq: int = 0,
    segmented: bool = False,
    segment_offset: int = 0,
    channel_id: int = 0,
    channel_seq: int = 0,
    source_id: int = 0,
    source_id_len: int = 0,
) -> bytes:
    """Prefix Chapter 10 bytes with a UDP transfer header of format 1, 2 or 3 (§1.2)."""
    seq24 = udp_seq & 0xFFFFFF
    if fmt == 1:
        if not segmented:
            return b"\x01" + seq24.to_bytes(3, "little") + data
        head = struct.pack("<HBBI", channel_id, channel_seq & 0xFF, 0, segment_offset)
        return b"\x11" + seq24.to_bytes(3, "little") + head + data
    if fmt == 2:
        if len(data) % 4:
            raise ValueError(f"format 2 counts 32-bit words: data length {len(data)} % 4 != 0")
        kind = 0x12 if segmented else 0x02
        return (
            seq24.to_bytes(3, "big") + bytes([kind, (segment_offset >> 16) & 0xFF])
            + (len(data) // 4).to_bytes(3, "big")
            + struct.pack(">HH", segment_offset & 0xFFFF, channel_id) + data
        )
    if fmt == 3:
        if segmented:
            raise ValueError("format 3 has no segmented mode here: use fmt=1 or fmt=2")
        if not 0 <= source_id_len <= 4:
            raise ValueError(f"source_id_len is in 4-bit units, 0..4, got {source_id_len}")
        low = 32 - 4 * source_id_len
        word = ((source_id << low) | (udp_seq & ((1 << low) - 1))) & 0xFFFFFFFF
        return struct.pack("<BBHI", (source_id_len << 4) | 3, 0, 0, word) + data
    raise ValueError(f"Chapter 10 transfer format must be 1, 2 or 3, got {fmt}")


def ch10_udp(
    fmt: int,
    data_type: int,
    channel_id: int,
    seq: int,
    body: bytes,
    *,
    secondary_header: bool = False,
    segmented: bool = False,
    segment_offset: int = 0,
    segment_size: int | None = None,
    bad_checksum: bool = False,
    rtc: int = 0,
    time_ns: int = 0,
    udp_seq: int | None = None,
) -> bytes:
    """UDP payload: transfer header + one Chapter 10 packet (or one segment of it).

    ``seq`` is the channel sequence number (mod 256) and, unless ``udp_seq`` is given, the
    transfer sequence number. A segmented datagram carries packet bytes
    ``[segment_offset : segment_offset + segment_size]``; only offset 0 holds the header.
    """
    pkt = ch10_packet(
        data_type, channel_id, seq, body, rtc=rtc, bad_checksum=bad_checksum,
        secondary_time_ns=time_ns if secondary_header else None,
    )
    if segmented:
        end = len(pkt) if segment_size is None else segment_offset + segment_size
        pkt = pkt[segment_offset:end]
    return ch10_transfer(
        fmt, pkt, udp_seq=seq if udp_seq is None else udp_seq, segmented=segmented,
        segment_offset=segment_offset, channel_id=channel_id, channel_seq=seq,
    )


def tmats_text(program: str = "FLIGHT_TEST_1", recorder: str = "REC1", channels: int = 3) -> str:
    """A small synthetic TMATS (IRIG 106 Ch 9) setup record, CR LF separated."""
    lines = [f"G\\PN:{program};", "G\\106:17;", "G\\DSI\\N:1;", f"G\\DSI-1:{recorder};",
             f"R-1\\ID:{recorder};", f"R-1\\N:{channels};"]
    for i in range(1, channels + 1):
        lines += [f"R-1\\TK1-{i}:{i};", f"R-1\\DSI-{i}:CH{i};", f"R-1\\CDT-{i}:PCMIN;"]
    return "\r\n".join(lines + ["COMMENT:synthetic setup record;"]) + "\r\n"


def ch10_tmats_udp(text: str, *, fmt: int = 1, channel_id: int = 0, seq: int = 0) -> bytes:
    """UDP payload carrying a TMATS setup record (data type 0x01, CSDW version 106-17)."""
    body = struct.pack("<I", 0x0C) + text.encode("latin-1")
    return ch10_udp(fmt, 0x01, channel_id, seq, body)
