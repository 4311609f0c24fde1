"""Compressed captures (capture/compressed.py, README "Compressed captures"): analysing a
.gz/.zst/.lz4/.xz copy, single- or multi-member, gives the store of the plain file at any
chunk size, serially and on a local Dask cluster; damaged compressed data is a reported
problem, never a crash."""

from __future__ import annotations

import gzip
import json
import lzma
import random
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import lz4.frame
import pytest
import zstandard
from conftest import assert_tables_equal, real_captures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storeio import load_store

import streamlens_dist
from streamlens_dist.capture import compressed, split
from streamlens_dist.capture.records import COMPRESSED_DAMAGE
from streamlens_dist.chunktask import iter_frames
from streamlens_dist.synth import (
    Interface,
    flight_test_capture,
    flight_test_records,
    write_pcap,
    write_pcapng,
)

CLI = str(Path(sys.executable).parent / "streamlens-dist")
SUFFIX = {"gzip": ".gz", "zstd": ".zst", "lz4": ".lz4", "xz": ".xz"}
CODECS = tuple(SUFFIX)


def _member(data: bytes, codec: str) -> bytes:
    if codec == "gzip":
        return gzip.compress(data, mtime=0)
    if codec == "xz":  # preset 1: a 1 MiB dictionary; the default's 8 MiB costs ~2 ms per
        return lzma.compress(data, preset=1)  # decoder set up, and there is one per chunk here
    if codec == "zstd":
        return zstandard.ZstdCompressor(write_checksum=True).compress(data)
    return lz4.frame.compress(data, content_checksum=True)


def compress(data: bytes, codec: str, cuts: list[int] | int = 0) -> bytes:
    """`data` as concatenated members, cut at the given offsets (any byte, not records), or
    into `cuts` + 1 equal members when an int."""
    if isinstance(cuts, int):
        cuts = [len(data) * (i + 1) // (cuts + 1) for i in range(cuts)]
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return b"".join(_member(data[a:b], codec) for a, b in pairwise(bounds))


def write_compressed(src: Path, dst_dir: Path, codec: str, cuts: list[int] | int = 0) -> Path:
    dst = dst_dir / (src.name + SUFFIX[codec])
    dst.write_bytes(compress(src.read_bytes(), codec, cuts))
    return dst


def run(paths: list[Path], store: Path, chunk_size: int | str, **kw) -> tuple[dict, dict]:
    streamlens_dist.analyze([str(p) for p in paths], str(store), chunk_size=chunk_size,
                            overwrite=True, **kw)
    return load_store(store)


def same_result(got: tuple[dict, dict], want: tuple[dict, dict], where: str) -> None:
    assert_tables_equal(got[0], want[0], where)
    for k in ("frames", "first_ns", "last_ns", "untimed_frames", "undecodable_frames",
              "undecodable_first_frames", "malformed_payloads"):
        assert got[1][k] == want[1][k], (where, k)
    strip = [{k: v for k, v in p.items() if k != "file"} for p in want[1]["problems"]]
    assert [{k: v for k, v in p.items() if k != "file"} for p in got[1]["problems"]] == strip


# --- every real capture, every codec, single and multi-member ----------------------------------

@pytest.fixture(scope="module")
def plain_results(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("plain")
    return {size: run(real_captures(), tmp / f"p{size}.zarr", size, serial=True)
            for size in (1024, 64 << 20)}


@pytest.mark.parametrize("members", [1, 7])
@pytest.mark.parametrize("codec", CODECS)
def test_real_captures_compressed_equal_plain(tmp_path, plain_results, codec, members) -> None:
    files = [write_compressed(p, tmp_path, codec, members - 1) for p in real_captures()]
    for size, want in plain_results.items():
        got = run(files, tmp_path / "c.zarr", size, serial=True)
        same_result(got, want, f"{codec} x{members} at {size} B")
        assert got[1]["files"] == [str(tmp_path / (Path(f).name + SUFFIX[codec]))
                                   for f in want[1]["files"]]


def test_codec_is_found_by_magic_not_name(tmp_path) -> None:
    src = real_captures()[0]
    odd = tmp_path / "capture.bin"
    odd.write_bytes(compress(src.read_bytes(), "zstd", 2))
    liar = tmp_path / "plain.pcap.gz"
    liar.write_bytes(src.read_bytes())
    a, b = split.scan_file(str(odd), 1024), split.scan_file(str(liar), 1024)
    assert {c.codec for c in a.chunks} == {"zstd"} and {c.codec for c in b.chunks} == {""}
    assert a.frames == b.frames


# --- scan and chunk reads on a generated capture -------------------------------------------------

@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, tuple[dict, dict]]:
    tmp = tmp_path_factory.mktemp("gen")
    path = tmp / "flight.pcap"
    flight_test_capture(path, 4000, seed=7)
    return path, run([path], tmp / "plain.zarr", 1 << 30, serial=True)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(codec=st.sampled_from(CODECS), chunk=st.integers(1024, 256 << 10),
       cuts=st.lists(st.floats(0, 1), max_size=12), data=st.data())
def test_random_chunkings_and_members_equal_plain(tmp_path, generated, codec, chunk, cuts,
                                                   data) -> None:
    path, want = generated
    raw = path.read_bytes()
    comp = tmp_path / f"flight.pcap{SUFFIX[codec]}"
    comp.write_bytes(compress(raw, codec, [int(c * len(raw)) for c in cuts]))
    scan = split.scan_file(str(comp), chunk)
    # every chunk's bytes decompress to the plain file's bytes, frame for frame
    i = data.draw(st.integers(0, len(scan.chunks) - 1))
    spec = scan.chunks[i]
    assert spec.restart[1] <= spec.start
    want_frames = [f[:4] for f in iter_frames(split.ChunkSpec.from_dict(
        spec.to_dict() | {"codec": "", "restart": [0, 0], "path": str(path)}))]
    assert [f[:4] for f in iter_frames(split.ChunkSpec.from_dict(spec.to_dict()))] == want_frames
    same_result(run([comp], tmp_path / "c.zarr", chunk, serial=True), want, f"{codec} {chunk}")


def test_restart_points_and_chunk_policy(tmp_path, generated) -> None:
    path, _want = generated
    raw = path.read_bytes()
    one = tmp_path / "one.pcap.gz"
    one.write_bytes(compress(raw, "gzip"))
    many = tmp_path / "many.pcap.gz"
    many.write_bytes(compress(raw, "gzip", 40))
    plain = split.scan_file(str(path), 1024)
    single, multi = split.scan_file(str(one), 1024), split.scan_file(str(many), 1024)
    # one member: one restart point, at most MAX_CHUNKS_PER_RESTART chunks
    assert {c.restart for c in single.chunks} == {(0, 0)}
    assert len(single.chunks) == split.MAX_CHUNKS_PER_RESTART < len(plain.chunks)
    # many members: chunks restart near their start, no more than the policy per member
    restarts = [c.restart for c in multi.chunks]
    assert len(set(restarts)) == 41
    assert max(restarts.count(r) for r in set(restarts)) <= split.MAX_CHUNKS_PER_RESTART
    for s in (single, multi):
        assert s.chunks[0].start == plain.chunks[0].start
        assert s.chunks[-1].end == plain.chunks[-1].end and s.frames == plain.frames
        assert all(a.end == b.start for a, b in pairwise(s.chunks))
    # the wire form: plain chunks keep their old dict (and checkpoint keys), compressed ones
    # carry codec and restart point
    assert "codec" not in plain.chunks[0].to_dict()
    c = multi.chunks[-1]
    assert split.ChunkSpec.from_dict(c.to_dict()) == c and c.to_dict()["codec"] == "gzip"


def test_skippable_frames_and_zero_padding(tmp_path, generated) -> None:
    """pzstd-style skippable frames before each frame, xz stream padding."""
    path, want = generated
    raw = path.read_bytes()
    half = len(raw) // 2
    skip = (0x184D2A50).to_bytes(4, "little") + (4).to_bytes(4, "little") + b"\1\2\3\4"
    zst = tmp_path / "p.zst"
    zst.write_bytes(skip + _member(raw[:half], "zstd") + skip + _member(raw[half:], "zstd"))
    xz = tmp_path / "p.xz"
    xz.write_bytes(_member(raw[:half], "xz") + b"\0" * 8 + _member(raw[half:], "xz") + b"\0" * 4)
    for f in (zst, xz):
        same_result(run([f], tmp_path / "c.zarr", 4096, serial=True), want, f.name)


# --- rotated sets, serial and on Dask ----------------------------------------------------------

@pytest.fixture(scope="module")
def rotated(tmp_path_factory) -> tuple[list[Path], list[Path]]:
    """One capture as a .pcap and a .pcapng file; plain, and as .pcap + .pcapng.zst."""
    tmp = tmp_path_factory.mktemp("rot")
    records = list(flight_test_records(3000, seed=3))
    a, b = tmp / "cap_00001.pcap", tmp / "cap_00002.pcapng"
    write_pcap(a, records[:1400])
    write_pcapng(b, [(ts, 0, f) for ts, f in records[1400:]], [Interface(linktype=1, tsresol=9)])
    zst = tmp / "zst"
    zst.mkdir()
    return [a, b], [a, write_compressed(b, zst, "zstd", 5)]


def test_rotated_set_mixing_plain_and_compressed(tmp_path, rotated) -> None:
    plain, mixed = rotated
    want = run(plain, tmp_path / "p.zarr", 2048, serial=True)
    same_result(run(mixed, tmp_path / "m.zarr", 2048, serial=True), want, "mixed")
    assert want[1]["frames"] == 3000


def test_dask_run_on_compressed_set_equals_serial(tmp_path, rotated) -> None:
    _plain, mixed = rotated
    gz = write_compressed(mixed[0], tmp_path, "gzip", 3)
    files = [gz, mixed[1]]
    serial = run(files, tmp_path / "s.zarr", 4096, serial=True)
    same_result(run(files, tmp_path / "d.zarr", 4096, workers=2), serial, "dask")


def test_urls_are_read_through_fsspec(tmp_path, rotated) -> None:
    """A compressed object behind an fsspec URL: scanned from a fetched copy, each chunk read
    by seeking the object to its restart point (fsspec's in-memory filesystem here;
    tests/test_remote.py covers S3 itself)."""
    import fsspec

    plain, mixed = rotated
    fs = fsspec.filesystem("memory")
    url = f"memory://compressed-test/{mixed[1].name}"
    fs.pipe_file(url, mixed[1].read_bytes())
    try:
        want = run(plain, tmp_path / "p.zarr", 2048, serial=True)
        same_result(run([mixed[0], url], tmp_path / "u.zarr", 2048, serial=True), want, "url")
    finally:
        fs.rm(url)


# --- damaged compressed data ---------------------------------------------------------------------

def cli(store: Path, *paths: Path, as_json: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([CLI, "analyze", *map(str, paths), "-o", str(store), "--serial", "-q",
                        *(["--json"] if as_json else [])], capture_output=True, text=True,
                       timeout=180)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    return r


@pytest.mark.parametrize("codec", CODECS)
def test_truncated_compressed_file(tmp_path, generated, codec) -> None:
    path, _want = generated
    raw = path.read_bytes()
    blob = compress(raw, codec, 3)
    cut = tmp_path / f"cut.pcap{SUFFIX[codec]}"
    cut.write_bytes(blob[:len(blob) * 2 // 3])
    r = cli(tmp_path / "c.zarr", cut)
    assert r.returncode == 3, r.stderr
    attrs = json.loads(r.stdout)["attrs"]
    damage = [p for p in attrs["problems"] if p["kind"] == COMPRESSED_DAMAGE]
    assert len(damage) == 1 and damage[0]["file"] == str(cut), attrs["problems"]
    assert damage[0]["severity"] == "error" and "cut off" in damage[0]["message"]
    # the frames before the cut were analysed: the same as the decompressed prefix, plain
    prefix = tmp_path / "prefix.pcap"
    prefix.write_bytes(raw[:damage[0]["offset"]])
    want = run([prefix], tmp_path / "p.zarr", 1 << 20, serial=True)
    got = load_store(tmp_path / "c.zarr")
    assert_tables_equal(got[0], want[0], codec)
    assert 1000 < got[1]["frames"] == want[1]["frames"] < 4000


@pytest.mark.parametrize("codec", CODECS)
def test_corrupt_compressed_file_in_a_run(tmp_path, generated, codec) -> None:
    path, _want = generated
    raw = path.read_bytes()
    blob = bytearray(compress(raw, codec, 3))
    rnd = random.Random(codec)
    for _ in range(8):  # somewhere in the third member
        i = rnd.randrange(len(blob) * 5 // 9, len(blob) * 6 // 9)
        blob[i] ^= 0xFF
    bad = tmp_path / f"bad.pcap{SUFFIX[codec]}"
    bad.write_bytes(bytes(blob))
    other = real_captures()[0]
    r = cli(tmp_path / "c.zarr", bad, other, as_json=False)
    assert r.returncode == 3, r.stderr
    assert any(line.startswith(f"problem {COMPRESSED_DAMAGE} (error): {bad} at byte ")
               for line in r.stdout.splitlines()), r.stdout
    attrs = load_store(tmp_path / "c.zarr")[1]
    damage = [p for p in attrs["problems"] if p["kind"] == COMPRESSED_DAMAGE]
    assert len(damage) == 1 and damage[0]["file"] == str(bad), attrs["problems"]
    assert attrs["files"] == [str(bad), str(other)] or attrs["files"] == [str(other), str(bad)]
    # at least the two members before the damaged one were analysed
    assert attrs["frames"] > 2000 * 0.9


def test_compressed_files_that_are_not_captures(tmp_path) -> None:
    empty = tmp_path / "empty.gz"
    empty.write_bytes(gzip.compress(b""))
    text = tmp_path / "notes.txt.xz"
    text.write_bytes(lzma.compress(b"not a capture at all\n" * 10))
    twice = tmp_path / "twice.pcap.gz.xz"
    twice.write_bytes(lzma.compress(gzip.compress(real_captures()[0].read_bytes())))
    r = cli(tmp_path / "c.zarr", empty, text, twice, real_captures()[0])
    assert r.returncode == 3, r.stderr
    kinds = {p["file"]: (p["kind"], p["message"])
             for p in json.loads(r.stdout)["attrs"]["problems"]}
    assert kinds[str(empty)][0] == "file-not-capture" and "decompresses to nothing" in \
        kinds[str(empty)][1]
    assert kinds[str(text)][0] == "file-not-capture" and "xz" in kinds[str(text)][1]
    assert kinds[str(twice)] == ("file-not-capture", f"{twice}: gzip data inside xz data; "
                                 "decompress the outer layer first; this file was left out")


def test_changed_file_is_reported_not_misread(tmp_path, generated) -> None:
    path, _want = generated
    gz = tmp_path / "x.pcap.gz"
    gz.write_bytes(compress(path.read_bytes(), "gzip", 2))
    spec = split.scan_file(str(gz), 1 << 30).chunks[0]
    gz.write_bytes(gz.read_bytes()[:1000])
    assert compressed.read_range(str(gz), "gzip", spec.restart, spec.start, spec.end) is None
    with pytest.raises(streamlens_dist.errors.CaptureFormatError, match="did the file change"):
        list(iter_frames(spec))
