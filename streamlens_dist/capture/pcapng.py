"""pcapng block walk (PROTOCOLS.md §7.2): sections, interfaces, EPB/PB/SPB frames.

dpkt's pcapng reader only knows the first interface and skips Simple Packet Blocks, so the
walk is our own. Interface state (byte order, IDBs of the current section) lives in a small
mutable `Section` so that a chunk starting mid-file can be handed the state that precedes it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .records import (
    CORRUPT_BLOCK,
    TIMESTAMP,
    TRUNCATED,
    UNKNOWN_INTERFACE,
    Interface,
    Problem,
    ticks_to_ns,
)

SHB_TYPE = b"\x0a\x0d\x0d\x0a"
_BOM_LE = b"\x4d\x3c\x2b\x1a"
_BOM_BE = b"\x1a\x2b\x3c\x4d"
IDB, PB, SPB, EPB = 1, 2, 3, 6
FRAME_BLOCKS = (PB, SPB, EPB)


def is_pcapng(head: bytes) -> bool:
    return head[:4] == SHB_TYPE and head[8:12] in (_BOM_LE, _BOM_BE)


@dataclass
class Section:
    """Mutable walk state: the current section's byte order and interfaces."""

    endian: str = "<"
    interfaces: list[Interface] = field(default_factory=list)
    # frames seen on an undeclared interface, and with a time out of bounds: only the first
    # of each is reported as a problem, so a damaged file cannot produce one per frame
    unknown_interface_frames: int = 0
    out_of_range_frames: int = 0

    def copy(self) -> Section:
        return Section(self.endian, list(self.interfaces), self.unknown_interface_frames,
                       self.out_of_range_frames)


def _options(buf, pos: int, end: int, endian: str) -> Iterator[tuple[int, int, int]] | None:
    """Yield (code, value offset, value length); raise ValueError on an overrunning option."""
    u = struct.Struct(endian + "HH").unpack_from
    while pos + 4 <= end:
        code, olen = u(buf, pos)
        if code == 0:
            return
        if pos + 4 + olen > end:
            raise ValueError(f"option {code} of length {olen} runs past its block")
        yield code, pos + 4, olen
        pos += 4 + olen + (-olen % 4)


def _parse_idb(buf, body: int, body_end: int, endian: str) -> Interface:
    linktype, _res, snaplen = struct.unpack_from(endian + "HHI", buf, body)
    tsresol, tsoffset = 6, 0
    for code, vpos, olen in _options(buf, body + 8, body_end, endian):
        if code == 9 and olen >= 1:
            tsresol = buf[vpos]
        elif code == 14 and olen >= 8:
            tsoffset = struct.unpack_from(endian + "q", buf, vpos)[0]
    return Interface(linktype, snaplen, tsresol, tsoffset)


def walk(
    buf: bytes | memoryview,
    pos: int,
    end: int,
    section: Section,
    path: str,
    problems: list[Problem] | None = None,
    frame0: int = 1,
) -> Iterator[tuple[int, int | None, int, int, int]]:
    """Yield (block offset, ts_ns or None, linktype, data offset, captured length) per frame.

    `section` is updated in place as SHBs and IDBs go by. Damage (bad lengths, a trailer that
    does not repeat the length, an option overrunning its block) stops the walk with a
    Problem (the splitter decides whether reading resumes further on, `resync`); a frame on
    an unknown interface is yielded untimed with linktype -1, and the first one is reported.
    """
    frame = frame0

    def report(kind: str, message: str) -> None:
        if problems is not None:
            problems.append(Problem(path, pos, frame, kind, message))

    while pos < end:
        if end - pos < 12:
            report(TRUNCATED, f"block header cut short: {end - pos} bytes before end of data")
            return
        if bytes(buf[pos:pos + 4]) == SHB_TYPE:
            bom = bytes(buf[pos + 8:pos + 12])
            if bom not in (_BOM_LE, _BOM_BE):
                report(CORRUPT_BLOCK, f"section header with bad byte-order magic {bom.hex()}")
                return
            endian = "<" if bom == _BOM_LE else ">"
        else:
            endian = section.endian
        btype, blen = struct.unpack_from(endian + "II", buf, pos)
        if blen < 12 or blen % 4:
            if not np.count_nonzero(np.frombuffer(buf, dtype=np.uint8, count=end - pos,
                                                  offset=pos)):
                report(TRUNCATED, f"zero-filled from here to the end of the data "
                       f"({end - pos} bytes), as a recorder's power loss leaves")
            else:
                report(CORRUPT_BLOCK, f"block type {btype:#x} has impossible length {blen}")
            return
        if pos + blen > end:
            report(TRUNCATED, f"block type {btype:#x} of {blen} bytes runs past the end "
                   f"of data ({end - pos} bytes left)")
            return
        if struct.unpack_from(endian + "I", buf, pos + blen - 4)[0] != blen:
            report(CORRUPT_BLOCK, f"block type {btype:#x}: trailing length does not repeat {blen}")
            return
        body, body_end = pos + 8, pos + blen - 4
        try:
            if btype == 0x0A0D0D0A:
                if blen < 28:
                    raise ValueError("section header shorter than 28 bytes")
                for _ in _options(buf, body + 16, body_end, endian):
                    pass
                section.endian, section.interfaces = endian, []
            elif btype == IDB:
                if body_end - body < 8:
                    raise ValueError("interface description shorter than 20 bytes")
                section.interfaces.append(_parse_idb(buf, body, body_end, endian))
            elif btype in (EPB, PB):
                if body_end - body < 20:
                    raise ValueError("packet block shorter than 32 bytes")
                if btype == EPB:
                    ifid, hi, lo, cap, _orig = struct.unpack_from(endian + "IIIII", buf, body)
                else:
                    ifid, _drops, hi, lo, cap, _orig = struct.unpack_from(endian + "HHIIII", buf, body)
                if cap > body_end - body - 20:
                    raise ValueError(f"captured length {cap} exceeds the block")
                opts = body + 20 + cap + (-cap % 4)  # options after the padded packet
                if opts < body_end:
                    for _ in _options(buf, opts, body_end, endian):
                        pass
                if ifid >= len(section.interfaces):
                    section.unknown_interface_frames += 1
                    if section.unknown_interface_frames == 1:
                        report(UNKNOWN_INTERFACE, f"packet on interface {ifid}, but the section "
                               f"declares {len(section.interfaces)}; frame kept out of flows "
                               "(counted in untimed_frames; only the first such frame of a "
                               "file is reported)")
                    yield pos, None, -1, body + 20, cap
                else:
                    iface = section.interfaces[ifid]
                    ts = ticks_to_ns((hi << 32) | lo, iface.tsresol, iface.tsoffset)
                    if ts is None:
                        section.out_of_range_frames += 1
                        if section.out_of_range_frames == 1:
                            report(TIMESTAMP, f"time of {(hi << 32) | lo} ticks (if_tsresol "
                                   f"{iface.tsresol}, if_tsoffset {iface.tsoffset} s) is not "
                                   "within years 1824-2116 as signed or unsigned; frame kept "
                                   "out of flows (counted in untimed_frames; only the first "
                                   "such frame of a file is reported)")
                    yield pos, ts, iface.linktype, body + 20, cap
                frame += 1
            elif btype == SPB:
                if body_end - body < 4:
                    raise ValueError("simple packet block shorter than 16 bytes")
                orig = struct.unpack_from(endian + "I", buf, body)[0]
                iface = section.interfaces[0] if section.interfaces else None
                if iface is None:  # an SPB is on interface 0, which the section lacks
                    section.unknown_interface_frames += 1
                    if section.unknown_interface_frames == 1:
                        report(UNKNOWN_INTERFACE, "simple packet block, but the section "
                               "declares no interface; frame kept out of flows (counted in "
                               "untimed_frames; only the first such frame of a file is "
                               "reported)")
                snap = iface.snaplen if iface else 0
                cap = min(orig, snap or orig, body_end - body - 4)
                yield pos, None, iface.linktype if iface else -1, body + 4, cap
                frame += 1
        except (ValueError, struct.error) as exc:
            report(CORRUPT_BLOCK, f"block type {btype:#x}: {exc}")
            return
        pos += blen


# --- resynchronisation after a damaged block -----------------------------------------------
#
# pcapng blocks frame themselves (type, length, the length repeated at the end), so a resync
# is validated by the framing: at a 4-byte aligned offset after the damage, RESYNC_CHAIN
# consecutive whole blocks of known types whose lengths and trailers agree and whose fixed
# fields fit (packet blocks name a declared interface); a shorter chain ending exactly at the
# end of the data is not enough (see pcap.py). Reading resumes in the same section, so a
# resync is refused when no section header was read before the damage, or when the skipped
# bytes may hold a section header (its interfaces would be unknown) unless the chain starts
# with that section header itself.
RESYNC_CHAIN = 4
KNOWN_TYPES = frozenset((0x0A0D0D0A, IDB, PB, SPB, 4, 5, EPB, 7, 8, 9, 0xA, 0xBAD, 0x40000BAD))
_SCAN_WINDOW = 1 << 18  # aligned candidates tested per vectorised step


def _block_ok(buf, pos: int, end: int, endian: str, interfaces: int) -> tuple[int, str, int] | None:
    """(length, byte order, interfaces after it) of a plausible block at pos, else None."""
    if end - pos < 12:
        return None
    if bytes(buf[pos:pos + 4]) == SHB_TYPE:
        bom = bytes(buf[pos + 8:pos + 12])
        if bom not in (_BOM_LE, _BOM_BE):
            return None
        endian, interfaces = ("<" if bom == _BOM_LE else ">"), 0
    btype, blen = struct.unpack_from(endian + "II", buf, pos)
    if btype not in KNOWN_TYPES or blen < 12 or blen % 4 or blen > end - pos:
        return None
    if struct.unpack_from(endian + "I", buf, pos + blen - 4)[0] != blen:
        return None
    room = blen - 12
    if btype == 0x0A0D0D0A and room < 16:
        return None
    if btype == IDB:
        if room < 8:
            return None
        interfaces += 1
    elif btype in (EPB, PB):
        if room < 20:
            return None
        if btype == EPB:  # interface id, timestamp (8 bytes), captured length
            ifid, cap = struct.unpack_from(endian + "I8xI", buf, pos + 8)
        else:  # interface id (2), drops (2), timestamp (8), captured length
            ifid, cap = struct.unpack_from(endian + "H10xI", buf, pos + 8)
        if ifid >= interfaces or cap > room - 20:
            return None
    elif btype == SPB and (room < 4 or interfaces == 0):
        return None
    return blen, endian, interfaces


def chain_length(buf, pos: int, end: int, section: Section) -> int:
    """How many plausible, whole blocks chain from pos (at most RESYNC_CHAIN)."""
    endian, interfaces = section.endian, len(section.interfaces)
    for n in range(RESYNC_CHAIN):
        b = _block_ok(buf, pos, end, endian, interfaces)
        if b is None:
            return n
        blen, endian, interfaces = b
        pos += blen
    return RESYNC_CHAIN


def resync(buf, pos: int, end: int, section: Section) -> int | None:
    """The first aligned offset after the damaged block at `pos` where a validated chain of
    blocks starts (see RESYNC_CHAIN), or None. Candidates are filtered with numpy a window at
    a time: a long damaged stretch costs a linear scan, not a Python loop per word."""
    if pos == 0 or bytes(buf[pos:pos + 4]) == SHB_TYPE:
        # no section header read, or the damaged block is one: what follows it would be read
        # with interfaces (and a byte order) it may not have
        return None
    dt = np.dtype(np.uint32).newbyteorder(section.endian)
    known = np.array(sorted(KNOWN_TYPES), dtype=np.uint32)
    x = pos + 4
    while x + 12 <= end:
        n = min(_SCAN_WINDOW, (end - 12 - x) // 4 + 1)
        # words at x, x+4, ...: block types at [:n], lengths at [1:n+1] (unaligned is fine)
        words = np.frombuffer(buf, dtype=dt, count=n + 1, offset=x)
        btype, blen = words[:n], words[1:]
        shb = btype == 0x0A0D0D0A  # the same bytes in either byte order
        cand = shb | (np.isin(btype, known) & (blen >= 12) & (blen % 4 == 0))
        del words, btype, blen  # no buffer export may outlive the call (the caller's mmap)
        for i in np.flatnonzero(cand).tolist():
            at = x + 4 * i
            if chain_length(buf, at, end, section) == RESYNC_CHAIN:
                return at
            if shb[i] and bytes(buf[at + 8:at + 12]) in (_BOM_LE, _BOM_BE):
                return None  # a damaged section header: what follows has unknown interfaces
        x += 4 * n
    return None
