"""Reference implementation of the streamlens-dist results contract (docs/CONTRACT.md).

This module is an *oracle* for the test suite. It is deliberately simple: one process,
whole files read into memory, plain loops over records, Python integers everywhere and
exact rational arithmetic for outliers. It was written from CONTRACT.md and PROTOCOLS.md
only, independently of the engine in streamlens_dist/, so that the two can be compared.

Public API:

    reference_analyze(paths, sigma="3") -> dict     # the contract's tables (CONTRACT.md §7)
    reference_frames(paths) -> list[dict]           # one record per frame (for debugging)

Project decisions implemented here where the contract is silent (see the docstrings):
containers are parsed with struct (not dpkt's readers), pcap version fields are ignored,
a truncated or damaged record/block ends the file (frames before it count), pcapng tick
counts that overflow int64 are reinterpreted as signed, untimed frames (SPB, unknown
interface, unrepresentable timestamp) are numbered but never decoded, and so on.
"""

from __future__ import annotations

import decimal
import ipaddress
import math
import re
import struct
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# --------------------------------------------------------------------------------------
# Containers: each reader returns a list of (ts_ns or None, linktype, captured bytes).
# --------------------------------------------------------------------------------------

# pcap magic as stored on disk -> (struct byte order, nanoseconds per fraction unit)
PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),  # big-endian, microseconds
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),  # big-endian, nanoseconds
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


def read_pcap(buf: bytes) -> list:
    """Classic pcap. The version fields are not checked. A record header or record body
    running past the end of the file, or 64 zero bytes where a record header should be (zero
    fill, as a power loss leaves), ends the file (the frames before it count)."""
    order, ns_per_unit = PCAP_MAGICS[buf[:4]]
    if len(buf) < 24:
        return []
    linktype = struct.unpack_from(order + "I", buf, 20)[0] & 0xFFFF
    records = []
    pos = 24
    while pos + 16 <= len(buf):
        sec, frac, incl_len, _orig_len = struct.unpack_from(order + "IIII", buf, pos)
        if buf[pos : pos + 64] == bytes(64):
            break  # four empty records at the epoch in a row: zero fill ends the file
        pos += 16
        if pos + incl_len > len(buf):
            break  # truncated last record
        ts = sec * 10**9 + frac * ns_per_unit  # literally, even if frac >= 10**6 (or 10**9)
        records.append((ts, linktype, buf[pos : pos + incl_len]))
        pos += incl_len
    return records


def ticks_to_ns(ticks: int, tsresol: int) -> int:
    """pcapng tick count -> integer nanoseconds (PROTOCOLS.md §7.3), floored."""
    if tsresol & 0x80:  # 2^-k seconds per tick
        return (ticks * 10**9) >> (tsresol & 0x7F)
    if tsresol <= 9:  # 10^-r seconds per tick, exact
        return ticks * 10 ** (9 - tsresol)
    return ticks // 10 ** (tsresol - 9)


def fits_int64(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX


def plausible_ns(value: int) -> bool:
    """Within ±2^62 ns (years 1824-2116): any two such times differ by less than 2^63, so
    every IAT and sum fits the int64 columns (docs/DECISIONS.md)."""
    return -(2**62) < value < 2**62


def pcapng_timestamp(high: int, low: int, tsresol: int, tsoffset: int) -> int | None:
    """Nanoseconds since the epoch, or None (untimed) when not plausible_ns.
    First the tick count is read as unsigned; if the result is out of bounds, the
    tick count is reinterpreted as a signed two's-complement int64 and converted again."""
    ticks = (high << 32) | low
    ns = ticks_to_ns(ticks, tsresol) + tsoffset * 10**9
    if plausible_ns(ns):
        return ns
    if ticks >= 2**63:
        ns = ticks_to_ns(ticks - 2**64, tsresol) + tsoffset * 10**9
        if plausible_ns(ns):
            return ns
    return None


def parse_idb(body: bytes, order: str) -> tuple:
    """(linktype, snaplen, tsresol, tsoffset) of an Interface Description Block body."""
    if len(body) < 8:
        return (-1, 0, 6, 0)  # damaged IDB: unknown link type, defaults elsewhere
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body, 0)
    tsresol, tsoffset = 6, 0
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        if code == 0 or pos + 4 + length > len(body):
            break  # end of options, or an option running past the block
        value = body[pos + 4 : pos + 4 + length]
        if code == 9 and length >= 1:
            tsresol = value[0]
        elif code == 14 and length >= 8:
            tsoffset = struct.unpack_from(order + "q", value, 0)[0]
        pos += 4 + length + (-length % 4)
    return (linktype, snaplen, tsresol, tsoffset)


def read_pcapng(buf: bytes) -> list:
    """pcapng: several sections (each SHB sets the byte order and restarts interface
    numbering), IDB, EPB (6), obsolete PB (2), SPB (3). Other blocks are skipped.
    A block whose length is < 12, not a multiple of 4, runs past the end of the file or
    whose trailing length differs, ends the file. So does an EPB/PB too short for its
    fixed fields. An EPB/PB captured length larger than its block is clipped to the block.
    A packet on an interface that was never described is an untimed frame."""
    records = []
    order = "<"
    interfaces: list[tuple] = []
    pos = 0
    while pos + 12 <= len(buf):
        if buf[pos : pos + 4] == PCAPNG_SHB:
            magic = buf[pos + 8 : pos + 12]
            if magic == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif magic == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                break  # not a section header we can read
            interfaces = []
        block_type, block_len = struct.unpack_from(order + "II", buf, pos)
        if block_len < 12 or block_len % 4 or pos + block_len > len(buf):
            break
        if struct.unpack_from(order + "I", buf, pos + block_len - 4)[0] != block_len:
            break
        body = buf[pos + 8 : pos + block_len - 4]
        pos += block_len

        if block_type == 1:  # Interface Description Block
            interfaces.append(parse_idb(body, order))
        elif block_type in (6, 2):  # Enhanced Packet Block / obsolete Packet Block
            if len(body) < 20:
                break
            if block_type == 6:
                if_id, high, low, cap_len, _orig = struct.unpack_from(order + "IIIII", body, 0)
            else:
                if_id, _drops, high, low, cap_len, _orig = struct.unpack_from(
                    order + "HHIIII", body, 0
                )
            data = body[20 : 20 + cap_len]
            if if_id < len(interfaces):
                linktype, _snap, tsresol, tsoffset = interfaces[if_id]
                ts = pcapng_timestamp(high, low, tsresol, tsoffset)
            else:
                linktype, ts = -1, None
            records.append((ts, linktype, data))
        elif block_type == 3:  # Simple Packet Block: interface 0, no timestamp
            if len(body) < 4:
                break
            orig_len = struct.unpack_from(order + "I", body, 0)[0]
            linktype, snaplen = (interfaces[0][0], interfaces[0][1]) if interfaces else (-1, 0)
            cap_len = min(orig_len, snaplen or orig_len, len(body) - 4)
            records.append((None, linktype, body[4 : 4 + cap_len]))
        # every other block type (SHB, NRB, ISB, DSB, custom, ...) is not a frame
    return records


def read_capture(path: str | Path) -> list:
    buf = Path(path).read_bytes()
    if buf[:4] in PCAP_MAGICS:
        return read_pcap(buf)
    if buf[:4] == PCAPNG_SHB:
        return read_pcapng(buf)
    raise ValueError(f"{path}: neither pcap nor pcapng")


# --------------------------------------------------------------------------------------
# Application protocols (PROTOCOLS.md §1.7, §1.8, §2.3, §2.6, §3.3, §3.4, §4)
# --------------------------------------------------------------------------------------

SYNC = b"\x25\xeb"  # Chapter 10 sync 0xEB25, little-endian


def ch10_hdr_ok(buf: bytes, off: int):
    """(data type, checksum ok) of a structurally valid packet header at off, else None.
    A bad checksum does not reject the header."""
    if len(buf) - off < 24 or buf[off : off + 2] != SYNC:
        return None
    _ch, plen, dlen, _dtv, _seq, flags, dtype = struct.unpack_from("<HIIBBBB", buf, off + 2)
    hlen = 36 if flags & 0x80 else 24
    if plen % 4 or plen < hlen or dlen > plen - hlen:
        return None
    words = struct.unpack_from("<11H", buf, off)
    csum_ok = sum(words) & 0xFFFF == struct.unpack_from("<H", buf, off + 22)[0]
    return dtype, csum_ok


def find_ch10(p: bytes):
    """(format, offset of the first Ch10 packet header) in a UDP payload, else None."""
    for f, off in ch10_candidates(p):
        if ch10_hdr_ok(p, off) is not None:
            return f, off
    return None


def ch10_candidates(p: bytes) -> list:
    """(format, offset) where a transfer header would put the first Ch10 packet header."""
    if len(p) < 28:
        return []
    cands = []
    # Format 2, segment offset 0. Project decision (docs/DECISIONS.md): the size field is the
    # whole Ch10 packet in words; a full datagram (message type 0) holds exactly that, a first
    # segment (message type 1) holds less than that.
    size_bytes = int.from_bytes(p[5:8], "big") * 4
    message_type = p[3] >> 4
    if (
        (p[3] & 0x0F) == 2
        and p[4] == 0
        and p[8:10] == b"\0\0"
        and (
            size_bytes == len(p) - 12
            or (message_type == 1 and size_bytes > len(p) - 12)
        )
    ):
        cands.append((2, 12))
    fmt, typ = p[0] & 0x0F, p[0] >> 4
    if fmt == 1 and typ == 0:
        cands.append((1, 4))  # Format 1 full
    elif fmt == 1 and typ == 1 and struct.unpack_from("<I", p, 8)[0] == 0:
        cands.append((1, 12))  # Format 1 first segment
    elif fmt == 3:
        cands.append((3, 8 + struct.unpack_from("<H", p, 2)[0]))
    return cands


TMATS_ATTRIBUTE = re.compile(r"[GBRTMPDSACHV](-\d+)?\\[A-Za-z0-9\\-]+:[^;]*;")
PRINTABLE = set(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def looks_like_tmats(body: bytes) -> bool:
    if not body:
        return False
    printable = sum(1 for b in body if b in PRINTABLE)
    if printable / len(body) <= 0.9:
        return False
    matches = [m.group(0) for m in TMATS_ATTRIBUTE.finditer(body.decode("latin-1"))]
    has_anchor = any(m.startswith("G\\") or m.startswith("R-") for m in matches)
    return len(matches) >= 2 and has_anchor


def ch10_frame_type(p: bytes, off: int) -> str:
    """TMATS or CH10-Data for the first Ch10 packet at offset off of UDP payload p."""
    flags, dtype = p[off + 14], p[off + 15]
    if dtype == 0x01:
        return "TMATS"
    hlen = 36 if flags & 0x80 else 24
    data_length = struct.unpack_from("<I", p, off + 8)[0]
    body = p[off + hlen + 4 : off + hlen + data_length]  # after the CSDW; slicing clips
    return "TMATS" if looks_like_tmats(body) else "CH10-Data"


PTP_NAMES = {
    0x0: "Sync",
    0x1: "Delay_Req",
    0x2: "Pdelay_Req",
    0x3: "Pdelay_Resp",
    0x8: "Follow_Up",
    0x9: "Delay_Resp",
    0xA: "Pdelay_Resp_Follow_Up",
    0xB: "Announce",
    0xC: "Signaling",
    0xD: "Management",
}


def ptp_frame_type(p: bytes) -> str | None:
    """PTP-<Name> when p is an acceptable PTPv2 message (§2.6), else None."""
    if len(p) < 34 or p[1] & 0x0F != 2:
        return None
    message_length = struct.unpack_from(">H", p, 2)[0]
    if not 34 <= message_length <= len(p):
        return None
    return "PTP-" + PTP_NAMES.get(p[0] & 0x0F, "Unknown")


def ptp_malformed(p: bytes, whole: bool) -> bool:
    """A message on a PTP port or ethertype that ptp_frame_type refused is malformed unless it
    is PTPv1 (version nibble 1, at least 34 bytes) or, when the message may have been cut by
    the capture (`whole` false: an L2 frame), its messageLength merely exceeds the bytes."""
    if len(p) < 34:
        return True
    if p[1] & 0x0F == 1:
        return False
    if p[1] & 0x0F != 2:
        return True
    return struct.unpack_from(">H", p, 2)[0] < 34 or whole


def iena_size_wrong(p: bytes) -> bool:
    """The IENA trailer 0xDEAD ends the payload but the size field (words) does not fit it."""
    return len(p) >= 16 and p[-2:] == b"\xde\xad" and (
        len(p) % 2 == 1 or struct.unpack_from(">H", p, 2)[0] * 2 != len(p))


def iena_records_fit(payload: bytes, header_len: int, length_at: int) -> bool:
    """M/Q payload: records with a byte Length field (padded to even) consume it exactly."""
    pos = 0
    while pos < len(payload):
        if pos + header_len > len(payload):
            return False
        length = struct.unpack_from(">H", payload, pos + length_at)[0]
        if length == 0:
            return False
        pos += header_len + length + (length & 1)
    return pos == len(payload)


def iena_frame_type(p: bytes) -> str | None:
    """IENA-<T> when p passes the strong checks (§3.4), else None. No key map (§3.3)."""
    if len(p) < 16 or len(p) % 2:
        return None
    size = struct.unpack_from(">H", p, 2)[0]
    if size * 2 != len(p) or p[-2:] != b"\xde\xad":
        return None
    status = p[10]
    w = status & 0x07
    if status & 0x80:
        kind = "P"
    elif status & 0x20:
        kind = "M" if status & 0x10 else "Q"
    elif w >= 1:
        kind = "D" if status & 0x10 else "N"
    else:
        kind = "Unknown"
    payload = p[14 : len(p) - 2]
    structure_fits = {
        "P": True,
        "N": len(payload) % (2 * (w + 1)) == 0,
        "D": len(payload) % (2 * (w + 2)) == 0,
        "M": iena_records_fit(payload, 6, 4),  # ParamID, Delay, Length, Dataset
        "Q": iena_records_fit(payload, 4, 2),  # ParamID, Length, Dataset
        "Unknown": True,
    }
    if not structure_fits[kind]:
        kind = "Unknown"
    return "IENA-" + kind


def is_inetx(p: bytes) -> bool:
    """iNET-X (PROTOCOLS.md §4, in the ladder after IENA by docs/DECISIONS.md): a whole 28-byte
    header, control word 0x11000000, packet length = UDP payload length, nanoseconds < 10^9."""
    if len(p) < 28:
        return False
    control, _stream, _seq, length, _sec, nanoseconds = struct.unpack_from(">6I", p, 0)
    return control == 0x11000000 and length == len(p) and nanoseconds < 10**9


# --------------------------------------------------------------------------------------
# Transport and network layers
# --------------------------------------------------------------------------------------

UDP_TYPES = {53: "DNS", 67: "DHCP", 68: "DHCP", 123: "NTP"}
TCP_TYPES = {80: "HTTP", 443: "HTTPS"}
UDP_HINTS = {
    67: "DHCP",
    68: "DHCP",
    53: "DNS",
    123: "NTP",
    161: "SNMP",
    162: "SNMP",
    69: "TFTP",
    319: "PTP",
    320: "PTP",
    50000: "IENA",
    50001: "IENA",
}
TCP_HINTS = {
    80: "HTTP",
    443: "HTTPS",
    22: "SSH",
    23: "Telnet",
    21: "FTP",
    25: "SMTP",
    110: "POP3",
    143: "IMAP",
}


def port_name(sport: int, dport: int, table: dict) -> str | None:
    """Name of the lower of the two ports found in table (either side matches)."""
    matching = sorted(p for p in (sport, dport) if p in table)
    return table[matching[0]] if matching else None


def classify_udp(l4: bytes) -> tuple[str, set, str | None]:
    """(frame type, hints, malformed-payload name or None)"""
    if len(l4) < 8:
        return "UDP", {"UDP"}, None
    sport, dport, ulen = struct.unpack_from(">HHH", l4, 0)
    payload = l4[8:ulen] if 8 <= ulen <= len(l4) else l4[8:]
    hints = {port_name(sport, dport, UDP_HINTS) or "UDP"}

    found = find_ch10(payload)
    if found is not None:
        frame_type = ch10_frame_type(payload, found[1])
        hints.add("CH10")
        if frame_type == "TMATS":
            hints.add("TMATS")
        # the whole datagram was captured: its UDP length fits the captured bytes
        whole = 8 <= ulen <= len(l4)
        checksum_ok = ch10_hdr_ok(payload, found[1])[1]
        if not checksum_ok:
            return frame_type, hints, "CH10-header-checksum"
        # Format 1 full: complete packets only, so the first must fit the datagram
        plen = struct.unpack_from("<I", payload, found[1] + 4)[0]
        if whole and found == (1, 4) and plen > len(payload) - 4:
            return frame_type, hints, "CH10-length"
        return frame_type, hints, None
    ptp_port = sport in (319, 320) or dport in (319, 320)
    if ptp_port:
        frame_type = ptp_frame_type(payload)
        if frame_type is not None:
            hints.add("PTP")
            return frame_type, hints, None
    frame_type = iena_frame_type(payload)
    if frame_type is not None:
        hints.add("IENA")
        return frame_type, hints, None
    if is_inetx(payload):
        hints.add("INETX")
        return "INETX", hints, None
    malformed = None
    if 8 <= ulen <= len(l4):  # fell through a whole datagram: which test did it fail first?
        if any(payload[off : off + 2] == SYNC for _f, off in ch10_candidates(payload)):
            malformed = "CH10-header"
        elif ptp_port and ptp_malformed(payload, True):
            malformed = "PTP-header"
        elif iena_size_wrong(payload):
            malformed = "IENA-size"
    return port_name(sport, dport, UDP_TYPES) or "UDP", hints, malformed


def classify_tcp(l4: bytes) -> tuple[str, set]:
    if len(l4) < 4:
        return "TCP", {"TCP"}
    sport, dport = struct.unpack_from(">HH", l4, 0)
    hints = {port_name(sport, dport, TCP_HINTS) or "TCP"}
    return port_name(sport, dport, TCP_TYPES) or "TCP", hints


def parse_ipv4(b: bytes) -> dict | None:
    if len(b) < 20 or b[0] >> 4 != 4:
        return None
    ihl = (b[0] & 0x0F) * 4
    if ihl < 20 or len(b) < ihl:
        return None
    total_length = struct.unpack_from(">H", b, 2)[0]
    l4 = b[ihl:total_length] if ihl <= total_length <= len(b) else b[ihl:]
    fragment_offset = struct.unpack_from(">H", b, 6)[0] & 0x1FFF
    return {
        "kind": "ip4",
        "src": ".".join(str(x) for x in b[12:16]),
        "dst": ".".join(str(x) for x in b[16:20]),
        "multicast": 224 <= b[16] <= 239,
        "nonfirst_fragment": fragment_offset > 0,
        "proto": b[9],
        "l4": l4,
    }


IPV6_EXTENSIONS = {0, 43, 60, 135, 139, 140}  # length byte n -> (n + 1) * 8 bytes


def parse_ipv6(b: bytes) -> dict | None:
    if len(b) < 40 or b[0] >> 4 != 6:
        return None
    payload_length = struct.unpack_from(">H", b, 4)[0]
    if payload_length != 0 and 40 + payload_length <= len(b):
        b = b[: 40 + payload_length]
    ip = {
        "kind": "ip6",
        "src": ipaddress.IPv6Address(b[8:24]).compressed,
        "dst": ipaddress.IPv6Address(b[24:40]).compressed,
        "multicast": b[24] == 0xFF,
        "nonfirst_fragment": False,
        "proto": None,  # None = unknown upper protocol (truncated extension header)
        "l4": b"",
    }
    next_header = b[6]
    pos = 40
    for _ in range(16):  # at most 16 extension headers are walked
        if next_header in IPV6_EXTENSIONS or next_header == 51:
            if pos + 2 > len(b):
                return ip
            header_len = (b[pos + 1] + 2) * 4 if next_header == 51 else (b[pos + 1] + 1) * 8
            if pos + header_len > len(b):
                return ip
            next_header = b[pos]
            pos += header_len
        elif next_header == 44:
            if pos + 8 > len(b):
                return ip
            offset = struct.unpack_from(">H", b, pos + 2)[0] >> 3
            if offset > 0:
                ip["nonfirst_fragment"] = True
                return ip
            next_header = b[pos]
            pos += 8
        else:
            break
    # after 16 extension headers, a further extension header number is just an
    # unknown upper protocol (frame type OTHER)
    ip["proto"] = next_header
    ip["l4"] = b[pos:]
    return ip


def parse_ip(b: bytes, version: int | None = None) -> dict | None:
    """IPv4 or IPv6 by the version nibble (or the version the link layer imposes)."""
    if version is None:
        if not b:
            return None
        version = b[0] >> 4
    if version == 4:
        return parse_ipv4(b)
    if version == 6:
        return parse_ipv6(b)
    return None


def classify_ip(ip: dict) -> dict:
    hints = {"Multicast"} if ip["multicast"] else set()
    proto = ip["proto"]
    malformed = None
    if ip["nonfirst_fragment"]:
        frame_type = "IP-Fragment"
    elif proto == 17:
        frame_type, more, malformed = classify_udp(ip["l4"])
        hints |= more
    elif proto == 6:
        frame_type, more = classify_tcp(ip["l4"])
        hints |= more
    elif proto == 2:
        frame_type = "IGMP"
        hints.add("IGMP")
    elif proto in (1, 58):
        frame_type = "ICMP"
        hints.add("ICMP")
    else:
        frame_type = "OTHER"
    return {
        "kind": ip["kind"],
        "src": ip["src"],
        "dst": ip["dst"],
        "frame_type": frame_type,
        "hints": hints,
        "malformed": malformed,
    }


# --------------------------------------------------------------------------------------
# Link layers
# --------------------------------------------------------------------------------------

VLAN_TPIDS = {0x8100, 0x88A8, 0x9100, 0x9200}


def skip_vlan(data: bytes, ethertype: int, pos: int) -> tuple[int, int]:
    """Skip up to 8 VLAN tags starting at pos: (inner ethertype, payload offset).
    A tag that is cut short is not skipped (the TPID stays the ethertype)."""
    tags = 0
    while ethertype in VLAN_TPIDS and tags < 8 and pos + 4 <= len(data):
        ethertype = struct.unpack_from(">H", data, pos + 2)[0]
        pos += 4
        tags += 1
    return ethertype, pos


def mac_text(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


NULL_AF = {2: 4, 24: 6, 28: 6, 30: 6}  # BSD address family -> IP version


def network_layer(linktype: int, data: bytes) -> tuple[dict | None, int | None, int]:
    """(IP header dict or None, ethertype, payload offset) of a frame: the ethertype (VLAN
    tags skipped) and where its payload starts only for Ethernet frames, else (ip, None, 0).
    A frame too short for its link header gives (None, None, 0)."""
    if linktype == 1:
        if len(data) < 14:
            return None, None, 0
        ethertype, pos = skip_vlan(data, struct.unpack_from(">H", data, 12)[0], 14)
        ip = None
        if ethertype == 0x0800:
            ip = parse_ipv4(data[pos:])
        elif ethertype == 0x86DD:
            ip = parse_ipv6(data[pos:])
        return ip, ethertype, pos
    ip = None
    if linktype in (113, 276):  # SLL / SLL2: only IPv4 / IPv6 are decodable
        at, pos = (14, 16) if linktype == 113 else (0, 20)
        if len(data) < pos:
            return None, None, 0
        ethertype, pos = skip_vlan(data, struct.unpack_from(">H", data, at)[0], pos)
        if ethertype == 0x0800:
            ip = parse_ipv4(data[pos:])
        elif ethertype == 0x86DD:
            ip = parse_ipv6(data[pos:])
    elif linktype in (101, 12, 14):
        ip = parse_ip(data)
    elif linktype == 228:
        ip = parse_ip(data, 4)
    elif linktype == 229:
        ip = parse_ip(data, 6)
    elif linktype in (0, 108) and len(data) >= 4:
        little = struct.unpack_from("<I", data, 0)[0]
        big = struct.unpack_from(">I", data, 0)[0]
        if linktype == 0 and little in NULL_AF:
            ip = parse_ip(data[4:], NULL_AF[little])
        elif big in NULL_AF:
            ip = parse_ip(data[4:], NULL_AF[big])
    return ip, None, 0


def decode_frame(linktype: int, data: bytes) -> dict | None:
    """kind/src/dst/frame_type/hints of a frame, or None when it is undecodable."""
    ip, ethertype, pos = network_layer(linktype, data)
    if ip is not None:
        return classify_ip(ip)
    if ethertype is None:
        return None
    # Layer 2 flow: not IP, 802.3/LLC (ethertype < 0x0600), or an invalid IP header
    payload = data[pos:]
    frame = {
        "kind": "l2",
        "src": mac_text(data[6:12]),
        "dst": mac_text(data[0:6]),
        "frame_type": "OTHER",
        "hints": set(),
        # an IP ethertype whose header is unusable: the frame joins its MAC pair
        "malformed": "IP-header" if ethertype in (0x0800, 0x86DD) else None,
    }
    if ethertype == 0x88F7:
        ptp = ptp_frame_type(payload)
        if ptp is not None:
            frame["frame_type"] = ptp
            frame["hints"] = {"PTP"}
        elif ptp_malformed(payload, False):
            frame["malformed"] = "PTP-header"
    elif ethertype == 0x0806:
        frame["frame_type"] = "ARP"
    return frame


# --------------------------------------------------------------------------------------
# Frames of a capture (one file or an ordered set)
# --------------------------------------------------------------------------------------


def reference_frames(paths: list[str | Path]) -> list[dict]:
    """One dict per frame, in capture order: frame (1-based), ts_ns (None if untimed),
    bytes, status ("ok", "untimed", "undecodable") and, when ok: kind, src, dst,
    frame_type, hints (a set). Untimed frames are never decoded."""
    files = []
    for path in paths:
        records = read_capture(path)
        timed = [ts for ts, _, _ in records if ts is not None]
        name = Path(path).name
        # files without any timed frame go last
        key = (0, timed[0], name, str(path)) if timed else (1, 0, name, str(path))
        files.append((key, records))
    files.sort(key=lambda item: item[0])

    frames = []
    number = 0
    for _key, records in files:
        for ts, linktype, data in records:
            number += 1
            frame = {"frame": number, "ts_ns": ts, "bytes": len(data)}
            if ts is None:
                frame["status"] = "untimed"
            else:
                decoded = decode_frame(linktype, data)
                if decoded is None:
                    frame["status"] = "undecodable"
                else:
                    frame["status"] = "ok"
                    frame.update(decoded)
                    # raw bytes for the protocol streams (tests/reference_streams.py)
                    frame["linktype"], frame["data"] = linktype, data
            frames.append(frame)
    return frames


# --------------------------------------------------------------------------------------
# Statistics and outliers (CONTRACT.md §4-§6)
# --------------------------------------------------------------------------------------


def is_outlier(x: int, n: int, s: int, q: int, k: Fraction) -> bool:
    """x > mean + k * std, decided exactly (CONTRACT.md §6)."""
    d = n * x - s
    return d > 0 and d * d * (n - 1) > k * k * n * (n * q - s * s)


def scope_stats(members: list[dict], k: Fraction) -> tuple[dict, list]:
    """Statistics of one flow or (flow, frame type), members in frame order; and its
    outliers as (frame, ts_ns, iat_ns, deviation)."""
    iats = []  # (frame dict, iat) attributed to the later frame
    for i in range(1, len(members)):
        iats.append((members[i], members[i]["ts_ns"] - members[i - 1]["ts_ns"]))
    n = len(iats)
    s = sum(x for _, x in iats)
    q = sum(x * x for _, x in iats)
    mean = s / n if n >= 1 else math.nan
    std = math.sqrt((n * q - s * s) / (n * (n - 1))) if n >= 2 else math.nan

    outliers = []
    if n >= 2:
        for frame, x in iats:
            if is_outlier(x, n, s, q, k):
                deviation = (float(x) - mean) / std if std != 0 else math.inf
                outliers.append((frame["frame"], frame["ts_ns"], x, deviation))

    stats = {
        "frames": len(members),
        "bytes": sum(m["bytes"] for m in members),
        "first_ns": members[0]["ts_ns"],
        "last_ns": members[-1]["ts_ns"],
        "first_frame": members[0]["frame"],
        "last_frame": members[-1]["frame"],
        "iat_count": n,
        "iat_sum_ns": s,
        "iat_min_ns": min(x for _, x in iats) if n else 0,
        "iat_max_ns": max(x for _, x in iats) if n else 0,
        "iat_mean_ns": mean,
        "iat_std_ns": std,
        "outliers": len(outliers),
    }
    return stats, outliers


def histogram_edges() -> list[int]:
    """ceil(1000 * 10^(k/10)) ns for k = 0..90 (docs/SERIES.md), by 60-digit decimals."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        return [int((Decimal(1000) * Decimal(10) ** (Decimal(k) / 10))
                    .to_integral_value(rounding=decimal.ROUND_CEILING)) for k in range(91)]


HIST_EDGES = histogram_edges()
SERIES_COLUMNS = ["bin_start_ns", "frames", "bytes", "iat_count", "iat_sum_ns", "iat_min_ns",
                  "iat_max_ns", "iat_sumsq_hi", "iat_sumsq_lo"]


def scope_series(members: list[dict], row: int, bin_ns: int) -> tuple[list, list]:
    """Series rows [row, bin start, frames, bytes, IAT count, sum, min, max, sumsq hi, lo]
    and histogram rows [row, bin, count] of one scope (members in frame order)."""
    bins: dict[int, list] = {}
    hist: dict[int, int] = {}
    for i, m in enumerate(members):
        b = bins.setdefault(m["ts_ns"] // bin_ns, [0, 0, []])
        b[0] += 1
        b[1] += m["bytes"]
        if i:
            x = m["ts_ns"] - members[i - 1]["ts_ns"]
            b[2].append(x)
            h = sum(1 for e in HIST_EDGES if e <= x)
            hist[h] = hist.get(h, 0) + 1
    rows = []
    for b in sorted(bins):
        frames, nbytes, iats = bins[b]
        q, total = sum(x * x for x in iats), sum(iats)
        hi, lo = (q // 2**62, q % 2**62) if q < 2**124 else (-1, -1)  # beyond: "lost"
        if not -2**63 <= total < 2**63:  # a sum beyond int64: "sum lost", mean unknown too
            total, hi, lo = -2**63, -2, -2
        rows.append([row, b * bin_ns, frames, nbytes, len(iats), total,
                     min(iats, default=0), max(iats, default=0), hi, lo])
    return rows, [[row, h, hist[h]] for h in sorted(hist)]


def series_tables(rows: list, row_col: str) -> dict:
    return {c: [r[i] for r in rows] for i, c in enumerate([row_col, *SERIES_COLUMNS])}


def histogram_tables(rows: list, row_col: str) -> dict:
    return {c: [r[i] for r in rows] for i, c in enumerate([row_col, "bin", "count"])}


STAT_COLUMNS = [
    "frames",
    "bytes",
    "first_ns",
    "last_ns",
    "first_frame",
    "last_frame",
    "iat_count",
    "iat_sum_ns",
    "iat_min_ns",
    "iat_max_ns",
    "iat_mean_ns",
    "iat_std_ns",
    "outliers",
]
FLOW_COLUMNS = ["src", "dst", "kind", "protocols", *STAT_COLUMNS]
FRAME_TYPE_COLUMNS = ["flow", "frame_type", *STAT_COLUMNS]
FLOW_OUTLIER_COLUMNS = ["flow", "frame", "ts_ns", "iat_ns", "deviation"]
FRAME_TYPE_OUTLIER_COLUMNS = ["frame_type_row", "frame", "ts_ns", "iat_ns", "deviation"]


def reference_analyze(paths: list[str | Path], sigma: str = "3",
                      iena_keys: dict | None = None, bin_ns: int = 10**9) -> dict:
    """The contract's result tables for one capture (a file or an ordered set of files),
    plus the protocol-stream tables of docs/STREAMS.md (tests/reference_streams.py).
    `iena_keys`: {key: type} or {key: (type, name)}, the --iena-keys map (STREAMS.md §6)."""
    from reference_streams import apply_iena_keys, reference_streams

    k = Fraction(sigma)
    if k < 0:
        raise ValueError("sigma must not be negative")
    frames = reference_frames(paths)
    apply_iena_keys(frames, iena_keys)  # the map decides IENA frame types (STREAMS.md §6)

    timed = [f for f in frames if f["ts_ns"] is not None]
    attrs = {
        "frames": len(frames),
        "first_ns": timed[0]["ts_ns"] if timed else None,
        "last_ns": timed[-1]["ts_ns"] if timed else None,
        "undecodable_frames": sum(1 for f in frames if f["status"] == "undecodable"),
        "untimed_frames": sum(1 for f in frames if f["status"] == "untimed"),
    }

    # Group frames into flows; dicts keep insertion order = order of first frame.
    flows: dict[tuple, list] = {}
    for f in frames:
        if f["status"] == "ok":
            flows.setdefault((f["kind"], f["src"], f["dst"]), []).append(f)

    flow_table = {c: [] for c in FLOW_COLUMNS}
    type_table = {c: [] for c in FRAME_TYPE_COLUMNS}
    flow_outliers = []  # (frame, row)
    type_outliers = []
    series: dict[str, list] = {"flow": [], "type": [], "flow_hist": [], "type_hist": []}
    for flow_row, ((kind, src, dst), members) in enumerate(flows.items()):
        stats, outliers = scope_stats(members, k)
        rows, hist = scope_series(members, flow_row, bin_ns)
        series["flow"] += rows
        series["flow_hist"] += hist
        hints = set()
        for m in members:
            hints |= m["hints"]
        flow_table["src"].append(src)
        flow_table["dst"].append(dst)
        flow_table["kind"].append(kind)
        flow_table["protocols"].append(",".join(sorted(hints)))
        for c in STAT_COLUMNS:
            flow_table[c].append(stats[c])
        for frame_no, ts, x, dev in outliers:
            flow_outliers.append((frame_no, [flow_row, frame_no, ts, x, dev]))

        by_type: dict[str, list] = {}
        for m in members:
            by_type.setdefault(m["frame_type"], []).append(m)
        for frame_type, type_members in by_type.items():  # ordered by first frame
            type_row = len(type_table["flow"])
            stats, outliers = scope_stats(type_members, k)
            rows, hist = scope_series(type_members, type_row, bin_ns)
            series["type"] += rows
            series["type_hist"] += hist
            type_table["flow"].append(flow_row)
            type_table["frame_type"].append(frame_type)
            for c in STAT_COLUMNS:
                type_table[c].append(stats[c])
            for frame_no, ts, x, dev in outliers:
                type_outliers.append((frame_no, [type_row, frame_no, ts, x, dev]))

    flow_outliers.sort(key=lambda item: item[0])
    type_outliers.sort(key=lambda item: item[0])

    # per (flow, malformed-payload name): frames and the first frame; rows by (flow, first)
    malformed: dict[tuple, list] = {}
    for flow_row, members in enumerate(flows.values()):
        for m in members:
            if m["malformed"] is not None:
                malformed.setdefault((flow_row, m["malformed"]), []).append(m["frame"])
    bad = sorted((row, frames[0], name, len(frames)) for (row, name), frames in malformed.items())
    flow_rows = {key: row for row, key in enumerate(flows)}
    return {
        **reference_streams(frames, flow_rows, sigma, iena_keys),
        "malformed_payloads": {
            "flow": [r[0] for r in bad],
            "problem": [r[2] for r in bad],
            "frames": [r[3] for r in bad],
            "first_frame": [r[1] for r in bad],
        },
        "attrs": attrs,
        "flow_series": series_tables(series["flow"], "flow"),
        "frame_type_series": series_tables(series["type"], "frame_type_row"),
        "flow_histograms": histogram_tables(series["flow_hist"], "flow"),
        "frame_type_histograms": histogram_tables(series["type_hist"], "frame_type_row"),
        "flows": flow_table,
        "frame_types": type_table,
        "flow_outliers": {
            c: [row[i] for _, row in flow_outliers] for i, c in enumerate(FLOW_OUTLIER_COLUMNS)
        },
        "frame_type_outliers": {
            c: [row[i] for _, row in type_outliers]
            for i, c in enumerate(FRAME_TYPE_OUTLIER_COLUMNS)
        },
    }
