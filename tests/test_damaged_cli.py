"""Damaged input through the command line, as a user meets it (README "Damaged input"):
every damaged capture in tests/captures, the Chapter 10 recordings, files that are not
captures, empty, missing or unreadable, runs where one file of several is bad, cut-off and
corrupted copies of real captures, and a small fuzz corpus. Always: no traceback, the
documented exit status (0 clean, 3 completed with data problems, 1 failed), and every
problem named with its file, byte offset and frame number."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import CAPTURES, assert_tables_equal
from storeio import load_store

CLI = str(Path(sys.executable).parent / "streamlens-dist")
GOOD = CAPTURES / "ptpv2_l2_gptp_pdelay.pcap"  # 38 frames
OTHER = CAPTURES / "ntp_client_server.pcap"  # 8 frames


def run(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    r = subprocess.run([*prefix, CLI, *args], capture_output=True, text=True, timeout=180)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    return r


def analyze(store: Path, *paths: Path | str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return run("analyze", *map(str, paths), "-o", str(store), "--serial", "-q", *extra)


def failed_cleanly(r: subprocess.CompletedProcess, store: Path, *words: str) -> None:
    """Exit 1, one line on stderr naming the problem, nothing written."""
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not store.exists()
    assert not list(store.parent.glob(f".{store.name}.incomplete*"))


def problem_lines(r: subprocess.CompletedProcess) -> list[str]:
    return [line for line in r.stdout.splitlines() if line.startswith("problem ")]


# --- the damaged captures shipped with the project -------------------------------------------

# (name, exit status, [(severity, kind, byte offset, frame)], malformed payloads), from the
# descriptions in tests/captures/PROVENANCE.md
DAMAGED = [
    ("corrupt_bad_usec_huge_origlen_fuzz.pcap", 3, [("warning", "timestamp", 24, 1)], {}),
    ("corrupt_invalid_nsec_timestamps.pcap", 3, [("warning", "timestamp", 116, 2)], {}),
    ("corrupt_iena_d_bad_length.pcap", 3, [], {"IENA-size": 3}),
]


@pytest.mark.parametrize("name, status, problems, malformed", DAMAGED, ids=lambda v: str(v))
def test_damaged_captures(tmp_path: Path, name: str, status: int, problems: list,
                          malformed: dict) -> None:
    store = tmp_path / "d.zarr"
    r = analyze(store, CAPTURES / name)
    assert r.returncode == status, r.stderr
    attrs = load_store(store)[1]
    assert attrs["complete"] is True
    assert [(p["severity"], p["kind"], p["offset"], p["frame"]) for p in attrs["problems"]] \
        == problems
    assert all(p["file"] == str(CAPTURES / name) for p in attrs["problems"])
    assert attrs["malformed_payloads"] == malformed
    # the summary names each problem with its file, offset and frame
    lines = problem_lines(r)
    assert len(lines) == len(problems)
    for line, (sev, kind, offset, frame) in zip(lines, problems, strict=True):
        assert line.startswith(f"problem {kind} ({sev}): {CAPTURES / name} at byte {offset} "
                               f"(frame {frame})")
    if malformed:
        assert "malformed payloads" in r.stdout and "IENA-size" in r.stdout


@pytest.mark.parametrize("name, words", [
    ("corrupt_truncated_nsec_fuzz.pcap", ("corrupt-record at byte 24",)),
    ("corrupt_pcapng_shb_option_too_long.pcapng", ("corrupt-block at byte 0",))])
def test_damaged_before_the_first_frame_fails(tmp_path: Path, name: str, words: tuple) -> None:
    """Nothing could be analysed: the same outcome as a file that is not a capture (no
    empty store that reads like a result)."""
    store = tmp_path / "d.zarr"
    failed_cleanly(analyze(store, CAPTURES / name), store, name, "no frame to analyse", *words)


def test_unsupported_pcap_version_fails(tmp_path: Path) -> None:
    store = tmp_path / "v.zarr"
    r = analyze(store, CAPTURES / "corrupt_pcap_unsupported_version_1_4.pcap")
    failed_cleanly(r, store, "corrupt_pcap_unsupported_version_1_4.pcap", "version 1.4")


@pytest.mark.parametrize("path", sorted((CAPTURES / "ch10files").glob("*.c10")), ids=lambda p: p.name)
def test_chapter10_recordings_are_not_captures(tmp_path: Path, path: Path) -> None:
    store = tmp_path / "c.zarr"
    failed_cleanly(analyze(store, path), store, path.name, "Chapter 10 recording")


# --- files that are not captures -----------------------------------------------------------------

def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str, str]]:
    """name -> (path, problem kind, words of its message)"""
    text = tmp_path / "notes.pcap"
    text.write_text("flight 42: recorder B lost power at 10:42\n")
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    short = tmp_path / "short.pcap"
    short.write_bytes(GOOD.read_bytes()[:10])
    fifo = tmp_path / "live.pcap"
    os.mkfifo(fifo)
    return {
        "text": (text, "file-not-capture", "not a pcap or pcapng capture"),
        "empty": (empty, "file-not-capture", "empty file"),
        "short header": (short, "file-not-capture", "cut short"),
        "missing": (tmp_path / "missing.pcap", "file-missing", "not found"),
        "glob matching nothing": (tmp_path / "nothing-*.pcap", "file-missing", "no capture file"),
        "directory": (tmp_path, "file-unreadable", "is a directory"),
        "fifo": (fifo, "file-unreadable", "not a regular file"),
    }


BAD_KINDS = ["text", "empty", "short header", "missing", "glob matching nothing", "directory",
             "fifo"]


# missing, glob, directory and not-a-capture alone are in test_cli.py
@pytest.mark.parametrize("kind", ["empty", "short header", "fifo"])
def test_bad_file_alone_fails_with_one_line(tmp_path: Path, kind: str) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    path, _kind, words = _bad_files(inputs)[kind]
    store = tmp_path / "x.zarr"
    failed_cleanly(analyze(store, path), store, words)


def test_one_bad_file_among_good_ones(tmp_path: Path) -> None:
    """Every kind of bad file in one run with two good captures: the good ones are analysed
    exactly as on their own, each bad one is one problem line naming it, exit status 3."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    bad = _bad_files(inputs)
    store, alone = tmp_path / "mixed.zarr", tmp_path / "alone.zarr"
    r = analyze(store, GOOD, *(bad[k][0] for k in BAD_KINDS), OTHER, extra=("--json",))
    assert r.returncode == 3, r.stderr
    attrs = json.loads(r.stdout)["attrs"]
    assert sorted(attrs["files"]) == sorted([str(GOOD), str(OTHER)])
    got = {p["file"]: p for p in attrs["problems"]}
    assert len(got) == len(BAD_KINDS) == len(attrs["problems"])
    for path, kind, words in bad.values():
        p = got[str(path)]
        assert (p["kind"], p["offset"], p["frame"], p["severity"]) == (kind, 0, 0, "error")
        assert words in p["message"] and str(path) in p["message"]
    assert analyze(alone, GOOD, OTHER).returncode == 0
    (t_mixed, a_mixed), (t_alone, a_alone) = load_store(store), load_store(alone)
    assert a_mixed["complete"] is True and a_mixed["frames"] == a_alone["frames"] == 46
    assert_tables_equal(t_mixed, t_alone)
    # the plain summary: one line per bad file, naming it
    r = analyze(tmp_path / "plain.zarr", GOOD, bad["missing"][0], bad["text"][0])
    assert r.returncode == 3
    lines = problem_lines(r)
    assert len(lines) == 2
    assert any(line.startswith("problem file-missing (error): ") and str(bad["missing"][0]) in line
               for line in lines)
    assert any(line.startswith("problem file-not-capture (error): ") and str(bad["text"][0]) in line
               for line in lines)


def test_every_file_bad_fails_with_one_line(tmp_path: Path) -> None:
    bad = _bad_files(tmp_path)
    store = tmp_path / "none.zarr"
    r = analyze(store, bad["empty"][0], bad["missing"][0], bad["text"][0])
    failed_cleanly(r, store, "none of the 3 inputs", "empty.pcap", "missing.pcap", "notes.pcap")


def _as_nobody() -> tuple[str, ...] | None:
    """A command prefix that drops root's right to read any file, or None (not root: a
    chmod 000 file is already unreadable). Root keeps its uid and loses only the capabilities
    that bypass file modes, so it still reaches a checkout under a directory of mode 0700
    (as `mktemp -d` makes), which another user could not."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search", "--")


def test_unreadable_file(tmp_path: Path) -> None:
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    # a directory the unprivileged user can use (pytest's tmp_path is root's alone)
    work = Path(tempfile.mkdtemp(prefix="streamlens-unreadable-"))
    try:
        work.chmod(0o777)
        secret = work / "secret.pcap"
        shutil.copy(GOOD, secret)
        secret.chmod(0)
        store = work / "u.zarr"
        r = run("analyze", str(secret), str(OTHER), "-o", str(store), "--serial", "-q",
                "--json", prefix=prefix)
        assert r.returncode == 3, r.stderr
        attrs = json.loads(r.stdout)["attrs"]
        [p] = attrs["problems"]
        assert (p["file"], p["kind"], p["frame"]) == (str(secret), "file-unreadable", 0)
        assert "Permission denied" in p["message"]
        assert attrs["frames"] == 8
        store2 = work / "alone.zarr"
        failed_cleanly(run("analyze", str(secret), "-o", str(store2), "--serial", "-q",
                           prefix=prefix), store2, "secret.pcap", "cannot be read")
    finally:
        secret.chmod(stat.S_IRUSR | stat.S_IWUSR)
        shutil.rmtree(work, ignore_errors=True)


# --- damaged copies of real captures -----------------------------------------------------------

def _records(data: bytes) -> list[tuple[int, int]]:
    """(offset, length with header) of the records of an undamaged little-endian pcap."""
    out, pos = [], 24
    while pos + 16 <= len(data):
        n = 16 + struct.unpack_from("<I", data, pos + 8)[0]
        out.append((pos, n))
        pos += n
    return out


def test_truncated_last_record_is_a_warning(tmp_path: Path) -> None:
    """The recorder lost power mid-record: everything before it is analysed, exit 3, one
    warning naming the file, the byte offset and the frame of the cut record."""
    data = GOOD.read_bytes()
    recs = _records(data)
    off, n = recs[20]
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:off + n // 2])
    whole = tmp_path / "whole.pcap"
    whole.write_bytes(data[:off])
    r = analyze(tmp_path / "cut.zarr", cut)
    assert r.returncode == 3, r.stderr
    [line] = problem_lines(r)
    assert line.startswith(f"problem truncated (warning): {cut} at byte {off} (frame 21): "
                           f"record header claims {n - 16} captured bytes, only {n // 2 - 16} "
                           "follow")
    assert "everything before it was analysed" in line
    assert analyze(tmp_path / "whole.zarr", whole).returncode == 0
    (t_cut, a_cut), (t_whole, a_whole) = load_store(tmp_path / "cut.zarr"), \
        load_store(tmp_path / "whole.zarr")
    assert a_cut["frames"] == a_whole["frames"] == 20 and a_cut["complete"] is True
    assert_tables_equal(t_cut, t_whole)


def test_corrupt_record_in_the_middle_resumes_after_it(tmp_path: Path) -> None:
    """An impossible record length in the middle of a rotated set's first file, analysed
    on a local Dask cluster in 1 KiB chunks: one record lost, the skipped bytes reported,
    everything else as if that record had never been written."""
    data = bytearray(GOOD.read_bytes())
    off, n = _records(bytes(data))[10]
    data[off + 8:off + 12] = struct.pack("<I", 0x7FFFFFFF)
    damaged = tmp_path / "cap_00001.pcap"
    damaged.write_bytes(bytes(data))
    without = tmp_path / "without.pcap"
    without.write_bytes(bytes(data[:off]) + bytes(data[off + n:]))
    r = run("analyze", str(damaged), str(OTHER), "-o", str(tmp_path / "d.zarr"), "-q",
            "--workers", "1", "--chunk-size", "1KiB", "--json")
    assert r.returncode == 3, r.stderr
    attrs = json.loads(r.stdout)["attrs"]
    [p] = attrs["problems"]
    base = 8 if attrs["files"][0] == str(OTHER) else 0  # frames are numbered across the set
    assert (p["file"], p["kind"], p["offset"], p["frame"], p["skipped"]) == \
        (str(damaged), "corrupt-record", off, base + 11, n)
    assert f"skipped {n} bytes" in p["message"]
    assert analyze(tmp_path / "w.zarr", without, OTHER).returncode == 0
    (t_d, a_d), (t_w, a_w) = load_store(tmp_path / "d.zarr"), load_store(tmp_path / "w.zarr")
    assert a_d["frames"] == a_w["frames"] == 45
    assert_tables_equal(t_d, t_w)


def _fuzz_corpus(out: Path, n: int, seed: int = 4) -> list[Path]:
    """Deterministic mutations of real captures: cuts, header flips, garbage."""
    rng = random.Random(seed)
    names = ["ptpv2_l2_gptp_pdelay.pcap", "iena_d_random_keys.pcap", "usec_bigendian_pptp.pcap",
             "pcapng_multi_section_mixed_endian.pcapng", "pcapng_comments_ether_and_sll.pcapng",
             "ch10udp_f1_arinc429_random_hdrs.pcap"]
    files = []
    for i in range(n):
        name = names[i % len(names)]
        data = bytearray((CAPTURES / name).read_bytes())
        how = ("cut", "flip", "garbage")[i % 3]
        if how == "cut":
            data = data[:rng.randrange(40, len(data))]
        elif how == "flip":
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(24, len(data))] = rng.randrange(256)
        else:
            at = rng.randrange(40, len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
        path = out / f"fuzz_{i:02d}_{how}_{name}"
        path.write_bytes(bytes(data))
        files.append(path)
    return files


def test_fuzz_corpus_through_the_cli(tmp_path: Path) -> None:
    corpus = _fuzz_corpus(tmp_path, 12)
    # each file on its own (a few), then all of them as one run
    for path in corpus[:2]:
        r = analyze(tmp_path / f"{path.stem}.zarr", path, extra=("--json",))
        assert r.returncode in (0, 1, 3), r.stderr
        if r.returncode == 1:
            assert len(r.stderr.strip().splitlines()) == 1 and path.name in r.stderr
            continue
        attrs = json.loads(r.stdout)["attrs"]
        assert (r.returncode == 3) == bool(attrs["problems"] or attrs["malformed_payloads"])
    r = analyze(tmp_path / "all.zarr", *corpus, extra=("--json",))
    assert r.returncode == 3, r.stderr
    attrs = json.loads(r.stdout)["attrs"]
    assert attrs["problems"]
    for p in attrs["problems"]:
        assert Path(p["file"]) in corpus
        assert p["kind"] and p["severity"] in ("warning", "error") and p["message"]
        assert 0 <= p["offset"] <= Path(p["file"]).stat().st_size
        assert p["frame"] >= (0 if p["kind"].startswith("file-") else 1)
    assert load_store(tmp_path / "all.zarr")[1]["complete"] is True


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    """An output path under a file (or a read-only place) is a one-line error, exit 1."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    r = analyze(blocker / "out.zarr", GOOD)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("error: ")
