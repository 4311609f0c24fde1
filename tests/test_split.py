"""The splitter: the compiled scan cuts exactly where the Python scan does, reports the same
problems, and every chunk starts on a record."""

from __future__ import annotations

import random

import pytest
from conftest import CAPTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlens_dist.capture import columns, split
from streamlens_dist.errors import CaptureFormatError
from streamlens_dist.synth import random_records, write_pcap


def both_scans(path, chunk_size, monkeypatch) -> tuple[split.FileScan, split.FileScan]:
    fast = split.scan_file(str(path), chunk_size)
    with monkeypatch.context() as m:
        m.setattr(columns, "_walk", None)
        slow = split.scan_file(str(path), chunk_size)
    return fast, slow


def same(a: split.FileScan, b: split.FileScan) -> None:
    assert (a.chunks, a.frames, a.first_ts, a.problems) == \
        (b.chunks, b.frames, b.first_ts, b.problems)


@pytest.mark.parametrize("path", sorted(CAPTURES.glob("*.pcap")), ids=lambda p: p.name)
def test_compiled_scan_equals_python_scan(path, monkeypatch) -> None:
    for size in (1, 700, 5000, 1 << 30):
        try:
            fast, slow = both_scans(path, size, monkeypatch)
        except CaptureFormatError:
            continue
        same(fast, slow)
        assert sum(c.frames for c in fast.chunks) == fast.frames


@given(st.integers(0, 2**32), st.integers(1, 120), st.integers(1, 20000), st.data())
@settings(max_examples=40, deadline=None)
def test_truncated_and_odd_files(tmp_path_factory, seed, n, size, data) -> None:
    rng = random.Random(seed)
    path = tmp_path_factory.mktemp("split") / "t.pcap"
    write_pcap(path, random_records(rng, n), nanosecond=rng.random() < 0.5,
               big_endian=rng.random() < 0.5)
    raw = bytearray(path.read_bytes())
    cut = data.draw(st.integers(24, len(raw)))
    if data.draw(st.booleans()):  # the first record's fraction out of range
        raw[28:32] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(raw[:cut]))
    mp = pytest.MonkeyPatch()
    try:
        fast, slow = both_scans(path, size, mp)
    finally:
        mp.undo()
    same(fast, slow)


def test_chunks_cover_the_file_in_order() -> None:
    plan = split.plan_capture([CAPTURES / "mixed_many_protocols_vlan_ipv6.pcap"], 64 * 1024)
    assert plan.chunks[0].start == 24 and plan.chunks[0].first_frame == 1
    for a, b in zip(plan.chunks, plan.chunks[1:], strict=False):
        assert a.end == b.start and a.first_frame + a.frames == b.first_frame
    assert sum(c.frames for c in plan.chunks) == plan.frames == 4709


def _events(paths: list, chunk_size: int, monkeypatch) -> tuple[list, split.CapturePlan]:
    """What plan_capture told on_chunk, and when the scans finished, in order."""
    events: list = []
    finish = split._Cutter.finish

    def finishing(self, end):  # noqa: ANN001, ANN202 - wraps the real method
        events.append("scan finished")
        return finish(self, end)

    monkeypatch.setattr(split._Cutter, "finish", finishing)
    plan = split.plan_capture(paths, chunk_size, on_chunk=events.append)
    return events, plan


@pytest.mark.parametrize("name", ["mixed_many_protocols_vlan_ipv6.pcap",
                                  "pcapng_comments_ether_and_sll.pcapng"])
def test_one_file_streams_its_chunks_while_scanning(name, monkeypatch) -> None:
    """One local file: each chunk reaches on_chunk as soon as it is cut (the engine starts
    its task then), and they are exactly the plan's chunks, once each, in order."""
    events, plan = _events([CAPTURES / name], 4096, monkeypatch)
    assert len(plan.chunks) > 3
    # all but the last chunk (cut when the scan finishes) were given while it was running
    assert events.index("scan finished") == len(plan.chunks) - 1
    assert [e for e in events if e != "scan finished"] == list(plan.chunks)


def test_several_files_give_their_chunks_once_planned(tmp_path, monkeypatch) -> None:
    """Files are put in capture order only once all are scanned: their chunks (renumbered)
    come after the scans, still once each and in order."""
    rng = random.Random(3)
    late, early = tmp_path / "a.pcap", tmp_path / "b.pcap"
    records = sorted(random_records(rng, 300))
    write_pcap(late, [(ts + 10**12, f) for ts, f in records])
    write_pcap(early, records)
    events, plan = _events([late, early], 4096, monkeypatch)
    assert plan.files == (str(early), str(late))
    assert events[:2] == ["scan finished"] * 2 and events[2:] == list(plan.chunks)
    assert [c.index for c in plan.chunks] == list(range(len(plan.chunks)))
