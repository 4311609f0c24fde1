"""Checkpointed chunk partials (`--checkpoint DIR`): found again only for the same file, chunk,
settings and versions; damaged entries are recomputed, never trusted."""

from __future__ import annotations

import os

from conftest import CAPTURES

from streamlens_dist.capture.split import plan_capture
from streamlens_dist.checkpoint import Checkpoint
from streamlens_dist.chunktask import analyze_chunk
from streamlens_dist.settings import Settings

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
    (entry,) = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "ck") for f in fs]
    with open(entry, "r+b") as f:
        f.truncate(os.path.getsize(entry) // 2)
    assert Checkpoint(tmp_path / "ck").load(spec, s) is None
    with open(entry, "wb") as f:  # a valid partial of another chunk is refused too
        f.write(analyze_chunk(_plan(PTP).chunks[0], s))
    assert Checkpoint(tmp_path / "ck").load(spec, s) is None
