"""Checkpointed chunk partials (`--checkpoint DIR`): found again only for the same file, chunk,
settings and versions; damaged entries are recomputed, never trusted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CAPTURES, assert_tables_equal
from storeio import load_store

import streamlens_dist
from streamlens_dist.capture.split import plan_capture
from streamlens_dist.checkpoint import Checkpoint
from streamlens_dist.chunktask import analyze_chunk
from streamlens_dist.settings import Settings
from streamlens_dist.synth import flight_test_capture

PTP = CAPTURES / "ptpv2_l2_ethertype88f7.pcap"


def _plan(path, chunk="2KiB"):
    return plan_capture([str(path)], Settings(chunk_size=chunk).chunk_size)


def test_round_trip_and_what_misses(tmp_path) -> None:
    cap = tmp_path / "c.pcap"
    cap.write_bytes(PTP.read_bytes())
    s = Settings(chunk_size="2KiB")
    plan = _plan(cap)
    assert len(plan.chunks) > 3
    ck = Checkpoint(tmp_path / "ck")
    spec = plan.chunks[2]
    assert ck.load(spec, s) is None
    data = analyze_chunk(spec, s)
    ck.save(spec, s, data)
    assert ck.load(spec, s) == data and ck.hits == 1 and ck.stored == 1
    assert ck.load(spec, Settings(chunk_size="2KiB", sigma="2.5")) == data  # sigma: after merge
    assert ck.load(spec, Settings(chunk_size="2KiB", iena_keys=[(1, "N", "")])) is None
    assert ck.load(plan.chunks[3], s) is None
    # the same bytes under another name are the same file content but another identity
    os.utime(cap, ns=(1, 1))
    assert Checkpoint(tmp_path / "ck").load(spec, s) is None


def test_damaged_entry_is_recomputed(tmp_path) -> None:
    s = Settings(chunk_size="2KiB")
    spec = _plan(PTP).chunks[1]
    ck = Checkpoint(tmp_path / "ck")
    ck.save(spec, s, analyze_chunk(spec, s))
    (entry,) = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "ck") for f in fs
                if f.endswith(".partial")]
    with open(entry, "r+b") as f:
        f.truncate(os.path.getsize(entry) // 2)
    assert Checkpoint(tmp_path / "ck").load(spec, s) is None
    with open(entry, "wb") as f:  # a valid partial of another chunk is refused too
        f.write(analyze_chunk(_plan(PTP).chunks[0], s))
    assert Checkpoint(tmp_path / "ck").load(spec, s) is None


def _cli(*args: str, **kw) -> subprocess.Popen:
    cli = str(Path(sys.executable).parent / "streamlens-dist")
    return subprocess.Popen([cli, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _entries(d: Path) -> int:
    return sum(1 for _ in d.rglob("*.partial")) if d.exists() else 0


@pytest.mark.timeout(300)
def test_killed_run_resumes_from_the_checkpoint(tmp_path) -> None:
    """Kill a checkpointed CLI run after some chunks are stored; the rerun computes only the
    missing chunks and writes the same store as an uninterrupted run."""
    cap = tmp_path / "ft.pcap"
    flight_test_capture(cap, 60_000, seed=9)
    ck = tmp_path / "ck"
    args = [str(cap), "--chunk-size", "64KiB", "--serial", "-q", "--json"]
    proc = _cli("analyze", *args, "-o", str(tmp_path / "a.zarr"), "--checkpoint", str(ck))
    deadline = time.monotonic() + 120
    while _entries(ck) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _entries(ck)
    assert stored >= 20 and not (tmp_path / "a.zarr").exists()
    total = len(plan_capture([str(cap)], 64 * 1024).chunks)
    assert stored < total, "the run finished before it could be killed: use a bigger capture"
    rerun = _cli("analyze", *args, "-o", str(tmp_path / "a.zarr"), "--checkpoint", str(ck))
    out, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err
    phases = json.loads(out)["phases"]
    assert phases["checkpoint_hits"] >= stored - 1  # a file being renamed at the kill
    assert phases["checkpoint_hits"] + phases["checkpoint_stored"] == total
    clean = _cli("analyze", *args, "-o", str(tmp_path / "clean.zarr"))
    clean.communicate(timeout=240)
    a, attrs_a = load_store(tmp_path / "a.zarr")
    b, attrs_b = load_store(tmp_path / "clean.zarr")
    assert_tables_equal(a, b)
    assert attrs_a["frames"] == attrs_b["frames"] == 60_000


@pytest.mark.timeout(300)
def test_dask_run_reuses_a_full_checkpoint(tmp_path) -> None:
    cap = tmp_path / "ft.pcap"
    flight_test_capture(cap, 8000, seed=4)
    ck = tmp_path / "ck"
    first = streamlens_dist.analyze(cap, tmp_path / "s.zarr", chunk_size="32KiB", serial=True,
                                    checkpoint=ck)
    assert first.phases["checkpoint_hits"] == 0 and first.phases["checkpoint_stored"] == first.chunks
    again = streamlens_dist.analyze(cap, tmp_path / "d.zarr", chunk_size="32KiB", workers=2,
                                    checkpoint=ck, sigma="2.5")
    assert again.phases["checkpoint_hits"] == again.chunks and again.phases["checkpoint_stored"] == 0
    ref = streamlens_dist.analyze(cap, tmp_path / "r.zarr", chunk_size="32KiB", serial=True,
                                  sigma="2.5")
    assert_tables_equal(load_store(tmp_path / "d.zarr")[0], load_store(tmp_path / "r.zarr")[0])
    assert ref.chunks == again.chunks > 4
