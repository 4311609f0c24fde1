"""IRIG 106 Chapter 10 packets over UDP (PROTOCOLS.md §1): detection and TMATS test.

`detect(payload)` returns (frame type, malformed name or None) when a transfer header of
format 1, 2 or 3 is followed by a structurally valid Chapter 10 packet header, else None. A
header checksum mismatch (named first), or a first packet longer than a full-packet datagram
holds, keeps the
classification (CONTRACT.md §3 rule 1) and is reported as malformed. `broken(payload)` tells a
sync word where the transfer header puts a packet header whose lengths are impossible: that
frame falls down the ladder, and is counted as malformed if nothing below claims it.
"""

from __future__ import annotations

import re
import struct

SYNC = b"\x25\xeb"
TMATS_TYPE = 0x01
_HDR = struct.Struct("<HIIBBBB")
_WORDS = struct.Struct("<11H")
_TMATS_ATTR = re.compile(rb"[GBRTMPDSACHV](-\d+)?\\[A-Za-z0-9\\-]+:[^;]*;")
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\r\n"


def header_ok(buf: bytes, off: int) -> tuple[int, int, bool] | None:
    """(data type, body offset, checksum ok) of a valid packet header at off, else None."""
    if len(buf) - off < 24 or buf[off:off + 2] != SYNC:
        return None
    _ch, plen, dlen, _dtv, _seq, flags, dtype = _HDR.unpack_from(buf, off + 2)
    hlen = 36 if flags & 0x80 else 24
    if plen % 4 or plen < hlen or dlen > plen - hlen:
        return None
    csum_ok = sum(_WORDS.unpack_from(buf, off)) & 0xFFFF == int.from_bytes(
        buf[off + 22:off + 24], "little")
    return dtype, off + hlen, csum_ok


def candidates(p: bytes) -> list[tuple[int, int]]:
    """(transfer format, offset) where the first packet header would start, Format 2 first
    (its first byte is a sequence byte whose low nibble can look like Format 1 or 3)."""
    cands = []
    if (p[3] & 0x0F) == 2 and p[4] == 0 and p[8:10] == b"\0\0":
        # Format 2, segment offset 0. The size field is the Chapter 10 packet's size in words:
        # a full-packet datagram holds exactly it, a first segment holds only its start
        # (real recorders, e.g. ch10udp_f2_segmented_pcm.pcap, send 88016-byte packets in
        # 1424-byte segments). docs/DECISIONS.md explains this departure from PROTOCOLS §1.8.
        words = int.from_bytes(p[5:8], "big") * 4
        if words == len(p) - 12 or (p[3] >> 4 == 1 and words > len(p) - 12):
            cands.append((2, 12))
    fmt, typ = p[0] & 0x0F, p[0] >> 4
    if fmt == 1 and typ == 0:
        cands.append((1, 4))
    elif fmt == 1 and typ == 1 and p[8:12] == b"\0\0\0\0":
        cands.append((1, 12))
    elif fmt == 3:
        cands.append((3, 8 + int.from_bytes(p[2:4], "little")))
    return cands


def looks_like_tmats(body: bytes) -> bool:
    """PROTOCOLS.md §1.7 text test: mostly printable and at least two TMATS attributes, one
    of them a G\\ or R- code (a single match is too easy to hit in binary noise)."""
    if not body or len(body.translate(None, _PRINTABLE)) * 10 >= len(body):
        return False
    anchored = False
    for found, m in enumerate(_TMATS_ATTR.finditer(body), 1):  # bytes regex == latin-1 text
        anchored = anchored or m.group(0)[:2] in (b"G\\", b"R-")
        if found >= 2 and anchored:
            return True
    return False


HEADER_CHECKSUM, LENGTH, HEADER = "CH10-header-checksum", "CH10-length", "CH10-header"


def detect(p: bytes, whole: bool = True) -> tuple[str, str | None] | None:
    """(frame type, malformed name or None); `whole`: the datagram was captured entirely."""
    if len(p) < 28:
        return None
    for _fmt, off in candidates(p):
        h = header_ok(p, off)
        if h is None:
            continue
        dtype, body, csum_ok = h
        # The checksum covers the length fields: a mismatch is named first. A Format 1
        # full-packet datagram holds whole packets (PROTOCOLS.md §1.2), so a first packet
        # longer than the datagram lies about its length.
        bad = None if csum_ok else HEADER_CHECKSUM
        if bad is None and whole and off == 4 and p[0] == 0x01 and \
                int.from_bytes(p[off + 4:off + 8], "little") > len(p) - off:
            bad = LENGTH
        if dtype == TMATS_TYPE:
            return "TMATS", bad
        dlen = int.from_bytes(p[off + 8:off + 12], "little")
        if looks_like_tmats(p[body + 4:body + dlen]):
            return "TMATS", bad
        return "CH10-Data", bad
    return None


def broken(p: bytes) -> bool:
    """A sync word where the transfer header puts the first packet header, but no valid
    header there (lengths impossible or beyond the datagram); the caller checks `detect`
    refused the payload."""
    return len(p) >= 28 and any(p[off:off + 2] == SYNC for _fmt, off in candidates(p))
