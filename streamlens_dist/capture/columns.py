"""A chunk's records as numpy columns: the fast path of the frame walk.

`record_columns(spec, buf)` turns the bytes of one chunk (`buf` is exactly
`read_range(spec.path, spec.start, spec.end)`) into one row per frame, equal frame by frame to
what `chunktask.iter_frames(spec)` yields: row i is frame `spec.first_frame + i`, with
`ts[i]` (0 and `untimed[i]` where iter_frames gives None), `linktype[i]`, `caplen[i]` and the
frame bytes `buf[offset[i]:offset[i] + caplen[i]]`.

Two implementations give identical columns:

- the compiled walk (`_walk.c`, built by setuptools as an optional extension): pcap records are
  walked entirely in C; pcapng blocks are walked in C up to each section header or interface
  description, which the Python walk (`pcapng.walk`) applies before C resumes, so the rare,
  option-laden blocks keep one definition. Tick counts are converted in C when the unsigned
  reading fits int64 (an exact 128-bit product for 2^-k resolutions); every other
  count (the signed re-reading, values out of range, odd interfaces) is left to
  `records.ticks_to_ns`.
- `record_columns_python`, the fallback used when the extension is not built, which collects
  the existing Python walks into arrays.

`HAVE_COMPILED` tells which one `record_columns` uses.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from ..errors import CaptureFormatError
from . import pcap, pcapng
from .records import INT64_MAX, INT64_MIN, Interface, ticks_to_ns
from .split import ChunkSpec

# Statuses returned by the compiled walks, and the size of one interface row (see _walk.c).
_END, _FULL, _STOP, _BLOCK = 0, 1, 2, 3
_IFACE_ROW = 6  # int64 words
_DEFERRED = 2  # untimed value of a row whose tick count Python converts


def _load_compiled():
    """The compiled walk module, or None when it was not built, cannot be loaded, or is a
    stale build that does not speak this module's protocol."""
    try:
        mod = importlib.import_module(f"{__package__}._walk")
    except ImportError:
        return None
    if (mod.END, mod.FULL, mod.STOP, mod.BLOCK, mod.IFACE_SIZE) != (
            _END, _FULL, _STOP, _BLOCK, 8 * _IFACE_ROW):
        return None
    return mod


_walk = _load_compiled()
HAVE_COMPILED: bool = _walk is not None


@dataclass(frozen=True)
class RecordColumns:
    """One row per frame of a chunk, in frame order."""

    ts: np.ndarray  # int64 ns since the epoch; 0 where untimed
    untimed: np.ndarray  # bool: no timestamp (SPB, unknown interface, unrepresentable time)
    linktype: np.ndarray  # int32; -1 for a packet on an undeclared pcapng interface
    offset: np.ndarray  # int64: offset of the frame's first byte within the chunk's bytes
    caplen: np.ndarray  # int64: captured length

    def __len__(self) -> int:
        return len(self.ts)


def record_columns(spec: ChunkSpec, buf: bytes) -> RecordColumns:
    """The chunk's frames as columns (compiled walk when built, else the Python walk).

    Raises CaptureFormatError, as iter_frames does, when the chunk no longer holds
    `spec.frames` frames.
    """
    if _walk is None:
        return record_columns_python(spec, buf)
    if spec.container == "pcap":
        return _pcap_compiled(spec, buf)
    return _pcapng_compiled(spec, buf)


def record_columns_python(spec: ChunkSpec, buf: bytes) -> RecordColumns:
    """The fallback: the Python record walks of pcap.py / pcapng.py collected into columns."""
    ts: list[int] = []
    untimed: list[bool] = []
    lts: list[int] = []
    offs: list[int] = []
    caps: list[int] = []
    if spec.container == "pcap":
        hdr = pcap.PcapHeader(spec.endian, spec.interfaces[0])
        lt = hdr.interface.linktype
        for _off, t, data, cap in pcap.walk(buf, 0, len(buf), hdr, spec.path):
            ts.append(t)
            offs.append(data)
            caps.append(cap)
        untimed = [False] * len(ts)
        lts = [lt] * len(ts)
    else:
        section = pcapng.Section(spec.endian, list(spec.interfaces))
        for _off, t, lt, data, cap in pcapng.walk(buf, 0, len(buf), section, spec.path):
            ts.append(0 if t is None else t)
            untimed.append(t is None)
            lts.append(lt)
            offs.append(data)
            caps.append(cap)
    _check_count(spec, len(ts))
    return RecordColumns(np.array(ts, dtype=np.int64), np.array(untimed, dtype=np.bool_),
                         np.array(lts, dtype=np.int32), np.array(offs, dtype=np.int64),
                         np.array(caps, dtype=np.int64))


def _check_count(spec: ChunkSpec, n: int) -> None:
    if n != spec.frames:
        raise CaptureFormatError(
            f"{spec.path}: bytes {spec.start}-{spec.end} held {spec.frames} frames when the "
            f"capture was split but {n} now; did the file change?")


class _Out:
    """Preallocated output columns, grown when a chunk holds more frames than planned."""

    def __init__(self, rows: int) -> None:
        self.n = 0
        self.ts = np.empty(rows, np.int64)
        self.untimed = np.empty(rows, np.uint8)
        self.linktype = np.empty(rows, np.int32)
        self.offset = np.empty(rows, np.int64)
        self.caplen = np.empty(rows, np.int64)

    def grow(self) -> None:
        rows = max(16, 2 * len(self.ts))
        for name in ("ts", "untimed", "linktype", "offset", "caplen"):
            old = getattr(self, name)
            new = np.empty(rows, old.dtype)
            new[:self.n] = old[:self.n]
            setattr(self, name, new)

    def columns(self) -> RecordColumns:
        n = self.n
        return RecordColumns(self.ts[:n], self.untimed[:n].view(np.bool_), self.linktype[:n],
                             self.offset[:n], self.caplen[:n])


def _initial_rows(spec: ChunkSpec, buf: bytes) -> int:
    # Every frame record/block takes at least 16 bytes: a wrong `spec.frames` cannot make us
    # allocate more than the bytes can hold (and growth covers a chunk that holds more).
    return min(max(spec.frames, 0), len(buf) // 16) + 1


def _pcap_compiled(spec: ChunkSpec, buf: bytes) -> RecordColumns:
    hdr = pcap.PcapHeader(spec.endian, spec.interfaces[0])
    mult = 1 if hdr.interface.tsresol == 9 else 1000
    out = _Out(_initial_rows(spec, buf))
    pos = 0
    while True:
        out.n, pos, status, _odd = _walk.pcap(buf, pos, spec.endian == ">", mult, hdr.max_record,
                                        out.ts, out.offset, out.caplen, out.n)
        if status != _FULL:
            break
        out.grow()
    _check_count(spec, out.n)
    out.untimed[:out.n] = 0
    out.linktype[:out.n] = hdr.interface.linktype
    return out.columns()


# Interface table rows for the C walk: linktype, snaplen, conversion kind, parameter,
# tsoffset in ns, spare (see iface_t in _walk.c).
_CONV_DEFER, _CONV_MUL, _CONV_DIV, _CONV_ZERO, _CONV_POW2 = 0, 1, 2, 3, 4


def _iface_row(iface: Interface) -> tuple[int, int, int, int, int, int]:
    r = iface.tsresol
    kind, param = _CONV_DEFER, 0
    if 0 <= r <= 0xFF:
        if r & 0x80:
            kind, param = _CONV_POW2, r & 0x7F
        elif r <= 9:
            kind, param = _CONV_MUL, 10 ** (9 - r)
        elif r - 9 <= 19:
            # 10**19 does not fit int64: stored as its 64-bit pattern, read unsigned in C.
            d = 10 ** (r - 9)
            kind, param = _CONV_DIV, d - (1 << 64) if d > INT64_MAX else d
        else:
            kind = _CONV_ZERO
    off_ns = iface.tsoffset * 1_000_000_000
    if not INT64_MIN <= off_ns <= INT64_MAX:
        kind, off_ns = _CONV_DEFER, 0
    # linktype (IDB: 16 bits) and snaplen (32 bits) fit; anything else is not from a file.
    return (iface.linktype, iface.snaplen, kind, param, off_ns, 0)


class _Ifaces:
    """The current section's interfaces as a growable int64 table for the C walk."""

    def __init__(self, interfaces: list[Interface]) -> None:
        self.table = np.zeros((max(8, len(interfaces)), _IFACE_ROW), np.int64)
        self.n = 0
        for iface in interfaces:
            self.append(iface)

    def append(self, iface: Interface) -> None:
        if self.n == len(self.table):
            bigger = np.zeros((2 * self.n, _IFACE_ROW), np.int64)
            bigger[:self.n] = self.table
            self.table = bigger
        self.table[self.n] = _iface_row(iface)
        self.n += 1

    def view(self) -> np.ndarray:
        return self.table[:self.n]


def _resolve_deferred(out: _Out, n0: int, interfaces: list[Interface]) -> None:
    """Convert the tick counts the C walk left to Python (rows n0.. written in one call)."""
    unt = out.untimed[n0:out.n]
    for i in (np.flatnonzero(unt == _DEFERRED) + n0).tolist():
        iface = interfaces[int(out.linktype[i])]
        ticks = int(out.ts[i]) & 0xFFFF_FFFF_FFFF_FFFF
        ns = ticks_to_ns(ticks, iface.tsresol, iface.tsoffset)
        out.ts[i] = 0 if ns is None else ns
        out.untimed[i] = ns is None
        out.linktype[i] = iface.linktype


def _pcapng_compiled(spec: ChunkSpec, buf: bytes) -> RecordColumns:
    section = pcapng.Section(spec.endian, list(spec.interfaces))
    ifaces = _Ifaces(section.interfaces)
    out = _Out(_initial_rows(spec, buf))
    pos = 0
    while True:
        n0 = out.n
        out.n, pos, status, nxt = _walk.pcapng(
            buf, pos, section.endian == ">", ifaces.view(), out.ts, out.untimed, out.linktype,
            out.offset, out.caplen, out.n)
        _resolve_deferred(out, n0, section.interfaces)
        if status == _FULL:
            out.grow()
        elif status == _BLOCK:
            # A section header or interface description with valid framing: the Python walk
            # applies it (options, byte order, interface list) or reports it damaged.
            problems: list = []
            before = section.interfaces
            known = len(before)
            for _frame in pcapng.walk(buf, pos, nxt, section, spec.path, problems):
                raise AssertionError("a section/interface block yielded a frame")
            if problems:
                break
            if section.interfaces is not before:  # a new section: numbering restarts
                ifaces = _Ifaces(section.interfaces)
            else:
                for iface in section.interfaces[known:]:
                    ifaces.append(iface)
            pos = nxt
        else:
            break
    _check_count(spec, out.n)
    return out.columns()
