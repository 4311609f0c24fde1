#!/usr/bin/env python3
"""Write the hostile capture corpus of tests/hostile/ (issue 19), deterministically.

    .venv/bin/python tests/hostile/make_corpus.py            # (re)write the corpus
    .venv/bin/python tests/hostile/make_corpus.py --check    # exit 1 if a file differs

Every file is built here byte by byte: containers with struct (never the project's
writers, which refuse most of these values), frames and payloads with the project's
`streamlens_dist.synth` builders (deterministic), and the compressed files with hand-written
stored/raw members (gzip stored deflate blocks, zstd raw blocks, lz4 uncompressed blocks,
xz LZMA2 uncompressed chunks), so the bytes depend on no compression library's version.

Next to the files it writes EXPECTED.json (what tests/test_hostile.py checks) and
EXPECTED.md (the same for people). Each expectation is what the results contract
(../shared/docs/CONTRACT.md), README "Damaged input"/"Compressed captures" and
docs/DECISIONS.md imply for the file as it was built here; none is copied from a run of the
code. The rules are in README.md of this directory.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parents[1]) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parents[1]))

from streamlens_dist.synth import (  # noqa: E402
    ch10_udp,
    iena,
    inetx,
    ipv4,
    ipv6,
    ptp,
    udp,
    udp_frame,
)

M32, M64 = 2**32 - 1, 2**64 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
BOUND = 2**62  # timestamps strictly within ±2^62 ns (docs/DECISIONS.md "pcapng")
TICKS = [0, 1, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1]
TSRESOLS = [0, 9, 10, 19, 28, 29, 63, 0x80 | 0, 0x80 | 1, 0x80 | 63, 0x80 | 64, 0xFF]
TSOFFSETS = [0, 1, 2**31, 4611686017, 4611686018, 2**62, INT64_MAX]  # each with its negative
SECONDS = [0, 2**31 - 1, 2**31, 2**32 - 1]
PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


# --- the contract's rules, written out here -------------------------------------------------

def contract_ns(ticks: int, tsresol: int, tsoffset: int) -> int | None:
    """CONTRACT §1 / PROTOCOLS §7.3 / DECISIONS "pcapng": exact integer ns (floored), the
    offset's seconds added; outside ±2^62 the tick count is read again as signed; still
    outside: untimed (None)."""
    for t in (ticks, ticks - 2**64 if ticks >= 2**63 else None):
        if t is None:
            break
        if tsresol & 0x80:
            ns = (t * 10**9) >> (tsresol & 0x7F)
        elif tsresol <= 9:
            ns = t * 10 ** (9 - tsresol)
        else:
            ns = t // 10 ** (tsresol - 9)
        ns += tsoffset * 10**9
        if -BOUND < ns < BOUND:
            return ns
    return None


def pcap_ns(sec: int, frac: int, nsec: bool) -> int:
    """CONTRACT §1: sec*10^9 + frac*unit, a fraction out of range taken literally."""
    return sec * 10**9 + frac * (1 if nsec else 1000)


# --- frames ---------------------------------------------------------------------------------

A, B = "10.1.0.1", "10.1.0.2"


def payload(i: int) -> bytes:
    """160 bytes: a handful of frames fill several 1 KiB chunks."""
    return b"hostile-%04d" % i + bytes(148)


def frame(i: int, src: str = A, dst: str = B) -> bytes:
    """A plain UDP datagram in an Ethernet frame: flow (src, dst), frame type UDP."""
    return udp_frame(src, dst, 40000, 50010, payload(i))


def ip4(i: int) -> bytes:
    return ipv4("10.2.0.1", "10.2.0.2", 17, udp(40000, 50010, payload(i)))


def ip6(i: int) -> bytes:
    return ipv6("fd00::1", "fd00::2", 17, udp(40000, 50010, payload(i)))


def proto_frame(kind: str, i: int) -> bytes:
    """Message i of one protocol stream (one flow each), for the stream tables."""
    if kind == "ptp":
        return udp_frame("10.3.0.1", "224.0.1.129", 319, 319, ptp(0, seq=i))
    if kind == "iena":
        return udp_frame("10.3.0.2", "239.3.0.2", 50000, 50000, iena(0x1A, "N", i, 3))
    if kind == "inetx":
        return udp_frame("10.3.0.3", "239.3.0.3", 6000, 6000, inetx(0x0C0FFEE, i, bytes(16)))
    if kind == "ch10":
        return udp_frame("10.3.0.4", "239.3.0.4", 6100, 6100,
                         ch10_udp(1, 0x09, 3, i, bytes(20)))
    if kind == "udp":
        return frame(i)
    raise ValueError(kind)


# --- container writers ----------------------------------------------------------------------

class Pcap:
    """A classic pcap file built record by record; `offsets` of the records."""

    def __init__(self, *, e: str = "<", nsec: bool = False, snaplen: int = 65535,
                 linktype: int = 1, major: int = 2, minor: int = 4, zone: int = 0,
                 sigfigs: int = 0) -> None:
        self.e, self.nsec = e, nsec
        magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
        self.buf = bytearray(struct.pack(e + "IHHiIII", magic, major, minor, zone, sigfigs,
                                         snaplen, linktype))
        self.offsets: list[int] = []
        self.ts: list[int] = []

    def add(self, sec: int, frac: int, data: bytes, incl: int | None = None,
            orig: int | None = None) -> int:
        at = len(self.buf)
        self.buf += struct.pack(self.e + "IIII", sec, frac, len(data) if incl is None else incl,
                                len(data) if orig is None else orig) + data
        self.offsets.append(at)
        self.ts.append(pcap_ns(sec, frac, self.nsec))
        return at

    def bytes(self) -> bytes:
        return bytes(self.buf)


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def opt(e: str, code: int, value: bytes, length: int | None = None) -> bytes:
    return struct.pack(e + "HH", code, len(value) if length is None else length) + _pad4(value)


class Pcapng:
    """A pcapng file built block by block. Tracks the frames (offset, ts or None) as the
    contract reads them, for the expectations."""

    def __init__(self, e: str = "<") -> None:
        self.e = e
        self.buf = bytearray()
        self.ifaces: list[tuple[int, int]] = []  # (tsresol, tsoffset) of this section
        self.frames: list[tuple[int, int | None]] = []  # (block offset, ts or None)
        self.out_of_bound: list[int] = []  # block offsets of frames untimed by the bound

    def block(self, btype: int, body: bytes, *, blen: int | None = None,
              trailer: int | None = None, pad: bool = True) -> int:
        at = len(self.buf)
        body = _pad4(body) if pad else body
        real = 12 + len(body)
        self.buf += struct.pack(self.e + "II", btype, real if blen is None else blen) + body
        self.buf += struct.pack(self.e + "I", (real if blen is None else blen)
                                if trailer is None else trailer)
        return at

    def shb(self, e: str | None = None, options: bytes = b"", bom: bytes | None = None) -> int:
        if e is not None:
            self.e = e
        self.ifaces = []
        magic = struct.pack(self.e + "I", 0x1A2B3C4D) if bom is None else bom
        return self.block(0x0A0D0D0A, magic + struct.pack(self.e + "HHq", 1, 0, -1) + options)

    def idb(self, linktype: int = 1, snaplen: int = 0, tsresol: int | None = None,
            tsoffset: int | None = None, raw_options: bytes | None = None,
            declared: bool = True) -> int:
        e = self.e
        opts = b""
        if tsresol is not None:
            opts += opt(e, 9, bytes([tsresol]))
        if tsoffset is not None:
            opts += opt(e, 14, struct.pack(e + "q", tsoffset))
        if opts:
            opts += struct.pack(e + "HH", 0, 0)
        if raw_options is not None:
            opts = raw_options
        if declared:
            self.ifaces.append((6 if tsresol is None else tsresol, tsoffset or 0))
        return self.block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)

    def _ts(self, ifid: int, ticks: int, at: int) -> int | None:
        if ifid >= len(self.ifaces):
            return None
        r, off = self.ifaces[ifid]
        ts = contract_ns(ticks, r, off)
        if ts is None:
            self.out_of_bound.append(at)
        return ts

    def epb(self, ifid: int, ticks: int, data: bytes, *, cap: int | None = None,
            orig: int | None = None, options: bytes = b"", frame: bool = True,
            **kw) -> int:
        at = len(self.buf)
        head = struct.pack(self.e + "IIIII", ifid, ticks >> 32, ticks & M32,
                           len(data) if cap is None else cap, len(data) if orig is None else orig)
        self.block(6, head + _pad4(data) + options, **kw)
        if frame:
            self.frames.append((at, self._ts(ifid, ticks, at)))
        return at

    def pb(self, ifid: int, ticks: int, data: bytes, *, drops: int = 0, cap: int | None = None,
           orig: int | None = None, frame: bool = True, **kw) -> int:
        at = len(self.buf)
        head = struct.pack(self.e + "HHIIII", ifid, drops, ticks >> 32, ticks & M32,
                           len(data) if cap is None else cap, len(data) if orig is None else orig)
        self.block(2, head + _pad4(data), **kw)
        if frame:
            self.frames.append((at, self._ts(ifid, ticks, at)))
        return at

    def spb(self, data: bytes, *, orig: int | None = None, frame: bool = True, **kw) -> int:
        at = self.block(3, struct.pack(self.e + "I", len(data) if orig is None else orig) + data,
                        **kw)
        if frame:
            self.frames.append((at, None))
        return at

    def raw(self, data: bytes) -> int:
        at = len(self.buf)
        self.buf += data
        return at

    def bytes(self) -> bytes:
        return bytes(self.buf)

    def timed(self) -> list[int]:
        return [t for _a, t in self.frames if t is not None]


# --- hand-written compressed members (no library: the bytes never change) ------------------

def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & M32


def _rotl64(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & M64


def xxh32(data: bytes, seed: int = 0) -> int:
    p1, p2, p3, p4, p5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
    n, i = len(data), 0
    if n >= 16:
        v = [(seed + p1 + p2) & M32, (seed + p2) & M32, seed & M32, (seed - p1) & M32]
        while i + 16 <= n:
            for k in range(4):
                lane = int.from_bytes(data[i + 4 * k:i + 4 * k + 4], "little")
                v[k] = (_rotl32((v[k] + lane * p2) & M32, 13) * p1) & M32
            i += 16
        h = (_rotl32(v[0], 1) + _rotl32(v[1], 7) + _rotl32(v[2], 12) + _rotl32(v[3], 18)) & M32
    else:
        h = (seed + p5) & M32
    h = (h + n) & M32
    while i + 4 <= n:
        h = (_rotl32((h + int.from_bytes(data[i:i + 4], "little") * p3) & M32, 17) * p4) & M32
        i += 4
    while i < n:
        h = (_rotl32((h + data[i] * p5) & M32, 11) * p1) & M32
        i += 1
    h ^= h >> 15
    h = (h * p2) & M32
    h ^= h >> 13
    h = (h * p3) & M32
    return h ^ (h >> 16)


def xxh64(data: bytes, seed: int = 0) -> int:
    p1, p2, p3 = 11400714785074694791, 14029467366897019727, 1609587929392839161
    p4, p5 = 9650029242287828579, 2870177450012600261

    def rnd(acc: int, lane: int) -> int:
        return (_rotl64((acc + lane * p2) & M64, 31) * p1) & M64

    n, i = len(data), 0
    if n >= 32:
        v = [(seed + p1 + p2) & M64, (seed + p2) & M64, seed & M64, (seed - p1) & M64]
        while i + 32 <= n:
            for k in range(4):
                v[k] = rnd(v[k], int.from_bytes(data[i + 8 * k:i + 8 * k + 8], "little"))
            i += 32
        h = (_rotl64(v[0], 1) + _rotl64(v[1], 7) + _rotl64(v[2], 12) + _rotl64(v[3], 18)) & M64
        for x in v:
            h = ((h ^ rnd(0, x)) * p1 + p4) & M64
    else:
        h = (seed + p5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        h ^= rnd(0, int.from_bytes(data[i:i + 8], "little"))
        h = (_rotl64(h, 27) * p1 + p4) & M64
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i:i + 4], "little") * p1) & M64
        h = (_rotl64(h, 23) * p2 + p3) & M64
        i += 4
    while i < n:
        h ^= (data[i] * p5) & M64
        h = (_rotl64(h, 11) * p1) & M64
        i += 1
    h ^= h >> 33
    h = (h * p2) & M64
    h ^= h >> 29
    h = (h * p3) & M64
    return h ^ (h >> 32)


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def gzip_member(data: bytes, *, bad_check: bool = False) -> bytes:
    """gzip member of stored deflate blocks (mtime 0, OS unknown)."""
    out = bytearray(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
    parts = _pieces(data, 4096)
    for k, p in enumerate(parts):
        out += bytes([1 if k == len(parts) - 1 else 0]) + struct.pack("<HH", len(p), len(p) ^ 0xFFFF)
        out += p
    crc = zlib.crc32(data) ^ (0xFFFFFFFF if bad_check else 0)
    return bytes(out + struct.pack("<II", crc, len(data) & M32))


def zstd_frame(data: bytes, *, bad_check: bool = False) -> bytes:
    """zstd frame of raw blocks, 128 KiB window, with a content checksum."""
    out = bytearray(b"\x28\xb5\x2f\xfd\x04\x38")
    parts = _pieces(data, 4096)
    for k, p in enumerate(parts):
        last = 1 if k == len(parts) - 1 else 0
        out += (last | (len(p) << 3)).to_bytes(3, "little") + p
    check = xxh64(data) & M32 ^ (0xFFFFFFFF if bad_check else 0)
    return bytes(out + struct.pack("<I", check))


def lz4_frame(data: bytes, *, bad_check: bool = False) -> bytes:
    """lz4 frame of uncompressed blocks (64 KiB maximum, independent), content checksum."""
    desc = bytes([0x64, 0x40])
    out = bytearray(b"\x04\x22\x4d\x18" + desc + bytes([(xxh32(desc) >> 8) & 0xFF]))
    for p in _pieces(data, 4096) if data else []:
        out += struct.pack("<I", len(p) | 0x80000000) + p
    check = xxh32(data) ^ (0xFFFFFFFF if bad_check else 0)
    return bytes(out + struct.pack("<II", 0, check))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def xz_stream(data: bytes, *, bad_check: bool = False) -> bytes:
    """xz stream: one block of LZMA2 uncompressed chunks (64 KiB dictionary), CRC32 check;
    no block for empty data."""
    flags = b"\x00\x01"
    out = bytearray(b"\xfd7zXZ\x00" + flags + struct.pack("<I", zlib.crc32(flags)))
    records = b""
    if data:
        head = b"\x02\x00\x21\x01\x08\x00\x00\x00"  # size 12, 1 filter: LZMA2, dict 64 KiB
        head += struct.pack("<I", zlib.crc32(head))
        body = bytearray()
        for k, p in enumerate(_pieces(data, 4096)):
            body += bytes([1 if k == 0 else 2]) + struct.pack(">H", len(p) - 1) + p
        body += b"\x00"
        unpadded = len(head) + len(body) + 4
        check = zlib.crc32(data) ^ (0xFFFFFFFF if bad_check else 0)
        out += head + body + bytes(-len(body) % 4) + struct.pack("<I", check)
        records = _varint(unpadded) + _varint(len(data))
    index = b"\x00" + _varint(1 if data else 0) + records
    index += bytes(-len(index) % 4)
    index += struct.pack("<I", zlib.crc32(index))
    out += index
    backward = struct.pack("<I", len(index) // 4 - 1) + flags
    return bytes(out + struct.pack("<I", zlib.crc32(backward)) + backward + b"YZ")


MEMBER = {"gzip": gzip_member, "zstd": zstd_frame, "lz4": lz4_frame, "xz": xz_stream}
EXT = {"gzip": "gz", "zstd": "zst", "lz4": "lz4", "xz": "xz"}


def skippable(n: int) -> bytes:
    return struct.pack("<II", 0x184D2A5E, n) + b"\xa5" * n


# --- the corpus -----------------------------------------------------------------------------

CORPUS: dict[str, bytes] = {}
EXPECTED: dict[str, dict] = {}


def case(name: str, category: str, data: bytes, why: str, *, exit: int,  # noqa: A002
         problems: list | tuple = (), frames: int | None = None, untimed: int | None = None,
         undecodable: int | None = None, ts: tuple | None = None,
         plain: str | None = None) -> None:
    """Register a file. problems: (kind, byte offset or None, skipped or None) in file
    order; a kind ending in '?' may be absent. ts: (first_ns, last_ns) of the timed frames
    (None for none)."""
    assert name not in CORPUS, name
    CORPUS[name] = data
    if frames is not None and untimed is None and data[:4] in PCAP_MAGICS:
        untimed = 0  # pcap records always carry a time
    e: dict = {"category": category, "exit": exit,
               "problems": [list(p) if isinstance(p, tuple) else [p, None, None]
                            for p in problems],
               "why": why}
    for key, value in (("frames", frames), ("untimed", untimed), ("undecodable", undecodable),
                       ("plain", plain)):
        if value is not None:
            e[key] = value
    if ts is not None:
        e["first_ns"], e["last_ns"] = ts
    EXPECTED[name] = e


def first_last(ts: list[int]) -> tuple:
    return (ts[0], ts[-1]) if ts else (None, None)


def ng_case(name: str, category: str, w: Pcapng, why: str, **kw) -> None:
    """A pcapng file whose frames are all whole: the expectations follow from the blocks."""
    problems = list(kw.pop("problems", []))
    if w.out_of_bound:
        problems.append(("timestamp", w.out_of_bound[0], 0))
        problems.sort(key=lambda p: -1 if p[1] is None else p[1])
    untimed = sum(1 for _a, t in w.frames if t is None)
    kw.setdefault("frames", len(w.frames))
    kw.setdefault("untimed", untimed)
    kw.setdefault("ts", first_last(w.timed()))
    kw.setdefault("exit", 3 if problems else 0)
    case(name, category, w.bytes(), why, problems=problems, **kw)


# --- pcap headers and lengths ----------------------------------------------------------------

def pcap_lengths() -> None:
    cat = "pcap-lengths"
    t0 = 1_700_000_000

    def good(p: Pcap, n: int, start: int = 0) -> None:
        for i in range(n):
            p.add(t0 + start + i, 1000 * i, frame(start + i))

    for name, snap in (("pcap_snaplen_0.pcap", 0), ("pcap_snaplen_max.pcap", M32)):
        p = Pcap(snaplen=snap)
        good(p, 4)
        case(name, cat, p.bytes(), f"snaplen {snap} only raises the record limit (capped at "
             "256 MiB); the records are ordinary", exit=0, frames=4, undecodable=0,
             ts=first_last(p.ts))

    p = Pcap()
    good(p, 2)
    p.add(t0 + 2, 0, b"", orig=60)
    good(p, 2, 3)
    case("pcap_caplen_0.pcap", cat, p.bytes(), "a record of 0 captured bytes is a frame of 0 "
         "bytes that cannot be decoded (undecodable_frames), not damage",
         exit=0, frames=5, undecodable=1, ts=first_last(p.ts))

    p = Pcap(snaplen=32)
    good(p, 4)
    case("pcap_caplen_gt_snaplen.pcap", cat, p.bytes(), "captured 202 > snaplen 32 is within "
         "the record limit max(snaplen, 256 KiB): read as written, bytes = captured length",
         exit=0, frames=4, undecodable=0, ts=first_last(p.ts))

    p = Pcap()
    for i in range(4):
        p.add(t0 + i, 0, frame(i), orig=(1, M32)[i % 2])
    case("pcap_origlen_lt_caplen_and_max.pcap", cat, p.bytes(), "original length 1 (< "
         "captured) and 2^32-1: bytes is the captured length, the original length is not used",
         exit=0, frames=4, undecodable=0, ts=first_last(p.ts))

    p = Pcap()
    good(p, 6)
    bad = p.add(t0 + 6, 0, frame(6), incl=262145)
    good(p, 6, 7)
    case("pcap_caplen_over_limit_mid.pcap", cat, p.bytes(), "a record claiming 262145 bytes "
         "(limit max(65535, 256 KiB)) in the middle: corrupt-record, resync at the next "
         "record (4 plausible records chain), that one record lost",
         exit=3, problems=[("corrupt-record", bad, 16 + len(frame(6)))], frames=12,
         ts=(p.ts[0], p.ts[-1]))

    p = Pcap()
    good(p, 5)
    bad = p.add(t0 + 5, 0, frame(5), incl=300000)
    case("pcap_caplen_over_limit_last.pcap", cat, p.bytes(), "the last record claims 300000 "
         "bytes, beyond the record limit: corrupt-record, nothing to resync to",
         exit=3, problems=[("corrupt-record", bad, 0)], frames=5, ts=(p.ts[0], p.ts[4]))

    p = Pcap()
    good(p, 5)
    bad = p.add(t0 + 5, 0, frame(5), incl=len(frame(5)) + 1)
    case("pcap_caplen_one_past_end.pcap", cat, p.bytes(), "the last record claims one byte "
         "more than the file holds: a cut-off last record, truncated (warning)",
         exit=3, problems=[("truncated", bad, 0)], frames=5, ts=(p.ts[0], p.ts[4]))

    p = Pcap(snaplen=M32)
    bad = p.add(t0, 0, frame(0), incl=0xFFFFFFF0, orig=0xFFFFFFF0)
    good(p, 6, 1)
    case("pcap_caplen_4GiB_first_then_records.pcap", cat, p.bytes(), "the first record "
         "claims ~4 GiB (beyond the 256 MiB cap): corrupt-record, resync at the next "
         "record, nothing large allocated",
         exit=3, problems=[("corrupt-record", bad, 16 + len(frame(0)))], frames=6, ts=(p.ts[1], p.ts[-1]))

    p = Pcap(snaplen=M32)
    p.add(t0, 0, frame(0), incl=0xFFFFFFF0, orig=0xFFFFFFF0)
    case("pcap_caplen_4GiB_only.pcap", cat, p.bytes(), "damage before the first record and "
         "nothing after it: no frame to analyse, exit 1, nothing written",
         exit=1, problems=[("corrupt-record", 24, 0)])

    p = Pcap()
    case("pcap_header_only.pcap", cat, p.bytes(), "a valid capture without packets: no frame "
         "to analyse, exit 1", exit=1)

    case("pcap_header_cut_10.pcap", cat, Pcap().bytes()[:10], "header cut short: not a "
         "capture (file-not-capture), exit 1", exit=1, problems=[("file-not-capture", 0, 0)])

    p = Pcap(major=3, minor=0)
    good(p, 3)
    case("pcap_version_3_0.pcap", cat, p.bytes(), "pcap version other than 2.x: not a "
         "capture, exit 1", exit=1, problems=[("file-not-capture", 0, 0)])

    p = Pcap(zone=-(2**31), sigfigs=M32, linktype=0x1C000001)
    good(p, 4)
    case("pcap_thiszone_sigfigs_fcs_bits.pcap", cat, p.bytes(), "thiszone -2^31 and sigfigs "
         "2^32-1 are not used (times are sec*10^9 + frac*unit); link type field "
         "0x1C000001 is Ethernet (low 16 bits, PROTOCOLS §7.1)",
         exit=0, frames=4, undecodable=0, ts=first_last(p.ts))

    p = Pcap()
    good(p, 5)
    whole = p.bytes()
    cut = len(whole) + 10
    p.add(t0 + 5, 0, frame(5))
    case("pcap_cut_in_record_header.pcap", cat, p.bytes()[:cut], "cut 10 bytes into the "
         "last record header: truncated (warning) at that record",
         exit=3, problems=[("truncated", len(whole), 0)], frames=5, ts=first_last(p.ts[:5]))

    case("pcap_cut_in_record_data.pcap", cat, p.bytes()[:-7], "cut inside the last "
         "record's data: truncated (warning) at that record",
         exit=3, problems=[("truncated", len(whole), 0)], frames=5, ts=first_last(p.ts[:5]))

    p = Pcap()
    p.add(t0, 0, frame(0))
    case("pcap_single_record_cut.pcap", cat, p.bytes()[:-1], "the only record is cut off: "
         "no frame to analyse, exit 1", exit=1, problems=[("truncated", 24, 0)])


# --- pcap timestamps ------------------------------------------------------------------------

def pcap_times() -> None:
    cat = "pcap-timestamps"
    for nsec in (False, True):
        unit = "nsec" if nsec else "usec"
        top = 10**9 if nsec else 10**6
        for e in ("<", ">"):
            order = "le" if e == "<" else "be"
            p = Pcap(e=e, nsec=nsec)
            for i, sec in enumerate(SECONDS):
                p.add(sec, (0, top - 1)[i % 2], frame(i))
            case(f"pcap_{unit}_{order}_seconds_extremes.pcap", cat, p.bytes(),
                 f"seconds 0, 2^31-1, 2^31, 2^32-1 (unsigned) with fractions 0 and {top - 1}: "
                 "exact ns, all within the bound; one flow whose IATs span 136 years",
                 exit=0, frames=4, undecodable=0, ts=first_last(p.ts))
            p = Pcap(e=e, nsec=nsec)
            fracs = [top - 1, top, top + 1, M32, 0]
            for i, frac in enumerate(fracs):
                p.add((1, M32)[i % 2], frac, frame(i))
            case(f"pcap_{unit}_{order}_fraction_beyond.pcap", cat, p.bytes(),
                 f"fractions {top - 1}, {top}, {top + 1}, 2^32-1: the out-of-range ones are "
                 "taken literally (sec*10^9 + frac*unit); one timestamp warning (first of the "
                 "file)", exit=3, problems=[("timestamp", p.offsets[1], 0)], frames=5,
                 undecodable=0, ts=first_last(p.ts))

    p = Pcap()
    t0 = 1_700_000_000
    for i in range(2):
        p.add(t0 + i, 0, frame(i))
    first = p.add(t0 + 2, 10**6, frame(2))
    for i in range(3, 5):
        p.add(t0 + i, 0, frame(i))
    junk = len(p.buf)
    p.buf += b"\xff" * 16
    for i in range(5, 9):
        p.add(t0 + i, 0, frame(i))
    second = p.add(t0 + 9, 2 * 10**6, frame(9))
    for i in range(10, 14):
        p.add(t0 + i, 0, frame(i))
    case("pcap_fraction_warning_per_stretch.pcap", cat, p.bytes(), "an out-of-range "
         "fraction before and after 16 bytes of garbage: one timestamp warning per undamaged "
         "stretch (DECISIONS), the garbage skipped exactly",
         exit=3, problems=[("timestamp", first, 0), ("corrupt-record", junk, 16),
                           ("timestamp", second, 0)], frames=14, undecodable=0,
         ts=first_last(p.ts))

    for kind in ("udp", "ptp", "iena", "inetx", "ch10"):
        n = 6 if kind == "udp" else 24
        p = Pcap()
        for i in range(n):
            p.add((5, M32)[i % 2], 0, proto_frame(kind, i))
        case(f"pcap_alt_epoch_{kind}.pcap", cat, p.bytes(),
             f"{n} {kind.upper()} messages of one flow/stream whose pcap seconds alternate 5 "
             "and 2^32-1: IATs of +-136 years, all int64; exact statistics, exit 0",
             exit=0, frames=n, undecodable=0, ts=first_last(p.ts))

    p = Pcap(e=">", nsec=True)
    n = 0
    for i in range(6):
        for kind in ("udp", "ptp", "iena", "inetx", "ch10"):
            p.add((0, M32)[i % 2], (999_999_999, 0)[i % 2], proto_frame(kind, i))
            n += 1
    case("pcap_alt_epoch_all_streams_nsec_be.pcap", cat, p.bytes(), "the five streams "
         "interleaved, seconds alternating 0.999999999 and 2^32-1 (ns, big-endian)",
         exit=0, frames=n, undecodable=0, ts=first_last(p.ts))


# --- pcapng timestamps: if_tsresol, if_tsoffset, the ±2^62 bound, far-apart epochs -------------

def pcapng_times() -> None:
    cat = "pcapng-tsresol"
    for r in TSRESOLS:
        w = Pcapng()
        w.shb()
        w.idb(tsresol=r)
        for i, t in enumerate(TICKS):
            w.epb(0, t, frame(i))
        ng_case(f"pcapng_tsresol_{r:#04x}.pcapng", cat, w,
                f"if_tsresol {r:#04x} with tick counts 0, 1, 2^32-1, 2^63-1, 2^63, 2^64-1: "
                "exact ns (floored), re-read as signed when out of bounds, else untimed with "
                "one timestamp warning")

    cat = "pcapng-tsoffset"
    for off in TSOFFSETS:
        neg = INT64_MIN if off == INT64_MAX else -off
        w = Pcapng()
        w.shb()
        w.idb(tsresol=9, tsoffset=off)
        w.idb(tsresol=9, tsoffset=neg)
        for i, t in enumerate(TICKS):
            w.epb(0, t, frame(2 * i))
            w.epb(1, t, frame(2 * i + 1))
        ng_case(f"pcapng_tsoffset_pm{off}.pcapng", cat, w,
                f"two interfaces, if_tsoffset {off} s and {neg} s (ns ticks), one flow "
                "alternating between them at tick counts 0 .. 2^64-1: timestamps within "
                "+-2^62 kept exactly, the others untimed (one warning)")

    w = Pcapng()
    w.shb()
    w.idb(tsresol=10, tsoffset=4611686018)
    w.idb(tsresol=0x80 | 30, tsoffset=-(2**31))
    w.idb(tsresol=19, tsoffset=4611686017)
    for i, (ifid, t) in enumerate([(0, M64), (1, M64), (2, 2**64 - 3), (0, 2**64 - 7),
                                   (1, 2**64 - 3), (2, M64)]):
        w.epb(ifid, t, frame(i))
    ng_case("pcapng_negative_ticks_floored.pcapng", cat, w, "tick counts read as signed "
            "(-1, -3, -7) at 10^-10, 2^-30 and 10^-19 s: floored to whole ns (toward minus "
            "infinity: -1 tick of 10^-10 s is -1 ns, not 0), offsets +-2^31 .. 4611686018 s")

    cat = "pcapng-bound"
    inside = 2**62 - 1
    w = Pcapng()
    w.shb()
    w.idb(tsresol=9)
    for i in range(6):
        w.epb(0, (inside, 2**64 - inside)[i % 2], frame(i))
    ng_case("pcapng_bound_just_inside.pcapng", cat, w, "ns ticks 2^62-1 and (signed) "
            "-(2^62-1) alternating in one flow: all timed, IATs +-(2^63-2) fit int64; sums of "
            "squares pass 2^124 (series bins' sumsq -1)")

    w = Pcapng()
    w.shb()
    w.idb(tsresol=9)
    for i, t in enumerate([inside, 2**62, 2**64 - inside, 2**64 - 2**62, 2**62 + 1, inside,
                           2**64 - 2**62 - 1, 2**64 - inside]):
        w.epb(0, t, frame(i))
    ng_case("pcapng_bound_just_outside.pcapng", cat, w, "ns ticks +-2^62 and +-(2^62+1) "
            "(just outside) between +-(2^62-1): the outside ones untimed, one timestamp warning")

    w = Pcapng()
    w.shb()
    w.idb(tsresol=9, tsoffset=4611686018)
    w.idb(tsresol=9, tsoffset=-4611686018)
    for i, (ifid, t) in enumerate([(0, 427387903), (1, 2**64 - 427387903), (0, 427387904),
                                   (1, 2**64 - 427387904), (0, 0), (1, 0), (0, 427387903),
                                   (1, 2**64 - 427387903)]):
        w.epb(ifid, t, frame(i))
    ng_case("pcapng_bound_via_tsoffset.pcapng", cat, w, "if_tsoffset +-4611686018 s with ns "
            "ticks reaching exactly +-(2^62-1) (inside) and +-2^62 (outside)")

    cat = "pcapng-alt-epoch"
    pattern = [(0, 0), (1, M64), (0, M64), (1, 0), (0, 0), (1, M64)]
    for kind in ("udp", "ptp", "iena", "inetx", "ch10", "all"):
        w = Pcapng()
        w.shb()
        w.idb(tsoffset=-4611686018)
        w.idb(tsoffset=4611686017)
        kinds = ["udp", "ptp", "iena", "inetx", "ch10"] if kind == "all" else [kind]
        rounds = 1 if kind in ("udp", "all") else 4
        for i, (ifid, t) in enumerate(pattern * rounds):
            for k in kinds:
                w.epb(ifid, t, proto_frame(k, i))
        ng_case(f"pcapng_alt_epoch_two_ifaces_{kind}.pcapng", cat, w,
                "two interfaces (µs) with if_tsoffset -4611686018 s and +4611686017 s, "
                f"{'each stream' if kind == 'all' else 'one ' + kind.upper() + ' stream'} "
                f"({len(pattern) * rounds} messages) "
                "alternating between them at ticks 0 and 2^64-1 (signed -1): all timed, IATs "
                "about +-(2^63 - 1.85e9) ns, exact, exit 0", undecodable=0)


# --- pcapng blocks ---------------------------------------------------------------------------

def pcapng_blocks() -> None:
    cat = "pcapng-blocks"
    T = 1_700_000_000_000_000  # µs ticks

    def start(e: str = "<", snaplen: int = 0) -> Pcapng:
        w = Pcapng(e)
        w.shb()
        w.idb(snaplen=snaplen)
        return w

    def good(w: Pcapng, n: int, base: int = 0) -> None:
        for i in range(n):
            w.epb(0, T + 1000 * (base + i), frame(base + i))

    w = start()
    case("pcapng_shb_idb_only.pcapng", cat, w.bytes(), "a valid capture without packets: no "
         "frame to analyse, exit 1", exit=1)

    for snap in (0, M32):
        w = start(snaplen=snap)
        good(w, 2)
        w.spb(frame(2))
        w.spb(frame(3)[:20], orig=60)
        good(w, 2, 4)
        ng_case(f"pcapng_idb_snaplen_{snap}.pcapng", cat, w, f"IDB snaplen {snap}: EPBs as "
                "written; SPBs captured = min(original, snaplen or original, block room), "
                "numbered, untimed, out of flows", undecodable=0)

    w = start(snaplen=32)
    for i in range(4):
        w.epb(0, T + i, frame(i), orig=(1, M32, 60, 0)[i])
    w.epb(0, T + 9, b"")
    ng_case("pcapng_epb_lengths_odd.pcapng", cat, w, "EPB captured 202 > IDB snaplen 32, "
            "original lengths 1, 2^32-1, 60 and 0 (< captured), one EPB of 0 captured bytes "
            "(undecodable): nothing here is damage", undecodable=1)

    w = start()
    good(w, 5)
    bad = w.epb(0, T + 99, frame(99), cap=len(_pad4(frame(99))) + 1, frame=False)
    blen = len(w.buf) - bad
    good(w, 5, 5)
    ng_case("pcapng_epb_caplen_one_past_block_mid.pcapng", cat, w, "an EPB whose captured "
            "length overruns its block (padding included) by one byte, mid-file: "
            "corrupt-block, resync at the next block, that one block lost",
            problems=[("corrupt-block", bad, blen)])

    w = start()
    good(w, 5)
    bad = w.epb(0, T + 99, frame(99), cap=M32, frame=False)
    ng_case("pcapng_epb_caplen_max_last.pcapng", cat, w, "the last EPB claims 2^32-1 "
            "captured bytes inside a small block: corrupt-block, reading stops",
            problems=[("corrupt-block", bad, 0)])

    w = start()
    good(w, 5)
    at = w.epb(0, T + 99, frame(99), frame=False)
    real = len(w.buf) - at
    w.buf[at + 4:at + 8] = struct.pack("<I", real + 4)
    ng_case("pcapng_epb_blen_4_past_end.pcapng", cat, w, "the last block's length (a multiple "
            "of 4) runs 4 bytes past the end of the file: a cut-off last block, truncated "
            "(warning)", problems=[("truncated", at, 0)])

    w = start()
    good(w, 5)
    at = w.epb(0, T + 99, frame(99), frame=False)
    real = len(w.buf) - at
    w.buf[at + 4:at + 8] = struct.pack("<I", real + 1)
    ng_case("pcapng_blen_one_past_end_not_mult4.pcapng", cat, w, "the last block's length "
            "is one byte more than the file holds (not a multiple of 4): an impossible "
            "length, corrupt-block", problems=[("corrupt-block", at, 0)])

    w = start()
    good(w, 5)
    at = w.epb(0, T + 99, frame(99), frame=False)
    real = len(w.buf) - at
    w.buf[at + 4:at + 8] = struct.pack("<I", real + 2)
    good(w, 5, 5)
    ng_case("pcapng_blen_not_mult4_mid.pcapng", cat, w, "a block length not a multiple of 4, "
            "mid-file: corrupt-block, resync at the next block",
            problems=[("corrupt-block", at, real)])

    w = start()
    good(w, 5)
    at = w.raw(struct.pack("<II", 6, 0))
    good(w, 5, 5)
    ng_case("pcapng_blen_zero_mid.pcapng", cat, w, "an 8-byte block header of length 0, "
            "mid-file: corrupt-block, resync 8 bytes later",
            problems=[("corrupt-block", at, 8)])

    w = start()
    good(w, 5)
    at = w.raw(struct.pack("<III", 6, 0, 0))
    ng_case("pcapng_blen_zero_last.pcapng", cat, w, "a last block of length 0 (type 6, "
            "length 0, trailer 0): corrupt-block, reading stops",
            problems=[("corrupt-block", at, 0)])

    for btype, name in ((6, "epb"), (2, "pb"), (3, "spb")):
        w = start()
        good(w, 5)
        at = w.block(btype, b"")
        good(w, 5, 5)
        ng_case(f"pcapng_{name}_block_12_bytes_mid.pcapng", cat, w, f"a {name.upper()} of "
                "12 bytes (no room for its fixed fields), mid-file: corrupt-block, resync "
                "at the next block", problems=[("corrupt-block", at, 12)])

    w = start()
    good(w, 5)
    at = w.epb(0, T + 99, frame(99), blen=0xFFFFFFFC, trailer=None, frame=False)
    real = len(w.buf) - at
    w.buf[at + real - 4:at + real] = struct.pack("<I", real)
    good(w, 5, 5)
    ng_case("pcapng_blen_4GiB_mid.pcapng", cat, w, "a block claiming 2^32-4 bytes mid-file: "
            "corrupt-block (valid blocks follow), resync at the next block, nothing large "
            "allocated", problems=[("corrupt-block", at, real)])

    w = start()
    good(w, 5)
    at = w.epb(0, T + 99, frame(99), trailer=1234, frame=False)
    real = len(w.buf) - at
    good(w, 5, 5)
    ng_case("pcapng_trailer_mismatch_mid.pcapng", cat, w, "a trailing length that does not "
            "repeat the block length, mid-file: corrupt-block, resync at the next block",
            problems=[("corrupt-block", at, real)])

    w = start()
    good(w, 5)
    at = w.epb(0, T + 99, frame(99), options=struct.pack("<HH", 1, 400) + b"comment!",
               frame=False)
    real = len(w.buf) - at
    good(w, 5, 5)
    ng_case("pcapng_epb_option_overrun_mid.pcapng", cat, w, "an EPB option (comment) whose "
            "length (400) runs past its block, mid-file: README 'an option ... overrunning "
            "its block' is corrupt-block, resync at the next block",
            problems=[("corrupt-block", at, real)])

    w = Pcapng()
    w.shb()
    e = w.e
    at = w.idb(raw_options=opt(e, 9, b"\x09") + struct.pack(e + "HH", 2, 200) + b"eth0",
               declared=False)
    for i in range(8):
        w.epb(0, T + i, frame(i), frame=False)
    case("pcapng_only_idb_option_overrun.pcapng", cat, w.bytes(), "the only IDB has an "
         "option running past its block: corrupt-block; no resync (the packet blocks after "
         "it name an undeclared interface): no frame to analyse, exit 1",
         exit=1, problems=[("corrupt-block", at, 0)])

    w = start()
    good(w, 3)
    at = w.idb(raw_options=struct.pack("<HH", 14, 8) + b"\x01\x02", declared=False)
    real = len(w.buf) - at
    good(w, 6, 3)
    ng_case("pcapng_second_idb_option_overrun.pcapng", cat, w, "a second IDB whose "
            "if_tsoffset option runs past its block: corrupt-block, resync at the next block "
            "(packets on interface 0, which is declared)",
            problems=[("corrupt-block", at, real)])

    w = start()
    good(w, 4)
    at = w.shb(options=struct.pack("<HH", 1, 500) + b"overrun")
    real = len(w.buf) - at
    w.idb(tsresol=3)  # ms: read with the first section's µs interface they look plausible
    for i in range(6):
        w.epb(0, 1_700_000_000_000 + i, frame(10 + i), frame=False)
    case("pcapng_second_shb_option_overrun.pcapng", cat, w.bytes(), "a second section header "
         "whose option runs past its block: corrupt-block; the skipped bytes hold a section "
         "header, so no resync (README: its interfaces would be unknown): the first section's "
         "4 frames", exit=3, problems=[("corrupt-block", at, 0)], frames=4,
         ts=first_last(w.timed()[:4]), untimed=0)
    assert real > 0

    w = start()
    good(w, 4)
    at = w.shb(bom=b"\x1a\x2b\x3c\x00")
    w.idb(tsresol=3)  # ms: read with the first section's µs interface they look plausible
    for i in range(6):
        w.epb(0, 1_700_000_000_000 + i, frame(10 + i), frame=False)
    case("pcapng_second_shb_bad_bom.pcapng", cat, w.bytes(), "a second section header with "
         "a bad byte-order magic: corrupt-block; the skipped bytes hold a section header, so "
         "no resync: the first section's 4 frames", exit=3,
         problems=[("corrupt-block", at, 0)], frames=4, ts=first_last(w.timed()[:4]),
         untimed=0)

    w = Pcapng()
    w.shb()
    first = w.spb(frame(0))
    w.spb(frame(1))
    w.idb()
    good(w, 3, 2)
    ng_case("pcapng_spb_before_any_idb.pcapng", cat, w, "SPBs (interface 0) before any IDB: "
            "packets on an undeclared interface: numbered, untimed, out of flows, "
            "unknown-interface (warning, first of the file)",
            problems=[("unknown-interface", first, 0)], undecodable=0)

    w = start()
    good(w, 2)
    w.spb(frame(2), orig=M32)
    w.spb(b"", orig=0)
    w.spb(frame(3), orig=10)
    good(w, 2, 4)
    ng_case("pcapng_spb_origlen_extremes.pcapng", cat, w, "SPBs with original length 2^32-1 "
            "(captured = block room), 0 and 10: untimed frames, nothing damaged",
            undecodable=0)

    w = start()
    good(w, 2)
    w.pb(0, T + 10, frame(2), drops=0xFFFF)
    w.pb(0, T + 11, b"", orig=M32)
    w.pb(0, T + 12, frame(3), orig=1)
    at = w.pb(0xFFFF, T + 13, frame(4))
    w.epb(M32, T + 14, frame(5))
    good(w, 2, 6)
    ng_case("pcapng_pb_obsolete_extremes.pcapng", cat, w, "obsolete packet blocks with drops "
            "0xFFFF, 0 captured bytes, original 2^32-1 and 1; a PB on interface 0xFFFF and an "
            "EPB on interface 2^32-1 (undeclared): untimed, one unknown-interface warning",
            problems=[("unknown-interface", at, 0)], undecodable=1)

    w = start()
    good(w, 5)
    bad = w.pb(0, T + 99, frame(99), cap=len(frame(99)) + 40, frame=False)
    real = len(w.buf) - bad
    good(w, 5, 5)
    ng_case("pcapng_pb_caplen_over_block_mid.pcapng", cat, w, "an obsolete packet block "
            "whose captured length overruns its block, mid-file: corrupt-block, resync",
            problems=[("corrupt-block", bad, real)])

    w = start()
    good(w, 2)
    for btype in (0xFFFFFFFF, 7, 0xBAD, 0x40000BAD, 0, 0x80000001):
        w.block(btype, bytes(range(37)))
    w.block(4, struct.pack("<HH", 1, 200) + b"\x0a\x00\x00\x01")  # NRB record overrunning
    w.block(5, struct.pack("<IIIHH", 0, M32, M32, 0, 0))  # ISB with extreme times
    w.block(0xA, struct.pack("<II", 0x544c534b, M32))  # DSB claiming 4 GiB of secrets
    good(w, 2, 2)
    ng_case("pcapng_unknown_and_odd_blocks.pcapng", cat, w, "blocks of unknown types "
            "(0xFFFFFFFF, 0, 0x80000001), IRIG/AFDX/custom blocks, an NRB whose record runs "
            "past it, an ISB with times 2^64-1, a DSB claiming 4 GiB: not frames, skipped by "
            "length", undecodable=0)

    w = Pcapng()
    w.shb("<")
    w.idb(tsresol=9)
    w.epb(0, 2**62 - 1, frame(0))
    w.shb(">")
    w.idb(tsresol=0x80 | 30, tsoffset=-(2**31))
    w.epb(0, M64, frame(1))
    w.epb(0, 1 << 62, frame(2))
    w.shb("<")
    w.idb(tsresol=19, tsoffset=4611686017)
    w.epb(0, M64, frame(3))
    w.epb(0, 2**63, frame(4))
    ng_case("pcapng_sections_switching_order_and_resolution.pcapng", cat, w, "three sections "
            "(LE, BE, LE), each restarting the interfaces with other if_tsresol/if_tsoffset "
            "extremes, one flow across them", undecodable=0)

    w = start()
    for i in range(3):
        w.spb(frame(i))
    ng_case("pcapng_spb_only.pcapng", cat, w, "only simple packet blocks: frames numbered, all "
            "untimed, no flow; a capture with frames, so exit 0 (no timestamps: first_ns null)")

    w = start()
    for i in range(3):
        w.epb(0, 2**62 + i, frame(i))
    ng_case("pcapng_all_frames_out_of_bound.pcapng", cat, w, "every packet's time out of "
            "bounds (µs ticks 2^62): frames numbered, all untimed, one timestamp warning; "
            "first_ns null")

    w = start()
    good(w, 2)
    w.epb(0, 2**62, frame(2))
    unknown = w.epb(7, T + 3, frame(3))
    good(w, 2, 4)
    bad = w.epb(0, T + 99, frame(99), trailer=1, frame=False)
    real = len(w.buf) - bad
    good(w, 4, 6)
    w.epb(0, 2**62 + 1, frame(10))
    w.epb(9, T + 11, frame(11))
    good(w, 4, 12)
    ng_case("pcapng_warnings_first_per_file_across_resync.pcapng", cat, w, "out-of-bound "
            "times and undeclared interfaces before and after a resync: one timestamp and one "
            "unknown-interface warning for the file (DECISIONS: first per file)",
            problems=[("unknown-interface", unknown, 0), ("corrupt-block", bad, real)])

    w = start()
    small = udp_frame(A, B, 40000, 50010, b"tiny")
    for i in range(4):
        w.epb(0, T + i, small)
    stretches = []
    for k in range(101):
        at = w.epb(0, T + 100 * k, small, trailer=7, frame=False)
        stretches.append((at, len(w.buf) - at))
        for i in range(4):
            w.epb(0, T + 100 * k + 1 + i, small, frame=k < 100)
    ng_case("pcapng_101_damaged_blocks.pcapng", cat, w, "101 damaged blocks, each followed by "
            "4 good ones: at most 100 resyncs per file (README), the 101st damage stops the "
            "reading", problems=[("corrupt-block", a, n if k < 100 else 0)
                                 for k, (a, n) in enumerate(stretches)])

    w = start()
    good(w, 5)
    at = len(w.buf)
    w.epb(0, T + 99, frame(99), frame=False)
    case("pcapng_cut_in_block_header.pcapng", cat, w.bytes()[:at + 6], "cut 6 bytes into "
         "the last block: truncated (warning)", exit=3, problems=[("truncated", at, 0)],
         frames=5, untimed=0, ts=first_last(w.timed()))
    case("pcapng_cut_in_block_body.pcapng", cat, w.bytes()[:-9], "cut inside the last "
         "block's body: truncated (warning)", exit=3, problems=[("truncated", at, 0)],
         frames=5, untimed=0, ts=first_last(w.timed()))

    w = start()
    case("pcapng_cut_in_shb.pcapng", cat, w.bytes()[:20], "cut inside the section header: "
         "no frame to analyse (truncated at byte 0), exit 1", exit=1,
         problems=[("truncated", 0, 0)])

    w = start()
    good(w, 4)
    at = len(w.buf)
    case("pcapng_zero_filled_tail.pcapng", cat, w.bytes() + bytes(4096), "the rest of the "
         "file zero-filled (a power loss): truncated (warning) where the zeros start",
         exit=3, problems=[("truncated", at, 0)], frames=4, untimed=0,
         ts=first_last(w.timed()))


# --- link types ------------------------------------------------------------------------------

def sll(proto: int, pkt: bytes) -> bytes:
    return struct.pack(">HHH8sH", 0, 1, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00", proto) + pkt


def sll2(proto: int, pkt: bytes) -> bytes:
    return struct.pack(">HHIHBB8s", proto, 0, 3, 1, 0, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00") \
        + pkt


def linktype_frames() -> dict[tuple[int, str], list[bytes]]:
    """(link type, label) -> frames, all decodable except the unknown link type's."""
    return {
        (1, "ethernet"): [frame(i) for i in range(3)],
        (0, "null"): [struct.pack("<I", 2) + ip4(0), struct.pack(">I", 2) + ip4(1),
                      struct.pack("<I", 24) + ip6(2), struct.pack("<I", 28) + ip6(3),
                      struct.pack(">I", 30) + ip6(4)],
        (108, "loop"): [struct.pack(">I", 2) + ip4(0), struct.pack(">I", 24) + ip6(1)],
        (101, "raw"): [ip4(0), ip6(1), ip4(2)],
        (12, "raw_dlt12"): [ip4(0), ip6(1)],
        (14, "raw_dlt14"): [ip4(0), ip6(1)],
        (228, "ipv4"): [ip4(0), ip4(1)],
        (229, "ipv6"): [ip6(0), ip6(1)],
        (113, "linux_sll"): [sll(0x0800, ip4(0)), sll(0x86DD, ip6(1)), sll(0x0800, ip4(2))],
        (276, "linux_sll2"): [sll2(0x0800, ip4(0)), sll2(0x86DD, ip6(1)),
                              sll2(0x0800, ip4(2))],
        (147, "unknown_user0"): [ip4(0), frame(1)],
    }


def linktypes() -> None:
    cat = "link-types"
    t0 = 1_700_000_100
    all_frames = linktype_frames()
    for (lt, label), frames in all_frames.items():
        p = Pcap(linktype=lt)
        for i, f in enumerate(frames):
            p.add(t0 + i, 0, f)
        bad = len(frames) if lt == 147 else 0
        case(f"linktype_{lt:03d}_{label}.pcap", cat, p.bytes(),
             f"link type {lt} ({label})" + (": not a link type the readers decode, every "
                                            "frame undecodable (counted, never a crash)"
                                            if bad else ": every frame decoded"),
             exit=0, frames=len(frames), undecodable=bad, ts=first_last(p.ts))
    w = Pcapng()
    w.shb()
    for lt, _label in all_frames:
        w.idb(linktype=lt)
    w.idb(linktype=0xFFFF)
    n = 0
    for k, frames in enumerate(all_frames.values()):
        for f in frames:
            w.epb(k, 1_700_000_200_000_000 + n, f)
            n += 1
    w.epb(len(all_frames), 1_700_000_300_000_000, frame(0))
    ng_case("linktype_all_in_one_pcapng.pcapng", cat, w, "one IDB per link type (and 0xFFFF), "
            "packets on each", undecodable=len(all_frames[(147, "unknown_user0")]) + 1)


# --- compressed files --------------------------------------------------------------------------

def base_files() -> tuple[bytes, list[int], bytes, list[int]]:
    """The plain captures the compressed files hold, with their record/block offsets."""
    t0 = 1_700_001_000
    kinds = ["udp", "ptp", "iena", "inetx", "ch10", "udp"]
    p = Pcap()
    for i in range(24):
        p.add(t0 + i // 6, 1000 * (i % 6) + 7, proto_frame(kinds[i % 6], i))
    case("base_mixed.pcap", "base", p.bytes(), "24 frames of five protocol streams: the "
         "plain capture the compressed files hold", exit=0, frames=24, undecodable=0,
         ts=first_last(p.ts))
    w = Pcapng()
    w.shb()
    w.idb(tsresol=9)
    w.idb(tsoffset=-1)
    for i in range(24):
        w.epb(i % 2, (t0 + i) * 10**9 + i if i % 2 == 0 else (t0 + 1 + i) * 10**6,
              proto_frame(kinds[i % 6], i))
    ng_case("base_mixed.pcapng", "base", w, "the same 24 frames in pcapng, two interfaces (ns; "
            "µs with if_tsoffset -1 s)", undecodable=0)
    ng_offsets = [a for a, _t in w.frames]
    return p.bytes(), [0] + p.offsets, w.bytes(), [0, 28] + ng_offsets  # SHB 28 bytes


def members(data: bytes, codec: str, cuts: list[int], *, bad: int | None = None,
            pad: bytes = b"") -> tuple[bytes, list[int]]:
    """`data` as members cut at `cuts` (decompressed offsets), `pad` between them; member
    `bad` with a wrong checksum. Returns (file, compressed offset of each member)."""
    bounds = [0, *cuts, len(data)]
    out, starts = bytearray(), []
    for k in range(len(bounds) - 1):
        if k:
            out += pad
        starts.append(len(out))
        out += MEMBER[codec](data[bounds[k]:bounds[k + 1]], bad_check=k == bad)
    return bytes(out), starts


def whole(plain: str) -> dict:
    """The counts and times of a plain corpus file, for a compressed copy decoded whole."""
    e = EXPECTED[plain]
    out = {k: e[k] for k in ("frames", "untimed", "undecodable") if k in e}
    if "first_ns" in e:
        out["ts"] = (e["first_ns"], e["last_ns"])
    return out


def compressed() -> None:
    cat = "compressed"
    pcap, poff, ng, noff = base_files()
    pcut = [poff[9], poff[17]]  # member boundaries at record boundaries
    ncut = [noff[10], noff[18]]
    for codec in ("gzip", "zstd", "lz4", "xz"):
        x = EXT[codec]
        data, _ = members(pcap, codec, [])
        case(f"comp_{codec}_one_member.pcap.{x}", cat, data, f"{codec}, one member: the "
             "results of the plain file", exit=0, plain="base_mixed.pcap", **whole("base_mixed.pcap"))

        pad = bytes(8) if codec in ("gzip", "xz") else skippable(5) + bytes(4)
        data, _ = members(ng, codec, ncut, pad=pad)
        if codec in ("zstd", "lz4"):
            data = skippable(3) + data
        case(f"comp_{codec}_three_members_padded.pcapng.{x}", cat, data, f"{codec}, three "
             "members with zero padding" + (" and skippable frames" if codec in ("zstd", "lz4")
                                            else "") + " between them: the plain file's results",
             exit=0, plain="base_mixed.pcapng", **whole("base_mixed.pcapng"))

        data, starts = members(pcap, codec, pcut)
        cut = starts[1] + (starts[2] - starts[1]) // 2
        case(f"comp_{codec}_cut_mid_member.pcap.{x}", cat, data[:cut], f"{codec} cut in the "
             "middle of its second member: compressed-damage (error) where decoding stopped, "
             "everything decoded before analysed; a record cut by it also truncated",
             exit=3, problems=[("compressed-damage", None, 0), ("truncated?", None, 0)],
             plain="base_mixed.pcap")

        data, starts = members(ng, codec, ncut)
        case(f"comp_{codec}_cut_at_member_start.pcapng.{x}", cat, data[:starts[2] + 3],
             f"{codec} cut 3 bytes into its third member (the first two end on block "
             "boundaries): compressed-damage at the end of the second member's data, no "
             "record cut", exit=3, problems=[("compressed-damage", ncut[1], 0)], frames=16,
             plain="base_mixed.pcapng")

        data, starts = members(pcap, codec, pcut, bad=1)
        case(f"comp_{codec}_bad_checksum.pcap.{x}", cat, data, f"{codec} whose second "
             "member fails its checksum: compressed-damage, reading of the file stops there "
             "(the third member is not read)", exit=3,
             problems=[("compressed-damage", None, 0), ("truncated?", None, 0)],
             plain="base_mixed.pcap")

        data, _ = members(pcap, codec, [])
        case(f"comp_{codec}_garbage_after.pcap.{x}", cat, data + b"GARBAGE!" * 3, f"{codec} "
             "followed by bytes that are no member: compressed-damage at the end of the "
             "decoded data, everything analysed", exit=3,
             problems=[("compressed-damage", len(pcap), 0)], plain="base_mixed.pcap",
             **whole("base_mixed.pcap"))

        data, _ = members(b"flight 42: recorder B lost power at 10:42\n" * 3, codec, [])
        case(f"comp_{codec}_not_a_capture.{x}", cat, data, f"{codec} of a text file: not a "
             "capture (file-not-capture), exit 1", exit=1,
             problems=[("file-not-capture", 0, 0)])

        data, _ = members(b"", codec, [])
        case(f"comp_{codec}_empty.{x}", cat, data, f"{codec} that decompresses to nothing: "
             "file-not-capture, exit 1", exit=1, problems=[("file-not-capture", 0, 0)])

    inner, _ = members(pcap, "gzip", [])
    data, _ = members(inner, "gzip", [])
    case("comp_gzip_in_gzip.pcap.gz.gz", cat, data, "gzip inside gzip: not a capture after "
         "one decompression (file-not-capture), exit 1", exit=1,
         problems=[("file-not-capture", 0, 0)])

    data, starts = members(pcap, "zstd", [10])
    case("comp_zstd_cut_in_pcap_header.pcap.zst", cat, data[:starts[1] + 4], "zstd whose "
         "decoded data ends 10 bytes into the pcap header: not a capture, exit 1", exit=1,
         problems=[("file-not-capture", 0, 0)])

    case("comp_zstd_skippable_only.zst", cat, skippable(40) + skippable(0), "only zstd "
         "skippable frames: nothing to decompress, not a capture, exit 1", exit=1,
         problems=[("file-not-capture", 0, 0)])

    for codec, name in (("zstd", "pcapng_trailer_mismatch_mid.pcapng"),
                        ("lz4", "pcap_caplen_one_past_end.pcap"),
                        ("gzip", "pcapng_bound_just_outside.pcapng"),
                        ("xz", "pcapng_second_shb_option_overrun.pcapng")):
        data, _ = members(CORPUS[name], codec, [len(CORPUS[name]) // 2])
        exp = {k: v for k, v in EXPECTED[name].items() if k not in ("category", "why")}
        exp["problems"] = [tuple(q) for q in exp["problems"]]
        if "first_ns" in exp:
            exp["ts"] = (exp.pop("first_ns"), exp.pop("last_ns"))
        case(f"comp_{codec}_{name}.{EXT[codec]}", cat, data, f"{name} in two {codec} members: "
             "its damage reported as for the plain file, offsets in the decompressed capture",
             plain=name, **exp)

    name = "pcapng_alt_epoch_two_ifaces_all.pcapng"
    data, _ = members(CORPUS[name], "xz", [])
    case(f"comp_xz_{name}.xz", cat, data, "the far-apart epochs of " + name + " through xz",
         exit=0, plain=name, **whole(name))


def build() -> tuple[dict[str, bytes], dict[str, dict]]:
    CORPUS.clear()
    EXPECTED.clear()
    pcap_lengths()
    pcap_times()
    pcapng_times()
    pcapng_blocks()
    linktypes()
    compressed()
    files = dict(sorted(CORPUS.items()))
    files["EXPECTED.json"] = (json.dumps(dict(sorted(EXPECTED.items())), indent=1) + "\n").encode()
    files["EXPECTED.md"] = table(EXPECTED).encode()
    return files, dict(sorted(EXPECTED.items()))


def table(expected: dict[str, dict]) -> str:
    lines = ["# Expected outcomes of the hostile corpus", "",
             "Written by make_corpus.py (do not edit); the rules are in README.md. `problems`: "
             "kind@byte offset+skipped bytes, `?` = may be absent, `*` = offset not fixed by "
             "the contract. `ts`: first_ns .. last_ns of the timed frames.", "",
             "| file | exit | problems | frames (untimed, undecodable) | ts | what the contract "
             "implies |", "|---|---|---|---|---|---|"]
    for name, e in sorted(expected.items(), key=lambda kv: (kv[1]["category"], kv[0])):
        probs = ", ".join(f"{k}@{'*' if o is None else o}" + (f"+{s}" if s else "")
                          for k, o, s in e["problems"]) or "-"
        counts = "-" if "frames" not in e else str(e["frames"]) + (
            f" ({e.get('untimed', '?')}, {e.get('undecodable', '?')})")
        ts = f"{e['first_ns']} .. {e['last_ns']}" if "first_ns" in e else "-"
        lines.append(f"| `{name}` | {e['exit']} | {probs} | {counts} | {ts} | {e['why']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare, write nothing")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    files, _ = build()
    if args.check:
        bad = [n for n, b in files.items()
               if not (args.out / n).is_file() or (args.out / n).read_bytes() != b]
        known = set(files) | {"make_corpus.py", "README.md", "__pycache__"}
        extra = [p.name for p in args.out.iterdir() if p.name not in known]
        for n in bad:
            print(f"differs: {n}")
        for n in extra:
            print(f"not made by make_corpus.py: {n}")
        return 1 if bad or extra else 0
    for n, b in files.items():
        (args.out / n).write_bytes(b)
    total = sum(len(b) for n, b in files.items() if not n.startswith("EXPECTED"))
    print(f"{len(files) - 2} files, {total} bytes, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
