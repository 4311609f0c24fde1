"""The splitter: one capture (a file or a rotated set) -> ordered, record-aligned chunks.

Boundaries come from a scan of the record/block headers (no payload is read), so every chunk
starts on a record and knows the global number of its first frame and the container state
(byte order, interfaces) that precedes it.
"""

from __future__ import annotations

import glob
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import CaptureFormatError, CaptureNotFoundError
from . import pcap, pcapng
from .records import Interface, Problem


@dataclass(frozen=True)
class ChunkSpec:
    """A byte range of one file holding whole records, plus what is needed to read it alone."""

    index: int
    path: str
    start: int
    end: int
    first_frame: int  # global 1-based number of the first frame in the chunk
    frames: int
    container: str  # "pcap" or "pcapng"
    endian: str
    interfaces: tuple[Interface, ...]

    def to_dict(self) -> dict:
        return {"index": self.index, "path": self.path, "start": self.start, "end": self.end,
                "first_frame": self.first_frame, "frames": self.frames,
                "container": self.container, "endian": self.endian,
                "interfaces": [i.to_list() for i in self.interfaces]}

    @classmethod
    def from_dict(cls, d: dict) -> ChunkSpec:
        return cls(**{**d, "interfaces": tuple(Interface.from_list(i) for i in d["interfaces"])})


@dataclass
class FileScan:
    path: str
    container: str
    frames: int = 0
    first_ts: int | None = None
    chunks: list[ChunkSpec] = field(default_factory=list)  # first_frame local to the file
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class CapturePlan:
    files: tuple[str, ...]  # in capture order
    chunks: tuple[ChunkSpec, ...]
    frames: int
    problems: tuple[Problem, ...]
    file_bytes: int


def expand_paths(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Paths and globs -> existing files (a glob's matches sorted by name), duplicates removed."""
    out: list[str] = []
    for p in paths:
        s = os.fspath(p)
        if os.path.isdir(s):
            raise CaptureFormatError(f"{s} is a directory: give capture files or a glob "
                                     f"such as '{os.path.join(s, '*.pcap')}'")
        if os.path.exists(s):
            matches = [s]
        elif glob.has_magic(s):
            matches = sorted(glob.glob(s))
            if not matches:
                raise CaptureNotFoundError(f"no capture file matches the glob {s!r}")
        else:
            raise CaptureNotFoundError(f"capture file not found: {s}")
        out.extend(m for m in matches if m not in out)
    if not out:
        raise CaptureNotFoundError("no capture files given")
    return out


def scan_file(path: str, chunk_size: int) -> FileScan:
    """Walk one file's record headers and cut it into chunks of about `chunk_size` bytes."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(32)
            if size == 0:
                raise CaptureFormatError(f"{path}: empty file, not a capture")
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError as exc:
        raise CaptureNotFoundError(f"capture file not found: {path}") from exc
    except PermissionError as exc:
        raise CaptureFormatError(f"{path}: cannot be read ({exc.strerror})") from exc
    try:
        if pcap.is_pcap(head):
            return _scan_pcap(mm, size, path, chunk_size)
        if pcapng.is_pcapng(head):
            return _scan_pcapng(mm, size, path, chunk_size)
        raise CaptureFormatError(
            f"{path}: not a pcap or pcapng capture (first bytes {head[:8].hex()})")
    finally:
        mm.close()


FATAL = ("truncated", "corrupt-record", "corrupt-block")


class _Cutter:
    """Accumulates frame offsets into chunks of at least `chunk_size` bytes."""

    def __init__(self, scan: FileScan, chunk_size: int, start: int,
                 state: tuple[str, tuple[Interface, ...]]) -> None:
        self.scan, self.size, self.start, self.state = scan, chunk_size, start, state
        self.frames = 0
        self.first = 1

    def frame(self, offset: int, state: tuple[str, tuple[Interface, ...]]) -> None:
        if self.frames and offset - self.start >= self.size:
            self.close(offset)
            self.start, self.state = offset, state
        self.frames += 1

    def frame_batch(self, offsets: np.ndarray, state: tuple[str, tuple[Interface, ...]]) -> None:
        """`frame` for many ascending record offsets at once (same cuts, found by bisection)."""
        i, n = 0, len(offsets)
        while i < n:
            lo = i if self.frames else i + 1
            j = lo + int(np.searchsorted(offsets[lo:], self.start + self.size, "left"))
            if j >= n:
                self.frames += n - i
                return
            self.frames += j - i
            self.close(int(offsets[j]))
            self.start, self.state = int(offsets[j]), state
            i = j

    def close(self, end: int) -> None:
        if self.frames:
            self.scan.chunks.append(ChunkSpec(
                len(self.scan.chunks), self.scan.path, self.start, end, self.first,
                self.frames, self.scan.container, self.state[0], self.state[1]))
            self.first += self.frames
            self.frames = 0

    def finish(self, size: int) -> FileScan:
        """Close the last chunk at the end of the valid data (a fatal problem stops it)."""
        stops = [p.offset for p in self.scan.problems if p.kind in FATAL]
        self.close(min(stops) if stops else size)
        self.scan.frames = self.first - 1
        return self.scan


def _scan_pcap(mm: mmap.mmap, size: int, path: str, chunk_size: int) -> FileScan:
    hdr = pcap.parse_header(mm[:pcap.HEADER_LEN], path)
    scan = FileScan(path, "pcap")
    state = (hdr.endian, (hdr.interface,))
    cut = _Cutter(scan, chunk_size, pcap.HEADER_LEN, state)
    from .columns import _FULL, _walk  # columns imports this module: import when used

    if _walk is None:
        for off, ts, _data, _cap in pcap.walk(mm, pcap.HEADER_LEN, size, hdr, path,
                                              scan.problems):
            if scan.first_ts is None:
                scan.first_ts = ts
            cut.frame(off, state)
        return cut.finish(size)
    return _scan_pcap_compiled(mm, size, path, hdr, scan, cut, _walk, _FULL)


_SCAN_BATCH = 1 << 18  # records per compiled-walk call: bounds the scan's memory


def _scan_pcap_compiled(mm: mmap.mmap, size: int, path: str, hdr: pcap.PcapHeader,
                        scan: FileScan, cut: _Cutter, walk, full: int) -> FileScan:
    """The same scan with the compiled record walk; the Python walk only reports damage."""
    ts, data, cap = (np.empty(_SCAN_BATCH, np.int64) for _ in range(3))
    mult = 1 if hdr.interface.tsresol == 9 else 1000
    frac_max = 1_000_000_000 if mult == 1 else 1_000_000
    view = np.frombuffer(mm, dtype=np.uint8)
    pos, frame0, warned = pcap.HEADER_LEN, 1, False
    state = cut.state
    while True:
        n, pos, status = walk.pcap(mm, pos, hdr.endian == ">", mult, hdr.max_record, ts, data,
                                   cap, 0)
        if n:
            if scan.first_ts is None:
                scan.first_ts = int(ts[0])
            offsets = data[:n] - pcap.RECORD_HEADER_LEN
            cut.frame_batch(offsets, state)
            if not warned:
                frac = view[(offsets + 4)[:, None] + np.arange(4)].astype(np.uint32)
                shifts = np.array([0, 8, 16, 24] if hdr.endian == "<" else [24, 16, 8, 0],
                                  dtype=np.uint32)
                bad = np.flatnonzero((frac << shifts).sum(axis=1) >= frac_max)
                if len(bad):
                    warned = True
                    first = int(bad[0])  # the Python walk of that one record reports it
                    list(pcap.walk(mm, int(offsets[first]), int(data[first] + cap[first]), hdr,
                                   path, scan.problems, frame0 + first))
            frame0 += n
        if status != full:
            break
    if pos < size:  # damage: let the Python walk describe the record it stops at
        for _ in pcap.walk(mm, pos, size, hdr, path, scan.problems, frame0):
            raise AssertionError("the compiled walk stopped before a whole record")
    del view
    return cut.finish(size)


def _scan_pcapng(mm: mmap.mmap, size: int, path: str, chunk_size: int) -> FileScan:
    scan = FileScan(path, "pcapng")
    section = pcapng.Section()
    # The first chunk starts at the first section header, so it needs no prior state.
    cut = _Cutter(scan, chunk_size, 0, ("<", ()))
    for off, ts, _lt, _data, _cap in pcapng.walk(mm, 0, size, section, path, scan.problems):
        if scan.first_ts is None and ts is not None:
            scan.first_ts = ts
        # `section` already reflects every SHB/IDB before this frame block: exactly the state
        # a chunk starting here needs.
        cut.frame(off, (section.endian, tuple(section.interfaces)))
    return cut.finish(size)


def plan_capture(paths: Sequence[str | os.PathLike], chunk_size: int) -> CapturePlan:
    """Scan all files of one capture, order them (first frame's timestamp, then name) and
    number chunks and frames globally."""
    files = expand_paths(paths)
    scans = [scan_file(p, chunk_size) for p in files]
    scans.sort(key=lambda s: (s.first_ts is None, s.first_ts or 0, os.path.basename(s.path),
                              s.path))
    chunks: list[ChunkSpec] = []
    problems: list[Problem] = []
    base = 0
    for s in scans:
        for c in s.chunks:
            chunks.append(ChunkSpec(len(chunks), c.path, c.start, c.end, base + c.first_frame,
                                    c.frames, c.container, c.endian, c.interfaces))
        problems.extend(Problem(p.file, p.offset, base + p.frame if p.frame else 0, p.kind,
                                p.message) for p in s.problems)
        base += s.frames
    return CapturePlan(tuple(s.path for s in scans), tuple(chunks), base, tuple(problems),
                       sum(os.path.getsize(s.path) for s in scans))
