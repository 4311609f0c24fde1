"""Compressed captures (`.gz`, `.zst`, `.lz4`, `.xz`), read as if they were decompressed.

The codec is found from the first bytes, never from the file name. A compressed file is a
sequence of independent *members* (gzip members, zstd frames, lz4 frames, xz streams): the
splitter decompresses the whole file once into a local temporary file (`inflate`), noting a
restart point (compressed offset, decompressed offset) at each member start, and scans that
copy like a plain capture. A chunk task then decompresses from the last restart point at or
before its chunk (`read_range`) and keeps only the chunk's bytes, so its memory is about one
chunk. A file of many members (bgzip, pzstd, concatenated files: README "Compressed captures")
therefore splits anywhere; a single-member file restarts only at 0 (the splitter's policy for
those is `split.MAX_CHUNKS_PER_RESTART`).

Both the scan and the chunk reads go through `_decode`, which decodes every member from its
own start with the same input and output steps: a damaged member therefore yields exactly the
same bytes before its error in both, and a chunk never reaches the damage the scan stopped at.
Zero bytes between members are padding (xz stream padding, zero-filled tails) and skipped, as
are zstd/lz4 skippable frames (pzstd writes one before each frame).
"""

from __future__ import annotations

import bisect
import contextlib
import lzma
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from . import source

GZIP, ZSTD, LZ4, XZ = "gzip", "zstd", "lz4", "xz"
MAGIC = {GZIP: b"\x1f\x8b", ZSTD: b"\x28\xb5\x2f\xfd", LZ4: b"\x04\x22\x4d\x18",
         XZ: b"\xfd7zXZ\x00"}
_SKIPPABLE = 0x184D2A50  # zstd and lz4 skippable frames: magic & 0xFFFFFFF0
_SKIPPABLE_CODECS = (ZSTD, LZ4)

READ = 1 << 20  # compressed bytes read at a time
STEP = 1 << 20  # at most this many decompressed bytes per decoder call (bounds memory)


def codec_of(head: bytes) -> str | None:
    """The codec whose magic `head` starts with, or None (a plain file). Skippable frames at
    the start (pzstd writes a 12-byte one) are looked past as far as `head` reaches."""
    while len(head) >= 8 and int.from_bytes(head[:4], "little") & 0xFFFFFFF0 == _SKIPPABLE:
        head = head[8 + int.from_bytes(head[4:8], "little"):]
    return next((c for c, m in MAGIC.items() if head.startswith(m)), None)


class Damage(Exception):
    """Compressed data that cannot be decoded further; `member`: the compressed offset of the
    member (or padding) where decoding stopped; `cut`: the file ends inside that member (what
    was decoded is right), rather than corrupt data (what was decoded is unchecked)."""

    def __init__(self, member: int, reason: str, cut: bool = False) -> None:
        super().__init__(reason)
        self.member, self.reason, self.cut = member, reason, cut


class _Stdlib:
    """A gzip, xz or lz4 member through a decompressor that honours `max_length`."""

    def __init__(self, codec: str) -> None:
        if codec == GZIP:
            self.d = zlib.decompressobj(31)
        elif codec == XZ:
            self.d = lzma.LZMADecompressor(lzma.FORMAT_XZ)
        else:
            import lz4.frame

            self.d = lz4.frame.LZ4FrameDecompressor()
        self.zlib = codec == GZIP
        self.pending = b""

    def feed(self, data: bytes) -> None:
        self.pending += data

    def read(self) -> bytes:
        """Up to STEP decompressed bytes; b"" when more input is needed or the member ended."""
        if self.eof:
            return b""
        data, self.pending = self.pending, b""
        out = self.d.decompress(data, STEP)
        if self.zlib:  # zlib hands back the input it did not take; lzma and lz4 keep it
            self.pending = self.d.unconsumed_tail
        return out

    @property
    def eof(self) -> bool:
        return self.d.eof

    @property
    def unused(self) -> bytes:
        return self.d.unused_data or b""  # lz4 says None


_ZSTD_BLOCK_MAX = 128 * 1024


class _Zstd:
    """A zstd frame. The zstandard binding has no output limit, so the frame is fed one
    block at a time (found from the block headers), each decoding to at most 128 KiB."""

    def __init__(self) -> None:
        import zstandard

        self.d = zstandard.ZstdDecompressor().decompressobj()
        self.buf = bytearray()
        self.stage = "header"
        self.checksum = False
        self.eof = False

    def feed(self, data: bytes) -> None:
        self.buf += data

    def _unit(self) -> int | None:
        """Length of the next whole unit (frame header, block or checksum) in buf, if any."""
        b = self.buf
        if self.stage == "header":
            if len(b) < 5:
                return None
            fhd = b[4]
            if fhd & 0x08:
                raise ValueError("reserved bit set in the frame header")
            single = fhd >> 5 & 1
            self.checksum = bool(fhd >> 2 & 1)
            return (5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3]
                    + (single, 2, 4, 8)[fhd >> 6])
        if self.stage == "block":
            if len(b) < 3:
                return None
            h = int.from_bytes(b[:3], "little")
            kind, size = h >> 1 & 3, h >> 3
            if kind == 3 or (kind != 1 and size > _ZSTD_BLOCK_MAX):
                raise ValueError(f"impossible block header {bytes(b[:3]).hex()}")
            self.last = h & 1
            return 3 + (1 if kind == 1 else size)
        return 4  # the content checksum

    def read(self) -> bytes:
        while not self.eof:
            n = self._unit()
            if n is None or len(self.buf) < n:
                return b""
            unit = bytes(self.buf[:n])
            del self.buf[:n]
            if self.stage == "header":
                self.stage = "block"
            elif self.stage == "block":
                if self.last:
                    self.stage = "checksum" if self.checksum else "done"
            else:
                self.stage = "done"
            out = self.d.decompress(unit)
            self.eof = self.stage == "done"
            if out:
                return out
        return b""

    @property
    def unused(self) -> bytes:
        return bytes(self.buf)


def _decoder(codec: str) -> _Stdlib | _Zstd:
    return _Zstd() if codec == ZSTD else _Stdlib(codec)


def _errors() -> tuple[type[BaseException], ...]:
    import zstandard

    # lz4 raises RuntimeError; our zstd block walk ValueError
    return (zlib.error, lzma.LZMAError, zstandard.ZstdError, RuntimeError, ValueError, EOFError)


def _decode(f: BinaryIO, codec: str, pos: int) -> Iterator[int | bytes]:
    """Decode the members from compressed offset `pos` to the end of `f`: yields each member's
    compressed start (an int), then its decompressed bytes (pieces of at most STEP bytes).
    Raises Damage where the data cannot be decoded further."""
    errors = _errors()
    f.seek(pos)
    pending = b""
    while True:
        if len(pending) < 16:
            pending += f.read(READ)
        # between members: zero padding and skippable frames
        stripped = pending.lstrip(b"\0")
        pos += len(pending) - len(stripped)
        pending = stripped
        if not pending:
            pending = f.read(READ)
            if not pending:
                return
            continue
        if codec in _SKIPPABLE_CODECS and len(pending) >= 8 and \
                int.from_bytes(pending[:4], "little") & 0xFFFFFFF0 == _SKIPPABLE:
            pos += 8 + int.from_bytes(pending[4:8], "little")
            f.seek(pos)
            pending = b""
            continue
        if not pending.startswith(MAGIC[codec]):
            raise Damage(pos, f"bytes {pending[:6].hex()} at compressed byte {pos} are not "
                              f"the start of {codec} data")
        yield pos
        dec = _decoder(codec)
        fed = len(pending)
        dec.feed(pending)
        try:
            while not dec.eof:
                out = dec.read()
                if out:
                    yield out
                elif not dec.eof:
                    data = f.read(READ)
                    if not data:
                        raise Damage(pos, f"the {codec} data is cut off (the file ends at "
                                          f"compressed byte {pos + fed}, inside the member "
                                          f"that starts at compressed byte {pos})", cut=True)
                    fed += len(data)
                    dec.feed(data)
        except errors as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise Damage(pos, f"the {codec} member at compressed byte {pos} is corrupt "
                              f"({reason})") from exc
        pending = dec.unused
        pos += fed - len(pending)


@dataclass
class Inflated:
    """The outcome of decompressing a whole file: restart points (compressed, decompressed
    offset) in order, the decompressed size, and the damage decoding stopped at, if any."""

    codec: str
    restarts: list[tuple[int, int]] = field(default_factory=list)
    size: int = 0
    damage: Damage | None = None

    def restart_for(self, start: int) -> tuple[int, int]:
        """The last restart point at or before decompressed offset `start`."""
        i = bisect.bisect_right([d for _c, d in self.restarts], start) - 1
        return self.restarts[max(i, 0)] if self.restarts else (0, 0)


def inflate(f: BinaryIO, codec: str, out: BinaryIO) -> Inflated:
    """Decompress all of `f` into `out`, noting the restart points; damage stops it (what was
    decoded before is kept) and is returned, not raised."""
    got = Inflated(codec)
    try:
        for item in _decode(f, codec, 0):
            if isinstance(item, int):
                got.restarts.append((item, got.size))
            else:
                out.write(item)
                got.size += len(item)
    except Damage as exc:
        got.damage = exc
    return got


@contextlib.contextmanager
def _open(path: str, storage: source.Storage | None) -> Iterator[BinaryIO]:
    if not source.is_url(path):
        with open(source.local_path(path), "rb") as f:
            yield f
        return
    fs, inner = source.filesystem(path, storage)
    with source.errors(path), fs.open(inner, "rb") as f:
        yield f


def read_range(path: str, codec: str, restart: tuple[int, int], start: int, end: int,
               storage: source.Storage | None = None) -> bytes | None:
    """Decompressed bytes [start, end) of a compressed file, decoding from the restart point
    (compressed, decompressed offset) at or before `start`; None if the data ends or breaks
    before `end` (the file changed since it was split)."""
    out = bytearray()
    pos = restart[1]
    with _open(path, storage) as f:
        try:
            for item in _decode(f, codec, restart[0]):
                if isinstance(item, int):
                    continue
                lo, hi = max(start - pos, 0), min(end - pos, len(item))
                if hi > lo:
                    out += item[lo:hi]
                pos += len(item)
                if pos >= end:
                    return bytes(out)
        except Damage:
            return None
    return bytes(out) if pos >= end else None
