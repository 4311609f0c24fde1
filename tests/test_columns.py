"""The columnar record walk: compiled == pure-Python fallback == iter_frames, frame by frame.

On every real capture (corrupt ones included) at several chunk sizes and as one unplanned
range running into the damage, and on generated files (pcap µs/ns, both byte orders, literal
out-of-range fractions; pcapng with several sections, EPB/PB/SPB, unknown blocks, undeclared
interfaces, 10^-r and 2^-k resolutions, large offsets, tick counts near 2^63 and 2^64), also
truncated and with bytes overwritten at random.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import real_captures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlens_dist.capture import columns, pcap, pcapng
from streamlens_dist.capture.columns import RecordColumns, record_columns, record_columns_python
from streamlens_dist.capture.split import ChunkSpec, plan_capture
from streamlens_dist.chunktask import iter_frames, read_range
from streamlens_dist.errors import CaptureFormatError
from streamlens_dist.synth import (
    Interface,
    PcapngWriter,
    random_records,
    write_pcap,
    write_pcapng,
)

FIELDS = ("ts", "untimed", "linktype", "offset", "caplen")
DTYPES = {"ts": np.int64, "untimed": np.bool_, "linktype": np.int32, "offset": np.int64,
          "caplen": np.int64}
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
_names = itertools.count()


def assert_same(a: RecordColumns, b: RecordColumns, where: str = "") -> None:
    assert len(a) == len(b), f"{where}: {len(a)} rows vs {len(b)}"
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == DTYPES[f] and y.dtype == DTYPES[f], f"{where} {f}: {x.dtype} {y.dtype}"
        if not np.array_equal(x, y):
            i = int(np.flatnonzero(x != y)[0])
            raise AssertionError(f"{where} {f} differs at row {i}: {x[i]} vs {y[i]}")


def check_chunk(spec: ChunkSpec) -> RecordColumns:
    """compiled == fallback == iter_frames for one chunk; returns the columns."""
    buf = read_range(spec.path, spec.start, spec.end)
    fast = record_columns(spec, buf)
    slow = record_columns_python(spec, buf)
    where = f"{spec.path} {spec.start}-{spec.end}"
    assert_same(fast, slow, where)
    assert len(fast) == spec.frames
    assert np.all(fast.offset + fast.caplen <= len(buf)) and np.all(fast.caplen >= 0)
    got = [(spec.first_frame + i, None if u else t, lt, cap, buf[off:off + cap])
           for i, (t, u, lt, off, cap) in enumerate(zip(
               fast.ts.tolist(), fast.untimed.tolist(), fast.linktype.tolist(),
               fast.offset.tolist(), fast.caplen.tolist(), strict=True))]
    want = list(iter_frames(spec))
    if got != want:
        i = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        raise AssertionError(f"{where}: frame {i} is {got[i][:4]}, iter_frames {want[i][:4]}")
    assert not np.any(fast.ts[fast.untimed])
    return fast


def whole_spec(path: Path) -> ChunkSpec | None:
    """One unplanned chunk over all of a file's records, running into any damage."""
    data = path.read_bytes()
    p = str(path)
    if pcap.is_pcap(data):
        try:
            hdr = pcap.parse_header(data, p)
        except CaptureFormatError:
            return None
        frames = sum(1 for _ in pcap.walk(data, pcap.HEADER_LEN, len(data), hdr, p))
        return ChunkSpec(0, p, pcap.HEADER_LEN, len(data), 1, frames, "pcap", hdr.endian,
                         (hdr.interface,))
    frames = sum(1 for _ in pcapng.walk(data, 0, len(data), pcapng.Section(), p))
    return ChunkSpec(0, p, 0, len(data), 1, frames, "pcapng", "<", ())


def check_file(path: Path, chunk_sizes=(1024, 64 * 1024, 1 << 40)) -> int:
    """Every planned chunk at each size, plus the unplanned whole range; returns frames."""
    spec = whole_spec(path)
    total = len(check_chunk(spec)) if spec is not None else 0
    for size in chunk_sizes:
        try:
            plan = plan_capture([path], size)
        except CaptureFormatError:
            continue
        for c in plan.chunks:
            check_chunk(c)
    return total


# --------------------------------------------------------------------------- real captures


@pytest.mark.parametrize("path", real_captures(include_corrupt=True), ids=lambda p: p.name)
def test_real_captures(path: Path) -> None:
    check_file(path)


HOSTILE = sorted(p for p in (Path(__file__).resolve().parent / "hostile").iterdir()
                 if p.suffix in (".pcap", ".pcapng"))


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.name)
def test_hostile_captures(path: Path) -> None:
    """The hostile corpus (tests/hostile/): the compiled walks stop where the Python walks
    do, e.g. at an EPB option overrunning its block."""
    check_file(path)


def test_real_captures_are_there() -> None:
    names = {p.name for p in real_captures(include_corrupt=True)}
    assert len(names) > 40
    assert "pcapng_multi_section_mixed_endian.pcapng" in names
    assert any(n.startswith("corrupt_") for n in names)


def test_frame_count_mismatch_raises_like_iter_frames() -> None:
    path = next(p for p in real_captures() if p.name == "pcapng_simple_packet_blocks.pcapng")
    plan = plan_capture([path], 1 << 40)
    for spec in (plan.chunks[0], plan_capture(real_captures()[:1], 1 << 40).chunks[0]):
        buf = read_range(spec.path, spec.start, spec.end)
        for frames in (0, spec.frames - 1, spec.frames + 1):
            bad = dataclasses.replace(spec, frames=frames)
            messages = []
            for fn in (lambda s, _b: list(iter_frames(s)), record_columns,
                       record_columns_python):
                with pytest.raises(CaptureFormatError) as exc:
                    fn(bad, buf)
                messages.append(str(exc.value))
            assert messages[0] == messages[1] == messages[2]
            assert f"but {spec.frames} now" in messages[0]


def test_output_growth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output arrays that start too small grow and give the same columns."""
    specs = [c for p in real_captures() if p.name in (
        "pcapng_multi_section_mixed_endian.pcapng", "pcapng_comments_ether_and_sll.pcapng",
        "ntp_client_server.pcap") for c in plan_capture([p], 1 << 40).chunks]
    want = [record_columns_python(s, read_range(s.path, s.start, s.end)) for s in specs]
    monkeypatch.setattr(columns, "_initial_rows", lambda spec, buf: 1)
    for s, w in zip(specs, want, strict=True):
        assert_same(record_columns(s, read_range(s.path, s.start, s.end)), w, s.path)


# --------------------------------------------------------------------------- compiled or not


def test_reports_whether_compiled() -> None:
    assert columns.HAVE_COMPILED is (columns._walk is not None)
    if shutil.which("cc") or shutil.which("gcc"):
        # A machine that can compile builds the extension at install time: the fast path must
        # not silently fall back there.
        assert columns.HAVE_COMPILED, "the compiled walk was not built or cannot be imported"


def test_fallback_when_extension_import_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "streamlens_dist.capture._walk", None)
    assert columns._load_compiled() is None
    calls = []

    def spy(spec, buf):
        calls.append(spec)
        return record_columns_python(spec, buf)

    monkeypatch.setattr(columns, "_walk", None)
    monkeypatch.setattr(columns, "record_columns_python", spy)
    spec = plan_capture(real_captures()[:1], 1 << 40).chunks[0]
    buf = read_range(spec.path, spec.start, spec.end)
    cols = columns.record_columns(spec, buf)
    assert calls == [spec] and len(cols) == spec.frames


def test_fallback_at_import_in_a_fresh_interpreter() -> None:
    code = (
        "import sys; sys.modules['streamlens_dist.capture._walk'] = None\n"
        "from streamlens_dist.capture import columns\n"
        "assert columns.HAVE_COMPILED is False and columns._walk is None\n"
        "from streamlens_dist.capture.split import plan_capture\n"
        "from streamlens_dist.chunktask import read_range\n"
        f"spec = plan_capture([{str(real_captures()[0])!r}], 1 << 40).chunks[0]\n"
        "cols = columns.record_columns(spec, read_range(spec.path, spec.start, spec.end))\n"
        "assert len(cols) == spec.frames\n"
        "print('fallback ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "fallback ok" in out.stdout


# --------------------------------------------------------------------------- generated files


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("columns")


def _file(workdir: Path, data: bytes, suffix: str) -> Path:
    path = workdir / f"gen_{next(_names)}.{suffix}"
    path.write_bytes(data)
    return path


def _damage(rng: random.Random, data: bytes, keep: int) -> list[bytes]:
    """Truncations and overwrites (hostile lengths) of `data`, leaving the first `keep` bytes."""
    out = []
    if len(data) > keep:
        for _ in range(3):
            out.append(data[:rng.randrange(keep, len(data))])
        for _ in range(3):
            b = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                pos = rng.randrange(keep, len(b))
                if rng.random() < 0.5:
                    b[pos] = rng.randrange(256)
                else:
                    b[pos:pos + 4] = rng.choice([b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f",
                                                 b"\x00\x00\x00\x00", b"\x0c\x00\x00\x00",
                                                 b"\x00\x00\x00\x0c", b"\x0a\x0d\x0d\x0a"])
            out.append(bytes(b[:len(data)]))
    return out


def _check_bytes(workdir: Path, data: bytes, suffix: str, seed: int) -> int:
    path = _file(workdir, data, suffix)
    try:
        total = check_file(path, chunk_sizes=(1024, 1 << 40))
        rng = random.Random(seed)
        keep = pcap.HEADER_LEN if suffix == "pcap" else 28
        for i, damaged in enumerate(_damage(rng, data, keep)):
            p = _file(workdir, damaged, suffix)
            try:
                check_file(p, chunk_sizes=(rng.choice([1024, 4096]),) if i % 2 else ())
            finally:
                p.unlink()
        return total
    finally:
        path.unlink()


@SETTINGS
@given(seed=st.integers(0, 2**32), n=st.integers(0, 40), nanosecond=st.booleans(),
       big_endian=st.booleans(), snaplen=st.sampled_from([0, 60, 65535, 300000]))
def test_generated_pcap(workdir: Path, seed: int, n: int, nanosecond: bool, big_endian: bool,
                        snaplen: int) -> None:
    records = random_records(random.Random(seed), n, resolution_ns=1 if nanosecond else 1000)
    path = _file(workdir, b"", "pcap")
    write_pcap(path, records, nanosecond=nanosecond, big_endian=big_endian, snaplen=snaplen)
    data = path.read_bytes()
    path.unlink()
    assert _check_bytes(workdir, data, "pcap", seed) == n


def _raw_pcap(big_endian: bool, nanosecond: bool, snaplen: int,
              recs: list[tuple[int, int, bytes, int]]) -> bytes:
    e = ">" if big_endian else "<"
    out = [struct.pack(e + "IHHiIII", 0xA1B23C4D if nanosecond else 0xA1B2C3D4, 2, 4, 0, 0,
                       snaplen, 1)]
    for sec, frac, data, orig in recs:
        out.append(struct.pack(e + "IIII", sec, frac, len(data), orig) + data)
    return b"".join(out)


u32 = st.integers(0, 2**32 - 1)


@SETTINGS
@given(big_endian=st.booleans(), nanosecond=st.booleans(), snaplen=u32,
       recs=st.lists(st.tuples(u32, st.one_of(u32, st.integers(0, 10**9)),
                               st.binary(max_size=80), u32), max_size=12),
       seed=st.integers(0, 2**32))
def test_raw_pcap_literal_timestamps(workdir: Path, big_endian: bool, nanosecond: bool,
                                     snaplen: int, recs: list, seed: int) -> None:
    """Any 32-bit seconds and fraction, in range or not, are taken literally."""
    data = _raw_pcap(big_endian, nanosecond, snaplen, recs)
    assert _check_bytes(workdir, data, "pcap", seed) == len(recs)


TSRESOLS = st.one_of(
    st.integers(0, 19),
    st.integers(0, 255),
    st.sampled_from([0x80 | k for k in (0, 1, 9, 10, 20, 30, 32, 33, 40, 63, 64, 65, 100, 127)]),
)
TSOFFSETS = st.one_of(
    st.just(0),
    st.integers(-(10**10), 10**10),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([9_223_372_036, -9_223_372_036, 9_223_372_037, -9_223_372_037,
                     2**63 - 1, -(2**63)]),
)
INTERFACES = st.builds(Interface, linktype=st.sampled_from([1, 101, 113, 276, 0, 0xFFFF]),
                       snaplen=st.sampled_from([0, 1, 40, 65535, 2**32 - 1]),
                       tsresol=TSRESOLS, tsoffset=TSOFFSETS)


def _ticks(rng: random.Random, iface: Interface) -> int:
    r = rng.random()
    if r < 0.3:
        return rng.getrandbits(64)
    if r < 0.45:
        return (2**63 + rng.randrange(-(2**24), 2**24)) % 2**64
    if r < 0.6:
        return 2**64 - rng.randrange(1, 2**24)
    if r < 0.7:
        return rng.randrange(0, 2**20)
    # plausible: a time near now in the interface's unit, before the offset
    a, b = iface.tick_ratio()
    ns = rng.randrange(0, 2 * 10**18) - iface.tsoffset * 10**9
    return max(0, ns * b // a) % 2**64


def _idb_with_options(rng: random.Random, e: str, iface: Interface) -> bytes:
    """An IDB body with other options around (and sometimes repeating) tsresol/tsoffset."""
    opts = []
    if rng.random() < 0.5:
        name = rng.randbytes(rng.randrange(0, 9))
        opts.append(struct.pack(e + "HH", 2, len(name)) + name + b"\0" * (-len(name) % 4))
    if rng.random() < 0.3:
        opts.append(struct.pack(e + "HHB3x", 9, 1, rng.randrange(256)))  # overridden below
    opts.append(struct.pack(e + "HHB3x", 9, 1, iface.tsresol))
    opts.append(struct.pack(e + "HHq", 14, 8, iface.tsoffset))
    if rng.random() < 0.5:
        opts[-2], opts[-1] = opts[-1], opts[-2]
    opts.append(struct.pack(e + "HH", 0, 0))
    return struct.pack(e + "HHI", iface.linktype, 0, iface.snaplen) + b"".join(opts)


def _gen_pcapng(rng: random.Random, sections: list[tuple[bool, list[Interface]]],
                frames: list[bytes], blocks: int) -> tuple[bytes, int]:
    out = io.BytesIO()
    w = PcapngWriter(out)
    count = 0
    for big_endian, declared in sections:
        e = ">" if big_endian else "<"
        w.section(big_endian=big_endian)
        ifaces: list[Interface] = []
        for iface in declared:
            if rng.random() < 0.5:
                w.interface(iface)
            else:
                w.block(1, _idb_with_options(rng, e, iface))
            ifaces.append(iface)
        for _ in range(blocks):
            frame = rng.choice(frames)
            r = rng.random()
            ifid = rng.randrange(len(ifaces) + 1) if rng.random() < 0.15 else (
                rng.randrange(len(ifaces)) if ifaces else 0)
            iface = ifaces[ifid] if ifid < len(ifaces) else Interface()
            ticks = _ticks(rng, iface)
            cap = len(frame)
            orig = cap + rng.choice([0, 0, 1, 1000])
            if r < 0.45:
                w.block(6, struct.pack(e + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, cap,
                                       orig) + frame)
                count += 1
            elif r < 0.55:
                w.block(2, struct.pack(e + "HHIIII", ifid, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                       cap, orig) + frame)
                count += 1
            elif r < 0.72:
                spb_orig = rng.choice([cap, cap + 5, max(0, cap - 5), 0, 2**32 - 1])
                w.block(3, struct.pack(e + "I", spb_orig) + frame)
                count += 1
            elif r < 0.85:
                btype = rng.choice([4, 5, 7, 9, 0x0BAD, 0x40000001, 0x80000001])
                w.block(btype, rng.randbytes(rng.randrange(0, 40)))
            elif r < 0.92:
                new = Interface(rng.choice([1, 101, 113]), rng.choice([0, 64]),
                                rng.choice([6, 9, 0x80 | 20, 0x80 | 32]),
                                rng.choice([0, 1, -1, 10**9]))
                w.interface(new)
                ifaces.append(new)
            elif ifaces:
                idx = rng.randrange(len(ifaces))
                try:
                    ts = rng.randrange(0, 2**62)
                    if rng.random() < 0.5:
                        w.enhanced_packet(ts, idx, frame)
                    else:
                        w.obsolete_packet(ts, idx, frame)
                    count += 1
                except ValueError:
                    pass  # not representable on this interface
    return out.getvalue(), count


@SETTINGS
@given(seed=st.integers(0, 2**32),
       sections=st.lists(st.tuples(st.booleans(), st.lists(INTERFACES, max_size=4)),
                         min_size=1, max_size=3),
       blocks=st.integers(0, 25))
def test_generated_pcapng(workdir: Path, seed: int, sections: list, blocks: int) -> None:
    rng = random.Random(seed)
    frames = [f for _t, f in random_records(rng, 6)]
    data, count = _gen_pcapng(rng, sections, frames, blocks)
    assert _check_bytes(workdir, data, "pcapng", seed) == count


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 40), big_endian=st.booleans(),
       tsresol=st.sampled_from([0x80 | 30, 0x80 | 32, 0x80 | 40, 0x80 | 63, 9, 10, 12, 19]),
       tsoffset=st.sampled_from([0, -(10**9), -(2**33), 10**6, 2**32]),
       spb=st.booleans())
def test_write_pcapng_resolutions(workdir: Path, seed: int, n: int, big_endian: bool,
                                  tsresol: int, tsoffset: int, spb: bool) -> None:
    """Files as synth.write_pcapng writes them (sub-ns ticks, so every ns is exact)."""
    rng = random.Random(seed)
    iface = Interface(1, rng.choice([0, 96]), tsresol, tsoffset)
    a, b = iface.tick_ratio()
    span = (2**64 - 1) * a // b  # ns that 64-bit ticks can reach past the offset
    records = [(None if spb and rng.random() < 0.2 else tsoffset * 10**9 + ts % span, 0, f)
               for ts, f in random_records(rng, n, resolution_ns=1)]
    path = _file(workdir, b"", "pcapng")
    write_pcapng(path, records, [iface, Interface(101)], big_endian=big_endian)
    data = path.read_bytes()
    path.unlink()
    assert _check_bytes(workdir, data, "pcapng", seed) == n


def test_ticks_near_the_int64_edges(workdir: Path) -> None:
    """Deterministic corner cases of the tick conversion, each frame checked against
    records.ticks_to_ns through iter_frames."""
    ifaces = [Interface(1, 0, r, off) for r in (0, 6, 9, 10, 19, 28, 29, 127, 0x80, 0x80 | 1,
                                                0x80 | 30, 0x80 | 63, 0x80 | 64, 0x80 | 127)
              for off in (0, 9_223_372_036, -9_223_372_036, -(2**63), 2**63 - 1)]
    ticks = [0, 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 1, 2**64 - 10**9, 9_223_372_036_854,
             9_223_372_036_854_775, 9_223_372_036_854_775_807 // 1000 + 1, 2**62, 2**33 * 10**9]
    out = io.BytesIO()
    w = PcapngWriter(out)
    for big_endian in (False, True):
        e = ">" if big_endian else "<"
        w.section(big_endian=big_endian)
        for iface in ifaces:
            w.interface(iface)
        for i, t in itertools.product(range(len(ifaces)), ticks):
            w.block(6, struct.pack(e + "IIIII", i, t >> 32, t & 0xFFFFFFFF, 4, 4) + b"abcd")
    path = _file(workdir, out.getvalue(), "pcapng")
    cols = check_chunk(whole_spec(path))
    assert len(cols) == 2 * len(ifaces) * len(ticks)
    assert cols.untimed.any() and not cols.untimed.all()
    path.unlink()


def test_empty_and_tiny_chunks(workdir: Path) -> None:
    for data, suffix in ((_raw_pcap(False, False, 0, []), "pcap"),
                         (_raw_pcap(True, True, 0, [(1, 2, b"", 0)]), "pcap"),
                         (_raw_pcap(False, True, 0, [(1, 2, b"x", 1)])[:-1], "pcap")):
        path = _file(workdir, data, suffix)
        check_chunk(whole_spec(path))
        path.unlink()
    spec = ChunkSpec(0, os.devnull, 0, 0, 1, 0, "pcapng", "<", ())
    assert len(record_columns(spec, b"")) == 0 == len(record_columns_python(spec, b""))


def _blk(e: str, btype: int, body: bytes, blen: int | None = None,
         trailer: int | None = None) -> bytes:
    n = 12 + len(body) if blen is None else blen
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n if trailer is None
                                                                 else trailer)


def _damaged_pcapng_tails(e: str) -> list[bytes]:
    epb = struct.pack(e + "IIIII", 0, 1, 2, 4, 4) + b"abcd"
    tails = [
        b"", b"\x06\x00", _blk(e, 6, epb)[:11],  # nothing / header cut short
        _blk(e, 3, b""),  # SPB without its length
        _blk(e, 6, epb[:16]), _blk(e, 2, epb[:16]),  # packet blocks shorter than 32 bytes
        _blk(e, 6, b"\0" * 40, blen=8), _blk(e, 6, b"\0" * 40, blen=50),  # impossible lengths
        _blk(e, 6, epb, blen=1 << 20), _blk(e, 6, epb, blen=0xFFFFFFFC),  # past the end
        _blk(e, 6, epb, trailer=0), _blk(e, 0x0BAD, b"", trailer=16),  # trailer mismatch
        _blk(e, 1, b"\x01\x00"), _blk(e, 1, b"\0" * 8 + struct.pack(e + "HH", 9, 200)),
        _blk(e, 0x0A0D0D0A, b"\x4d\x3c\x2b\x1a" + b"\0" * 4),  # SHB shorter than 28
        b"\x0a\x0d\x0d\x0a" + struct.pack(e + "I", 28) + b"\x11\x22\x33\x44" + b"\0" * 16,
        _blk("<", 0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
             + struct.pack("<HH", 3, 100)),  # SHB option overrunning the block
    ]
    for extra in range(1, 25):  # captured length past the block by a little (padding or not)
        body = struct.pack(e + "IIIII", 0, 1, 2, 4 + extra, 4) + b"abcd"
        tails.append(_blk(e, 6, body))
        tails.append(_blk(e, 2, struct.pack(e + "HHIIII", 0, 0, 1, 2, 4 + extra, 4) + b"abcd"))
    return tails


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_damage_catalogue(workdir: Path, big_endian: bool) -> None:
    """Every kind of damage after a few good frames: the walks stop at the same block."""
    e = ">" if big_endian else "<"
    out = io.BytesIO()
    w = PcapngWriter(out)
    w.section(big_endian=big_endian)
    w.interface(Interface(1, 3, 9, 0))
    w.enhanced_packet(10**18, 0, b"good")
    w.simple_packet(b"spb-data")
    head = out.getvalue()
    stopped = 0
    for tail in _damaged_pcapng_tails(e):
        for data in (head + tail, head + tail + _blk(e, 3, struct.pack(e + "I", 2) + b"zz")):
            path = _file(workdir, data, "pcapng")
            cols = check_chunk(whole_spec(path))
            stopped += len(cols) == 2
            path.unlink()
    assert stopped > 2 * 40


def test_pcap_record_limits(workdir: Path) -> None:
    """Records above max(snaplen, 262144) stop the walk; at the limit they are read."""
    for snaplen in (0, 65535, 300_000):
        limit = max(snaplen, 262144)
        for incl in (limit - 1, limit, limit + 1):
            recs = [(1, 2, b"x", 1), (3, 4, b"\0" * incl, incl), (5, 6, b"y", 1)]
            path = _file(workdir, _raw_pcap(False, False, snaplen, recs), "pcap")
            cols = check_chunk(whole_spec(path))
            assert len(cols) == (3 if incl <= limit else 1)
            path.unlink()
    recs = [(1, 2, b"x", 1)]
    for tail in (b"\0" * 15, struct.pack("<IIII", 1, 2, 10, 10) + b"short",
                 struct.pack("<IIII", 1, 2, 0xFFFFFFFF, 0)):
        path = _file(workdir, _raw_pcap(False, False, 0, recs) + tail, "pcap")
        assert len(check_chunk(whole_spec(path))) == 1
        path.unlink()
