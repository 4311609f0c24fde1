"""pcapng block walk (PROTOCOLS.md §7.2): sections, interfaces, EPB/PB/SPB frames.

dpkt's pcapng reader only knows the first interface and skips Simple Packet Blocks, so the
walk is our own. Interface state (byte order, IDBs of the current section) lives in a small
mutable `Section` so that a chunk starting mid-file can be handed the state that precedes it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from .records import Interface, Problem, ticks_to_ns

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

    def copy(self) -> Section:
        return Section(self.endian, list(self.interfaces))


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
    Problem; a frame on an unknown interface is yielded untimed with linktype -1 and reported.
    """
    frame = frame0

    def report(kind: str, message: str) -> None:
        if problems is not None:
            problems.append(Problem(path, pos, frame, kind, message))

    while pos < end:
        if end - pos < 12:
            report("truncated", f"block header cut short: {end - pos} bytes before end of data")
            return
        if bytes(buf[pos:pos + 4]) == SHB_TYPE:
            bom = bytes(buf[pos + 8:pos + 12])
            if bom not in (_BOM_LE, _BOM_BE):
                report("corrupt-block", f"section header with bad byte-order magic {bom.hex()}")
                return
            endian = "<" if bom == _BOM_LE else ">"
        else:
            endian = section.endian
        btype, blen = struct.unpack_from(endian + "II", buf, pos)
        if blen < 12 or blen % 4:
            report("corrupt-block", f"block type {btype:#x} has impossible length {blen}")
            return
        if pos + blen > end:
            report("truncated", f"block type {btype:#x} of {blen} bytes runs past the end "
                   f"of data ({end - pos} bytes left); everything before it was analysed")
            return
        if struct.unpack_from(endian + "I", buf, pos + blen - 4)[0] != blen:
            report("corrupt-block", f"block type {btype:#x}: trailing length does not repeat {blen}")
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
                if ifid >= len(section.interfaces):
                    report("unknown-interface", f"packet on interface {ifid}, but the section "
                           f"declares {len(section.interfaces)}; frame kept out of flows")
                    yield pos, None, -1, body + 20, cap
                else:
                    iface = section.interfaces[ifid]
                    ts = ticks_to_ns((hi << 32) | lo, iface.tsresol, iface.tsoffset)
                    yield pos, ts, iface.linktype, body + 20, cap
                frame += 1
            elif btype == SPB:
                if body_end - body < 4:
                    raise ValueError("simple packet block shorter than 16 bytes")
                orig = struct.unpack_from(endian + "I", buf, body)[0]
                iface = section.interfaces[0] if section.interfaces else None
                snap = iface.snaplen if iface else 0
                cap = min(orig, snap or orig, body_end - body - 4)
                yield pos, None, iface.linktype if iface else -1, body + 4, cap
                frame += 1
        except (ValueError, struct.error) as exc:
            report("corrupt-block", f"block type {btype:#x}: {exc}")
            return
        pos += blen
