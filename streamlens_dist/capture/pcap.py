"""Classic libpcap files: global header and a record walk over a byte range.

Timestamps are read from the record headers as integers (never through dpkt's float or
Decimal timestamps): `sec * 10**9 + frac * 1000` for µs files, `sec * 10**9 + frac` for ns
files, taken literally even when the fraction is out of range (that is reported).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import CaptureFormatError
from .records import Interface, Problem

HEADER_LEN = 24
RECORD_HEADER_LEN = 16
# libpcap refuses records above 262144 bytes for most link types; a larger snaplen in the
# header raises the limit, but never past this hard cap (a hostile header must not make us
# trust a 4 GiB length).
DEFAULT_MAX_RECORD = 262144
HARD_MAX_RECORD = 256 * 1024 * 1024

_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 6),
    b"\xa1\xb2\xc3\xd4": (">", 6),
    b"\x4d\x3c\xb2\xa1": ("<", 9),
    b"\xa1\xb2\x3c\x4d": (">", 9),
}


def is_pcap(head: bytes) -> bool:
    return head[:4] in _MAGICS


@dataclass(frozen=True)
class PcapHeader:
    endian: str
    interface: Interface  # tsresol 6 (µs) or 9 (ns)

    @property
    def max_record(self) -> int:
        return min(max(self.interface.snaplen, DEFAULT_MAX_RECORD), HARD_MAX_RECORD)


def parse_header(buf: bytes | memoryview, path: str) -> PcapHeader:
    if len(buf) < HEADER_LEN:
        raise CaptureFormatError(f"{path}: pcap global header is cut short ({len(buf)} bytes)")
    magic = bytes(buf[:4])
    if magic not in _MAGICS:
        raise CaptureFormatError(f"{path}: not a pcap file (magic {magic.hex()})")
    endian, resol = _MAGICS[magic]
    major, minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(endian + "HHiIII", buf, 4)
    if major != 2:
        raise CaptureFormatError(
            f"{path}: pcap version {major}.{minor} is not supported (only 2.x exists in practice)"
        )
    return PcapHeader(endian, Interface(network & 0xFFFF, snaplen, resol, 0))


def walk(
    buf: bytes | memoryview,
    pos: int,
    end: int,
    header: PcapHeader,
    path: str,
    problems: list[Problem] | None = None,
    frame0: int = 1,
) -> Iterator[tuple[int, int, int, int]]:
    """Yield (record offset, ts_ns, data offset, captured length) for each whole record.

    Stops cleanly at the first damaged record header or a record cut short by `end`, and
    appends a Problem (with the frame number it would have had) to `problems`.
    """
    unpack = struct.Struct(header.endian + "IIII").unpack_from
    mult = 1 if header.interface.tsresol == 9 else 1000
    frac_max = 1_000_000_000 if mult == 1 else 1_000_000
    limit = header.max_record
    frame = frame0
    warned_frac = False
    while pos < end:
        if end - pos < RECORD_HEADER_LEN:
            _report(problems, path, pos, frame, "truncated",
                    f"record header cut short: {end - pos} of 16 bytes present; "
                    "everything before it was analysed")
            return
        sec, frac, incl, _orig = unpack(buf, pos)
        if incl > limit:
            _report(problems, path, pos, frame, "corrupt-record",
                    f"record header claims {incl} captured bytes (limit {limit}); "
                    "stopped reading this file here")
            return
        if pos + RECORD_HEADER_LEN + incl > end:
            _report(problems, path, pos, frame, "truncated",
                    f"last record cut short: header claims {incl} bytes, "
                    f"{end - pos - RECORD_HEADER_LEN} present; everything before it was analysed")
            return
        if frac >= frac_max and not warned_frac:
            warned_frac = True
            _report(problems, path, pos, frame, "timestamp",
                    f"timestamp fraction {frac} is out of range (>= {frac_max}); "
                    "taken literally as sec*1e9 + fraction (first occurrence only reported)")
        yield pos, sec * 1_000_000_000 + frac * mult, pos + RECORD_HEADER_LEN, incl
        pos += RECORD_HEADER_LEN + incl
        frame += 1


def _report(problems: list[Problem] | None, path: str, pos: int, frame: int, kind: str,
            message: str) -> None:
    if problems is not None:
        problems.append(Problem(path, pos, frame, kind, message))
