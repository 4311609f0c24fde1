"""Streaming writers for classic pcap and pcapng files (PROTOCOLS.md §7).

Timestamps are integer nanoseconds since the Unix epoch, as in CONTRACT.md §1. Records are
written one by one to a buffered file, so captures of any size can be produced.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

__all__ = [
    "Interface",
    "PcapngWriter",
    "pcap_bytes",
    "pcapng_bytes",
    "ticks_for_ns",
    "write_pcap",
    "write_pcapng",
]

PcapRecord = tuple[int, bytes]
PcapngRecord = tuple[int | None, int, bytes]

_MAX_U32 = 0xFFFFFFFF
_BUFFER = 1 << 20


def _endian(big_endian: bool) -> str:
    return ">" if big_endian else "<"


# --------------------------------------------------------------------------- classic pcap


def _write_pcap_to(
    out: BinaryIO,
    records: Iterable[PcapRecord],
    linktype: int,
    nanosecond: bool,
    big_endian: bool,
    snaplen: int,
) -> int:
    e = _endian(big_endian)
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out.write(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    unit = 1 if nanosecond else 1000
    sub = 1_000_000_000 // unit
    rec = struct.Struct(e + "IIII")
    count = 0
    for ts_ns, frame in records:
        sec, frac = divmod(ts_ns // unit, sub)
        if not 0 <= sec <= _MAX_U32:
            raise ValueError(
                f"timestamp {ts_ns} ns is outside what pcap can store "
                f"(0 <= ts_ns < {(_MAX_U32 + 1) * 10**9})"
            )
        incl = len(frame) if snaplen <= 0 else min(len(frame), snaplen)
        out.write(rec.pack(sec, frac, incl, len(frame)))
        out.write(frame[:incl])
        count += 1
    return count


def write_pcap(
    path: str | os.PathLike[str],
    records: Iterable[PcapRecord],
    *,
    linktype: int = 1,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 65535,
) -> int:
    """Write ``(ts_ns, frame)`` records to a classic pcap file; return the record count.

    µs files store ``ts_ns // 1000`` (pass multiples of 1000 for an exact round trip).
    Frames longer than ``snaplen`` are truncated (``orig_len`` keeps the full length).
    """
    with open(path, "wb", buffering=_BUFFER) as out:
        return _write_pcap_to(out, records, linktype, nanosecond, big_endian, snaplen)


def pcap_bytes(
    records: Iterable[PcapRecord],
    *,
    linktype: int = 1,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 65535,
) -> bytes:
    """Same as :func:`write_pcap` but return the file contents."""
    out = io.BytesIO()
    _write_pcap_to(out, records, linktype, nanosecond, big_endian, snaplen)
    return out.getvalue()


# --------------------------------------------------------------------------- pcapng


@dataclass(frozen=True)
class Interface:
    """A pcapng interface (IDB): ``tsresol`` is the raw if_tsresol byte (MSB set = 2^-k)."""

    linktype: int = 1
    snaplen: int = 0
    tsresol: int = 6
    tsoffset: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.tsresol <= 0xFF:
            raise ValueError(f"tsresol must be one byte (0..255), got {self.tsresol}")
        if not 0 <= self.linktype <= 0xFFFF:
            raise ValueError(f"linktype must fit 16 bits, got {self.linktype}")

    def tick_ratio(self) -> tuple[int, int]:
        """(a, b) such that one tick is a/b nanoseconds."""
        r = self.tsresol
        if r & 0x80:
            return 10**9, 1 << (r & 0x7F)
        return (10 ** (9 - r), 1) if r <= 9 else (1, 10 ** (r - 9))


def ticks_for_ns(ts_ns: int, iface: Interface) -> int:
    """Tick count that reads back (CONTRACT.md §1 conversion, floored) as exactly ``ts_ns``.

    Raises ValueError when no 64-bit tick count maps back to ``ts_ns`` exactly.
    """
    a, b = iface.tick_ratio()
    delta = ts_ns - iface.tsoffset * 10**9
    ticks = -((-delta * b) // a)  # ceil(delta * b / a)
    if ticks < 0 or ticks >> 64 or (ticks * a) // b != delta:
        raise ValueError(
            f"timestamp {ts_ns} ns is not exactly representable with if_tsresol "
            f"0x{iface.tsresol:02x} and if_tsoffset {iface.tsoffset} s; choose a multiple "
            f"of the tick or a finer resolution"
        )
    return ticks


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


class PcapngWriter:
    """Low-level pcapng block writer: sections, interfaces and packet blocks in any order.

    Use it directly for unusual files (several sections, obsolete Packet Blocks, unknown
    block types); :func:`write_pcapng` covers the common case.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._e = "<"
        self._ifaces: list[Interface] = []

    def block(self, btype: int, body: bytes) -> None:
        """Write one block of type ``btype`` (body padded to 4 bytes)."""
        body = _pad4(body)
        total = len(body) + 12
        self._out.write(struct.pack(self._e + "II", btype, total))
        self._out.write(body)
        self._out.write(struct.pack(self._e + "I", total))

    def section(self, *, big_endian: bool = False) -> None:
        """Start a new section (SHB, unknown length); interface numbering restarts."""
        self._e = _endian(big_endian)
        self._ifaces = []
        self.block(0x0A0D0D0A, struct.pack(self._e + "IHHq", 0x1A2B3C4D, 1, 0, -1))

    def interface(self, iface: Interface) -> int:
        """Write an IDB; return its interface index in the current section."""
        opts = b""
        if iface.tsresol != 6:
            opts += struct.pack(self._e + "HHB3x", 9, 1, iface.tsresol)
        if iface.tsoffset:
            opts += struct.pack(self._e + "HHq", 14, 8, iface.tsoffset)
        if opts:
            opts += struct.pack(self._e + "HH", 0, 0)
        self.block(1, struct.pack(self._e + "HHI", iface.linktype, 0, iface.snaplen) + opts)
        self._ifaces.append(iface)
        return len(self._ifaces) - 1

    def _iface(self, index: int) -> Interface:
        if not 0 <= index < len(self._ifaces):
            raise ValueError(
                f"interface {index} not declared: this section has {len(self._ifaces)} "
                "interface(s); pass it in `interfaces` or call interface() first"
            )
        return self._ifaces[index]

    @staticmethod
    def _captured(frame: bytes, iface: Interface) -> bytes:
        return frame if iface.snaplen <= 0 else frame[: iface.snaplen]

    def enhanced_packet(self, ts_ns: int, iface_index: int, frame: bytes) -> None:
        """Write an EPB stamped ``ts_ns`` (converted exactly, see :func:`ticks_for_ns`)."""
        iface = self._iface(iface_index)
        ticks = ticks_for_ns(ts_ns, iface)
        data = self._captured(frame, iface)
        head = struct.pack(
            self._e + "IIIII", iface_index, ticks >> 32, ticks & _MAX_U32, len(data), len(frame)
        )
        self.block(6, head + data)

    def obsolete_packet(self, ts_ns: int, iface_index: int, frame: bytes) -> None:
        """Write an obsolete Packet Block (type 2, drops count 0)."""
        iface = self._iface(iface_index)
        ticks = ticks_for_ns(ts_ns, iface)
        data = self._captured(frame, iface)
        head = struct.pack(
            self._e + "HHIIII", iface_index, 0, ticks >> 32, ticks & _MAX_U32, len(data),
            len(frame),
        )
        self.block(2, head + data)

    def simple_packet(self, frame: bytes) -> None:
        """Write an SPB (interface 0, no timestamp)."""
        data = self._captured(frame, self._iface(0))
        self.block(3, struct.pack(self._e + "I", len(frame)) + data)


def _write_pcapng_to(
    out: BinaryIO,
    records: Iterable[PcapngRecord],
    interfaces: Iterable[Interface],
    big_endian: bool,
) -> int:
    w = PcapngWriter(out)
    w.section(big_endian=big_endian)
    for iface in interfaces:
        w.interface(iface)
    count = 0
    for ts_ns, index, frame in records:
        if ts_ns is None:
            if index != 0:
                raise ValueError(
                    f"a record without timestamp becomes a Simple Packet Block, which is "
                    f"always interface 0: use (None, 0, frame), not (None, {index}, frame)"
                )
            w.simple_packet(frame)
        else:
            w.enhanced_packet(ts_ns, index, frame)
        count += 1
    return count


def write_pcapng(
    path: str | os.PathLike[str],
    records: Iterable[PcapngRecord],
    interfaces: Iterable[Interface],
    *,
    big_endian: bool = False,
) -> int:
    """Write ``(ts_ns | None, iface_index, frame)`` records to a one-section pcapng file.

    ``None`` timestamps become Simple Packet Blocks (interface 0), others Enhanced Packet
    Blocks. Returns the record count.
    """
    with open(path, "wb", buffering=_BUFFER) as out:
        return _write_pcapng_to(out, records, interfaces, big_endian)


def pcapng_bytes(
    records: Iterable[PcapngRecord],
    interfaces: Iterable[Interface],
    *,
    big_endian: bool = False,
) -> bytes:
    """Same as :func:`write_pcapng` but return the file contents."""
    out = io.BytesIO()
    _write_pcapng_to(out, records, interfaces, big_endian)
    return out.getvalue()
