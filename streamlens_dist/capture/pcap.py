"""Classic libpcap files: global header and a record walk over a byte range.

Timestamps are read from the record headers as integers (never through dpkt's float or
Decimal timestamps): `sec * 10**9 + frac * 1000` for µs files, `sec * 10**9 + frac` for ns
files, taken literally even when the fraction is out of range (that is reported).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import CaptureFormatError
from .records import CORRUPT_RECORD, TIMESTAMP, TRUNCATED, Interface, Problem

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
    appends a Problem (with the frame number it would have had) to `problems`; the caller
    (the splitter) decides whether reading resumes further on (`resync`) and says so.
    """
    unpack = struct.Struct(header.endian + "IIII").unpack_from
    mult = 1 if header.interface.tsresol == 9 else 1000
    frac_max = 1_000_000_000 if mult == 1 else 1_000_000
    limit = header.max_record
    frame = frame0
    warned_frac = False
    while pos < end:
        if end - pos < RECORD_HEADER_LEN:
            _report(problems, path, pos, frame, TRUNCATED,
                    f"record header cut short: {end - pos} of 16 bytes present")
            return
        sec, frac, incl, orig = unpack(buf, pos)
        if not (sec or frac or incl or orig) and _zero_run(buf, pos, end):
            # Four empty records at the epoch in a row are no capture: these are zero-filled
            # bytes, what a recorder's power loss or a preallocated file leaves.
            _report_zeros(problems, path, buf, pos, end, frame)
            return
        if incl > limit:
            _report(problems, path, pos, frame, CORRUPT_RECORD,
                    f"record header claims {incl} captured bytes (limit {limit})")
            return
        if pos + RECORD_HEADER_LEN + incl > end:
            _report(problems, path, pos, frame, TRUNCATED,
                    f"record header claims {incl} captured bytes, only "
                    f"{end - pos - RECORD_HEADER_LEN} follow before the end of the data")
            return
        if frac >= frac_max and not warned_frac:
            warned_frac = True
            _report(problems, path, pos, frame, TIMESTAMP,
                    f"timestamp fraction {frac} is out of range (>= {frac_max}); "
                    "taken literally as sec*1e9 + fraction (first occurrence of a run of "
                    "records only reported)")
        yield pos, sec * 1_000_000_000 + frac * mult, pos + RECORD_HEADER_LEN, incl
        pos += RECORD_HEADER_LEN + incl
        frame += 1


ZERO_RUN = 64  # zero bytes where a record header should be that make zero fill


def _zero_run(buf, pos: int, end: int) -> bool:
    return end - pos >= ZERO_RUN and not any(bytes(buf[pos:pos + ZERO_RUN]))


def _report_zeros(problems: list[Problem] | None, path: str, buf, pos: int, end: int,
                  frame: int) -> None:
    if problems is None:
        return
    if not np.count_nonzero(np.frombuffer(buf, dtype=np.uint8, count=end - pos, offset=pos)):
        _report(problems, path, pos, frame, TRUNCATED,
                f"zero-filled from here to the end of the data ({end - pos} bytes), as a "
                "recorder's power loss leaves")
    else:
        _report(problems, path, pos, frame, CORRUPT_RECORD,
                f"{ZERO_RUN} or more zero bytes where a record header should be")


def _report(problems: list[Problem] | None, path: str, pos: int, frame: int, kind: str,
            message: str) -> None:
    if problems is not None:
        problems.append(Problem(path, pos, frame, kind, message))


# --- resynchronisation after a damaged record header -----------------------------------------
#
# A pcap record header has little structure, so a resync is accepted only where the bytes
# leave no reasonable doubt: RESYNC_CHAIN consecutive plausible headers chaining exactly, all
# whole. (A shorter chain ending exactly at the end of the data is not enough: packet bytes
# are full of small integers, and one "record" fitting the rest of a cut-off last record was
# found by the fuzz tests inside a real capture's payload.) Plausible: the fraction
# is in range, 0 < captured length <= the record limit, captured <= original length <= the
# hard cap, and (after the first) the seconds within RESYNC_WINDOW_S of the chain's previous
# record. The first record must also lie within RESYNC_WINDOW_S of one of the last
# RESYNC_CHAIN records read before the damage, when there are any: the real records read a few
# bytes late chain just as well (each header then starts inside the previous one's fields:
# seconds = the microseconds, a length = the original length), and only their "seconds"
# (microsecond values: 1970) give them away. One of several references, because the walk
# notices damage only where it becomes implausible, so the last record it accepted may be made
# of damaged bytes; a clock that steps by more than a day exactly at the damage stops the
# reading there (nothing is invented either way).
RESYNC_CHAIN = 4
RESYNC_WINDOW_S = 86400
_SCAN_WINDOW = 1 << 20  # candidate offsets tested per vectorised step


def _plausible(fields: tuple[int, int, int, int], header: PcapHeader, frac_max: int,
               prev_sec: int | None) -> bool:
    sec, frac, incl, orig = fields
    return (frac < frac_max and 0 < incl <= header.max_record and incl <= orig <= HARD_MAX_RECORD
            and (prev_sec is None or abs(sec - prev_sec) <= RESYNC_WINDOW_S))


def chain_length(buf, pos: int, end: int, header: PcapHeader, near: Sequence[int] = ()
                 ) -> int:
    """How many plausible, whole records chain from `pos` (at most RESYNC_CHAIN); with
    `near` (seconds of records before the damage), the first must be close to one of them."""
    unpack = struct.Struct(header.endian + "IIII").unpack_from
    frac_max = 1_000_000_000 if header.interface.tsresol == 9 else 1_000_000
    n, prev_sec = 0, None
    while n < RESYNC_CHAIN:
        if end - pos < RECORD_HEADER_LEN:
            return n
        fields = unpack(buf, pos)
        if not _plausible(fields, header, frac_max, prev_sec):
            return n
        if n == 0 and near and all(abs(fields[0] - r) > RESYNC_WINDOW_S for r in near):
            return n
        pos += RECORD_HEADER_LEN + fields[2]
        if pos > end:
            return n
        n += 1
        prev_sec = fields[0]
    return n


def _words(buf, start: int, n: int, endian: str) -> np.ndarray:
    """The 32-bit word at every byte offset start .. start+n-1 (unaligned), from four
    strided views of the buffer: one array the record fields are sliced from."""
    dt = np.dtype(np.uint32).newbyteorder(endian)
    out = np.empty(n, dtype=np.uint32)
    for k in range(4):
        m = (n - k + 3) // 4  # offsets start+k, start+k+4, ... below start+n
        if m > 0:
            out[k::4] = np.frombuffer(buf, dtype=dt, count=m, offset=start + k)
    return out


def resync(buf, pos: int, end: int, header: PcapHeader, near: Sequence[int] = ()
           ) -> int | None:
    """The first offset after the damaged header at `pos` where a validated chain of records
    starts (see RESYNC_CHAIN; `near`: the seconds of the last records before the damage), or
    None. Candidates are filtered with numpy a window at a time, so a long damaged stretch
    costs a linear scan, never a Python loop per byte."""
    frac_max = 1_000_000_000 if header.interface.tsresol == 9 else 1_000_000
    x = pos + 1
    while x + RECORD_HEADER_LEN <= end:
        n = min(_SCAN_WINDOW, end - RECORD_HEADER_LEN - x + 1)
        w = _words(buf, x + 4, n + 8, header.endian)  # fraction, captured, original length
        frac, incl, orig = w[:n], w[4:n + 4], w[8:n + 8]
        ok = (frac < frac_max) & (incl > 0) & (incl <= header.max_record) & (incl <= orig) \
            & (orig <= HARD_MAX_RECORD)
        ok &= np.arange(x + RECORD_HEADER_LEN, x + RECORD_HEADER_LEN + n) + incl <= end
        for i in np.flatnonzero(ok).tolist():
            if chain_length(buf, x + i, end, header, near) == RESYNC_CHAIN:
                return x + i
        x += n
    return None
