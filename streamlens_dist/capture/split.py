"""The splitter: one capture (a file or a rotated set) -> ordered, record-aligned chunks.

Boundaries come from a scan of the record/block headers (no payload is read), so every chunk
starts on a record and knows the global number of its first frame and the container state
(byte order, interfaces) that precedes it.

Damage never stops a run: a file that cannot be analysed at all is left out and reported; a
damaged record or block ends the chunk before it, and reading resumes after it only where the
pcap/pcapng reader validates a resync point (`pcap.resync`, `pcapng.resync`), else the file
is read up to it. Chunks never contain damaged bytes, so the chunk tasks read only clean data.

A compressed file (capture/compressed.py) is decompressed once into a temporary file that is
scanned like a plain one; its chunks' byte ranges are offsets in the decompressed data and
name the codec and the restart point their task decompresses from.
"""

from __future__ import annotations

import glob
import mmap
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import CaptureFormatError, CaptureNotFoundError, CaptureReadError
from . import compressed, pcap, pcapng, source
from .records import (
    COMPRESSED_DAMAGE,
    CORRUPT_BLOCK,
    CORRUPT_RECORD,
    FATAL,
    FILE_MISSING,
    FILE_NOT_CAPTURE,
    FILE_UNREADABLE,
    TRUNCATED,
    Interface,
    Problem,
)


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
    # A compressed file's codec ("" for a plain file: start and end are then file offsets) and
    # the restart point (compressed, decompressed offset) at or before `start`.
    codec: str = ""
    restart: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict:
        d = {"index": self.index, "path": self.path, "start": self.start, "end": self.end,
             "first_frame": self.first_frame, "frames": self.frames,
             "container": self.container, "endian": self.endian,
             "interfaces": [i.to_list() for i in self.interfaces]}
        if self.codec:  # only then: a plain chunk's dict (and checkpoint key) stays as it was
            d.update(codec=self.codec, restart=list(self.restart))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ChunkSpec:
        return cls(**{**d, "interfaces": tuple(Interface.from_list(i) for i in d["interfaces"]),
                      "restart": tuple(d.get("restart", (0, 0)))})


@dataclass
class FileScan:
    path: str
    container: str
    frames: int = 0
    first_ts: int | None = None
    chunks: list[ChunkSpec] = field(default_factory=list)  # first_frame local to the file
    problems: list[Problem] = field(default_factory=list)
    size: int = 0

    def to_dict(self) -> dict:
        return {"path": self.path, "container": self.container, "frames": self.frames,
                "first_ts": self.first_ts, "size": self.size,
                "chunks": [c.to_dict() for c in self.chunks],
                "problems": [p.to_dict() for p in self.problems]}

    @classmethod
    def from_dict(cls, d: dict) -> FileScan:
        return cls(d["path"], d["container"], d["frames"], d["first_ts"],
                   [ChunkSpec.from_dict(c) for c in d["chunks"]],
                   [Problem.from_dict(p) for p in d["problems"]], d["size"])


@dataclass(frozen=True)
class CapturePlan:
    files: tuple[str, ...]  # in capture order
    chunks: tuple[ChunkSpec, ...]
    frames: int
    problems: tuple[Problem, ...]
    file_bytes: int


def _expand(path: str | os.PathLike, storage: source.Storage | None) -> list[str]:
    """One command-line path, URL or glob -> the files it names (a glob's matches sorted by
    name)."""
    if source.is_url(path):
        return source.expand(os.fspath(path), storage)
    s = source.local_path(path)
    if os.path.isdir(s):
        raise CaptureReadError(f"{s} is a directory: give capture files or a glob "
                               f"such as '{os.path.join(s, '*.pcap')}'")
    if os.path.lexists(s):
        return [s]
    if glob.has_magic(s):
        matches = sorted(glob.glob(s))
        if not matches:
            raise CaptureNotFoundError(f"no capture file matches the glob {s!r}")
        return matches
    raise CaptureNotFoundError(f"capture file not found: {s}")


def scan_file(path: str, chunk_size: int, name: str | None = None,
              directory: str | None = None, on_chunk: OnChunk | None = None) -> FileScan:
    """Walk one file's record headers and cut it into chunks of about `chunk_size` bytes.

    Raises CaptureNotFoundError, CaptureReadError or CaptureFormatError for a file that cannot
    be analysed at all; damage inside a capture is reported in `FileScan.problems` instead.
    `name` is what chunks and messages call the file (the URL of a fetched copy); a compressed
    file is decompressed into a temporary file in `directory` (default: the system's).
    `on_chunk(spec)` is called with each chunk as soon as it is cut, except in a compressed
    file (whose chunks change once the whole file is read).
    """
    return _scan_local(path, chunk_size, path if name is None else name, directory, on_chunk)


def scan_url(url: str, chunk_size: int, storage: source.Storage | None = None,
             directory: str | None = None) -> FileScan:
    """`scan_file` of a remote object, from a temporary local copy streamed into `directory`
    (the record walk needs the whole file once; the chunk tasks then read byte ranges)."""
    with tempfile.TemporaryDirectory(prefix="streamlens-scan-", dir=directory) as tmp:
        local = os.path.join(tmp, "capture")
        source.fetch(url, local, storage)
        return scan_file(local, chunk_size, url, tmp)


def _scan_local(path: str, chunk_size: int, name: str, directory: str | None = None,
                on_chunk: OnChunk | None = None) -> FileScan:
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise CaptureNotFoundError(f"capture file not found: {name}") from exc
    except OSError as exc:
        raise CaptureReadError(f"{name}: cannot be read ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise CaptureReadError(f"{name} is a directory: give capture files or a glob "
                               f"such as '{os.path.join(name, '*.pcap')}'")
    if not stat.S_ISREG(st.st_mode):
        # opening a FIFO would block until a writer appears; a device has no size to map
        raise CaptureReadError(f"{name}: not a regular file (a pipe, socket or device); "
                               "save the capture to a file first")
    if st.st_size == 0:
        raise CaptureFormatError(f"{name}: empty file, not a capture")
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            size = os.fstat(f.fileno()).st_size
            codec = compressed.codec_of(head)
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) \
                if size and codec is None else None
    except FileNotFoundError as exc:
        raise CaptureNotFoundError(f"capture file not found: {name}") from exc
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CaptureReadError(f"{name}: cannot be read ({reason})") from exc
    if codec is not None:
        return _scan_compressed(path, codec, chunk_size, name, directory)
    if mm is None:
        raise CaptureFormatError(f"{name}: empty file, not a capture")
    try:
        if pcap.is_pcap(head):
            scan = _scan_pcap(mm, size, name, chunk_size, on_chunk)
        elif pcapng.is_pcapng(head):
            scan = _scan_pcapng(mm, size, name, chunk_size, on_chunk)
        else:
            scan = None
        if scan is not None:
            scan.size = size
            return scan
        if head[:2] == b"\x25\xeb":  # the Chapter 10 packet sync word, little-endian
            raise CaptureFormatError(
                f"{name}: an IRIG 106 Chapter 10 recording (.c10), not a pcap or pcapng "
                "capture; give the network capture that carries Chapter 10 over UDP")
        raise CaptureFormatError(
            f"{name}: not a pcap or pcapng capture (first bytes {head[:8].hex()})")
    finally:
        mm.close()


# Chunks of a compressed file that share a restart point each decompress from it, so n of them
# cost 1 + 2 + ... + n chunks of decompression. Beyond this many per restart point they are
# merged into this many larger ones: the decompression then costs at most (n+1)/2 = 4.5 times
# one pass over the member, and a chunk task's memory grows to member size / this at worst
# (README "Compressed captures").
MAX_CHUNKS_PER_RESTART = 8


def _scan_compressed(path: str, codec: str, chunk_size: int, name: str,
                     directory: str | None) -> FileScan:
    """Decompress the file into a temporary file once, scan that, and give each chunk the
    codec and restart point its task decompresses from."""
    with tempfile.TemporaryDirectory(prefix="streamlens-inflate-", dir=directory) as tmp:
        local = os.path.join(tmp, "capture")
        try:
            with open(path, "rb") as f, open(local, "wb") as out:
                got = compressed.inflate(f, codec, out)
        except OSError as exc:
            raise CaptureReadError(f"{name}: cannot be decompressed ({exc.strerror or exc})") \
                from exc
        damage = f" ({got.damage.reason})" if got.damage is not None else ""
        if got.size == 0:
            raise CaptureFormatError(f"{name}: {codec} data that decompresses to nothing"
                                     f"{damage}, not a capture")
        with open(local, "rb") as f:
            inner = compressed.codec_of(f.read(32))
        if inner is not None:  # chunk tasks undo one layer only
            raise CaptureFormatError(f"{name}: {inner} data inside {codec} data; decompress "
                                     "the outer layer first")
        try:
            scan = _scan_local(local, chunk_size, name)
        except CaptureFormatError as exc:
            raise CaptureFormatError(f"{exc} (after {codec} decompression{damage})") from exc
    scan.chunks = _restart_chunks(scan.chunks, got)
    if got.damage is not None:
        checked = "" if got.damage.cut else \
            " (bytes decoded from a damaged member could not be checked)"
        scan.problems.append(Problem(
            name, got.size, scan.frames + 1, COMPRESSED_DAMAGE,
            f"{got.damage.reason}; stopped reading this file at decompressed byte {got.size}, "
            f"everything decoded before it was analysed{checked}"))
    return scan


def _restart_chunks(chunks: list[ChunkSpec], got: compressed.Inflated) -> list[ChunkSpec]:
    """The chunks with their codec and restart point, at most MAX_CHUNKS_PER_RESTART per
    restart point (runs of adjacent chunks merged; a damaged gap is never merged over)."""
    by_restart: dict[tuple[int, int], list[ChunkSpec]] = {}
    for c in chunks:
        by_restart.setdefault(got.restart_for(c.start), []).append(c)
    out: list[ChunkSpec] = []
    for restart, group in by_restart.items():
        per = -(-len(group) // MAX_CHUNKS_PER_RESTART)
        for i, c in enumerate(group):
            c = replace(c, index=len(out), codec=got.codec, restart=restart)
            prev = out[-1] if out and i % per else None
            if prev is not None and prev.end == c.start and prev.restart == restart:
                out[-1] = replace(prev, end=c.end, frames=prev.frames + c.frames)
            else:
                out.append(c)
    return out


# A file with more damaged stretches than this is not worth resynchronising through: reading
# stops at the next one (and the problem list of one file stays bounded).
MAX_RESYNCS = 100


class _Cutter:
    """Accumulates frame offsets into chunks of at least `chunk_size` bytes."""

    def __init__(self, scan: FileScan, chunk_size: int, start: int,
                 state: tuple[str, tuple[Interface, ...]], on_chunk: OnChunk | None = None
                 ) -> None:
        self.scan, self.size, self.start, self.state = scan, chunk_size, start, state
        self.on_chunk = on_chunk
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
            if self.on_chunk is not None:
                self.on_chunk(self.scan.chunks[-1])
            self.first += self.frames
            self.frames = 0

    def gap(self, stop: int, resume: int, state: tuple[str, tuple[Interface, ...]]) -> None:
        """Damaged bytes [stop, resume): no chunk spans them; the next one starts at resume
        with the container state the damage left (`state`)."""
        self.close(stop)
        self.start, self.state = resume, state

    def finish(self, end: int) -> FileScan:
        """Close the last chunk at `end`, the end of the data that could be read."""
        self.close(end)
        self.scan.frames = self.first - 1
        return self.scan


def _stop_of(problems: list[Problem], since: int) -> int | None:
    """Index of the problem that ended a walk (always the last one it reported), if any."""
    if len(problems) > since and problems[-1].kind in FATAL:
        return len(problems) - 1
    return None


def _settle(scan: FileScan, i: int, resume: int | None, unit: str, resyncs: int) -> None:
    """Say what the damage reported at problems[i] cost: the rest of the file, or the bytes
    skipped to the validated resync point."""
    p = scan.problems[i]
    if resume is None:
        why = f" after {MAX_RESYNCS} damaged stretches" if resyncs >= MAX_RESYNCS else ""
        scan.problems[i] = replace(p, message=f"{p.message}; stopped reading this file here"
                                   f"{why} (everything before it was analysed)")
        return
    # Valid data follows, so the length that ran past the end was damage, not truncation.
    kind = (CORRUPT_RECORD if unit == "records" else CORRUPT_BLOCK) if p.kind == TRUNCATED \
        else p.kind
    scan.problems[i] = replace(
        p, kind=kind, skipped=resume - p.offset,
        message=f"{p.message}; skipped {resume - p.offset} bytes to byte {resume}, where "
                f"{unit} chain again (validated), and read on")


def _read_with_resync(scan: FileScan, cut: _Cutter, start: int, size: int,
                      segment: Callable[[int], None], resync: Callable[[int], int | None],
                      state: Callable[[], tuple[str, tuple[Interface, ...]]], unit: str
                      ) -> FileScan:
    """Read stretches of a file with `segment(pos)`; after a stretch that stops at damage,
    resume where `resync(stop)` validates the framing again, else finish at the damage."""
    pos = start
    for resyncs in range(MAX_RESYNCS + 1):
        since = len(scan.problems)
        segment(pos)
        i = _stop_of(scan.problems, since)
        if i is None:
            break
        stop = scan.problems[i].offset
        resume = resync(stop) if resyncs < MAX_RESYNCS else None
        _settle(scan, i, resume, unit, resyncs)
        if resume is None:
            return cut.finish(stop)
        cut.gap(stop, resume, state())
        pos = resume
    return cut.finish(size)


def _scan_pcap(mm: mmap.mmap, size: int, path: str, chunk_size: int,
               on_chunk: OnChunk | None = None) -> FileScan:
    hdr = pcap.parse_header(mm[:pcap.HEADER_LEN], path)
    scan = FileScan(path, "pcap")
    state = (hdr.endian, (hdr.interface,))
    cut = _Cutter(scan, chunk_size, pcap.HEADER_LEN, state, on_chunk)
    from .columns import _FULL, _walk  # columns imports this module: import when used
    recent: list[int] = []  # times (ns) of the last records read: the resync's reference

    def segment(pos: int) -> None:
        if _walk is None:
            _segment_pcap_python(mm, pos, size, hdr, scan, cut, recent)
        else:
            _segment_pcap_compiled(mm, pos, size, hdr, scan, cut, cut.first + cut.frames,
                                   _walk, _FULL, recent)

    def resync(stop: int) -> int | None:
        return pcap.resync(mm, stop, size, hdr, [t // 1_000_000_000 for t in recent])

    return _read_with_resync(scan, cut, pcap.HEADER_LEN, size, segment, resync,
                             lambda: state, "records")


def _remember(recent: list[int], times: Sequence[int]) -> None:
    """Keep the last pcap.RESYNC_CHAIN of the times read so far in `recent`."""
    recent[:] = [*recent, *times][-pcap.RESYNC_CHAIN:]


def _segment_pcap_python(mm: mmap.mmap, pos: int, size: int, hdr: pcap.PcapHeader,
                         scan: FileScan, cut: _Cutter, recent: list[int]) -> int:
    """Cut the frames of one undamaged stretch from pos; return how many there were."""
    frames = 0
    for off, ts, _data, _cap in pcap.walk(mm, pos, size, hdr, scan.path, scan.problems,
                                          cut.first + cut.frames):
        if scan.first_ts is None:
            scan.first_ts = ts
        cut.frame(off, cut.state)
        _remember(recent, [ts])
        frames += 1
    return frames


_SCAN_BATCH = 1 << 18  # records per compiled-walk call: bounds the scan's memory


def _segment_pcap_compiled(mm: mmap.mmap, pos: int, size: int, hdr: pcap.PcapHeader,
                           scan: FileScan, cut: _Cutter, frame0: int, walk, full: int,
                           recent: list[int]) -> int:
    """The same stretch with the compiled record walk; the Python walk only reports damage."""
    ts, data, cap = (np.empty(_SCAN_BATCH, np.int64) for _ in range(3))
    mult = 1 if hdr.interface.tsresol == 9 else 1000
    start, warned = frame0, False
    state = cut.state
    while True:
        n, pos, status, odd = walk.pcap(mm, pos, hdr.endian == ">", mult, hdr.max_record, ts,
                                        data, cap, 0)
        if n:
            if scan.first_ts is None:
                scan.first_ts = int(ts[0])
            offsets = data[:n] - pcap.RECORD_HEADER_LEN
            cut.frame_batch(offsets, state)
            _remember(recent, ts[max(0, n - pcap.RESYNC_CHAIN):n].tolist())
            if odd >= 0 and not warned:  # the Python walk of that one record reports it
                warned = True
                list(pcap.walk(mm, int(offsets[odd]), int(data[odd] + cap[odd]), hdr,
                               scan.path, scan.problems, frame0 + odd))
            frame0 += n
        if status != full:
            break
    if pos < size:  # damage: let the Python walk describe the record it stops at
        for _ in pcap.walk(mm, pos, size, hdr, scan.path, scan.problems, frame0):
            raise AssertionError("the compiled walk stopped before a whole record")
    return frame0 - start


def _scan_pcapng(mm: mmap.mmap, size: int, path: str, chunk_size: int,
                 on_chunk: OnChunk | None = None) -> FileScan:
    scan = FileScan(path, "pcapng")
    section = pcapng.Section()
    # The first chunk starts at the first section header, so it needs no prior state.
    cut = _Cutter(scan, chunk_size, 0, ("<", ()), on_chunk)

    def state() -> tuple[str, tuple[Interface, ...]]:
        return section.endian, tuple(section.interfaces)

    def segment(pos: int) -> None:
        for off, ts, _lt, _data, _cap in pcapng.walk(mm, pos, size, section, path,
                                                     scan.problems, cut.first + cut.frames):
            if scan.first_ts is None and ts is not None:
                scan.first_ts = ts
            # `section` already reflects every SHB/IDB before this frame block: exactly the
            # state a chunk starting here needs.
            cut.frame(off, state())

    return _read_with_resync(scan, cut, 0, size, segment,
                             lambda stop: pcapng.resync(mm, stop, size, section), state,
                             "blocks")


_FILE_KINDS = ((CaptureNotFoundError, FILE_MISSING), (CaptureReadError, FILE_UNREADABLE),
               (CaptureFormatError, FILE_NOT_CAPTURE))
_BAD_INPUT = tuple(cls for cls, _ in _FILE_KINDS)


def scan_result_to_dict(got: FileScan | Exception) -> dict:
    """A remote scan's outcome as plain data (what a scan task sends back: no pickle)."""
    if isinstance(got, FileScan):
        return {"scan": got.to_dict()}
    kind = next(k for cls, k in _FILE_KINDS if isinstance(got, cls))
    return {"error": kind, "message": str(got)}


def scan_result_from_dict(d: dict) -> FileScan | Exception:
    if "scan" in d:
        return FileScan.from_dict(d["scan"])
    cls = next(c for c, k in _FILE_KINDS if k == d["error"])
    return cls(d["message"])


def scan_or_error(url: str, chunk_size: int, storage: source.Storage | None = None,
                  directory: str | None = None) -> FileScan | Exception:
    try:
        return scan_url(url, chunk_size, storage, directory)
    except _BAD_INPUT as exc:
        return exc


def _file_problem(path: str, exc: Exception) -> Problem:
    kind = next(k for cls, k in _FILE_KINDS if isinstance(exc, cls))
    return Problem(path, 0, 0, kind, f"{exc}; this file was left out")


def _none_analysable(bad: list[tuple[str, Exception]]) -> Exception:
    """The error when no input could be analysed: the input's own error when there is one,
    else one line naming the first few."""
    if len(bad) == 1:
        return bad[0][1]
    listed = "; ".join(str(e) for _p, e in bad[:3])
    more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
    classes = {type(e) for _p, e in bad}
    cls = classes.pop() if len(classes) == 1 else CaptureFormatError
    return cls(f"none of the {len(bad)} inputs could be analysed: {listed}{more}")


def no_frames_error(plan: CapturePlan) -> CaptureFormatError:
    """The error of a plan without any frame (its inputs read, none holding one): like a file
    that is not a capture, nothing to analyse, and no empty store that looks like a result."""
    read = set(plan.files)
    parts = [f"{f}: " + ("; ".join(f"{p.kind} at byte {p.offset}: {p.message}"
                                   for p in plan.problems if p.file == f) or "no packets")
             for f in plan.files[:3]]
    parts += [p.message for p in plan.problems if p.file not in read][:3]
    return CaptureFormatError("no frame to analyse: " + "; ".join(parts))


# Called with each chunk of a plan as soon as it is final (plan_capture)
OnChunk = Callable[[ChunkSpec], None]

# Scans remote files elsewhere (on the cluster's workers, engine.remote_scanner): URLs -> a
# FileScan or the exception that left the file out, per URL in order.
RemoteScanner = Callable[[list[str]], list["FileScan | Exception"]]


def _scan_all(files: list[str], chunk_size: int, storage: source.Storage | None,
              scan_remote: RemoteScanner | None, on_chunk: OnChunk | None = None
              ) -> list[FileScan | Exception]:
    urls = [f for f in files if source.is_url(f)]
    remote = dict(zip(urls, scan_remote(urls), strict=True)) if scan_remote and urls else {}
    out: list[FileScan | Exception] = []
    for path in files:
        if path in remote:
            out.append(remote[path])
            continue
        try:
            out.append(scan_url(path, chunk_size, storage) if source.is_url(path)
                       else scan_file(path, chunk_size, on_chunk=on_chunk))
        except _BAD_INPUT as exc:
            out.append(exc)
    return out


def plan_capture(paths: Sequence[str | os.PathLike], chunk_size: int,
                 storage: source.Storage | None = None,
                 scan_remote: RemoteScanner | None = None,
                 on_chunk: OnChunk | None = None) -> CapturePlan:
    """Scan all files of one capture, order them (first frame's timestamp, then name) and
    number chunks and frames globally.

    Paths may be local paths, globs, or fsspec URLs and URL globs (`storage`: the fsspec
    filesystem's options); remote files are scanned by `scan_remote` when given (on the
    workers), else here from a temporary copy.

    An input that cannot be analysed at all (missing, unreadable, not a capture) is left out
    and listed first in the plan's problems, so the other files of a run are still analysed;
    only when no input can be analysed is its error raised.

    `on_chunk(spec)` is called once per chunk of the plan, in order: while the file is still
    being scanned when the capture is one local uncompressed file (so that the work on the
    first chunks can start at once), else once the plan is complete.
    """
    files: list[str] = []
    bad: list[tuple[str, Exception]] = []
    for p in paths:
        try:
            files.extend(m for m in _expand(p, storage) if m not in files)
        except _BAD_INPUT as exc:
            bad.append((os.fspath(p), exc))
    streamed: list[ChunkSpec] = []
    stream = None
    if on_chunk is not None and len(files) == 1 and not source.is_url(files[0]):
        def stream(spec: ChunkSpec) -> None:  # one file: its chunks are the plan's as cut
            streamed.append(spec)
            on_chunk(spec)
    scans: list[FileScan] = []
    for path, got in zip(files, _scan_all(files, chunk_size, storage, scan_remote, stream),
                         strict=True):
        if isinstance(got, Exception):
            bad.append((path, got))
        else:
            scans.append(got)
    if not scans:
        raise _none_analysable(bad) if bad else CaptureNotFoundError("no capture files given")
    scans.sort(key=lambda s: (s.first_ts is None, s.first_ts or 0, os.path.basename(s.path),
                              s.path))
    chunks: list[ChunkSpec] = []
    problems: list[Problem] = [_file_problem(p, e) for p, e in bad]
    base = 0
    for s in scans:
        for c in s.chunks:
            chunks.append(replace(c, index=len(chunks), first_frame=base + c.first_frame))
        problems.extend(replace(p, frame=base + p.frame if p.frame else 0) for p in s.problems)
        base += s.frames
    if streamed and chunks[:len(streamed)] != streamed:
        raise AssertionError("chunks sent while scanning differ from the plan's")
    if on_chunk is not None:
        for c in chunks[len(streamed):]:
            on_chunk(c)
    return CapturePlan(tuple(s.path for s in scans), tuple(chunks), base, tuple(problems),
                       sum(s.size for s in scans))
