"""The compiled and numpy message extraction (payloads located by the classifier) give
exactly the messages of the per-frame definition `frame_messages`, on real, generated and
random frames; stream ids from the compiled interning equal the numpy ones."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import real_captures

from streamlens_dist.capture.columns import record_columns
from streamlens_dist.capture.split import plan_capture
from streamlens_dist.chunktask import map_range
from streamlens_dist.dissect.columnar import classify_columns
from streamlens_dist.dissect.streams import chunk_messages
from streamlens_dist.synth import flight_test_capture, random_records, write_pcap


def _both(path) -> tuple:
    plan = plan_capture([str(path)], 1 << 30)
    out = []
    for spec in plan.chunks:
        buf = map_range(spec.path, spec.start, spec.end)
        cols = record_columns(spec, buf)
        cls = classify_columns(buf, cols)
        if not hasattr(cls, "app_off"):
            pytest.skip("the classifier does not locate payloads")
        args = (buf, cols.offset, cols.caplen, cols.linktype, cls.ftype, cls.flow >= 0)
        compiled = chunk_messages(*args, cls.app_off, cls.app_len)
        vector = chunk_messages(*args, cls.app_off, cls.app_len, force_numpy=True)
        slow = chunk_messages(*args, None, None)
        _assert_same(compiled, vector, f"{path} compiled vs numpy")
        out.append((compiled, slow, int((cls.app_off >= 0).sum())))
    return out


def _assert_same(fast, slow, where: str) -> None:
    assert set(fast.cols) == set(slow.cols)
    for c in fast.cols:
        assert np.array_equal(fast.cols[c], slow.cols[c]), f"{where}: column {c}"
    assert fast.tmats == slow.tmats, where


@pytest.mark.parametrize("capture", real_captures(), ids=lambda p: p.name)
def test_real_captures(capture) -> None:
    for fast, slow, _located in _both(capture):
        _assert_same(fast, slow, capture.name)


def test_generated_flight_test_capture_uses_the_vector_path(tmp_path) -> None:
    cap = tmp_path / "ft.pcap"
    flight_test_capture(cap, 20_000, seed=3)
    (fast, slow, located), = _both(cap)
    _assert_same(fast, slow, "flight test")
    assert located > 15_000 and len(fast) > 15_000


@pytest.mark.parametrize("seed", range(6))
def test_random_frames(tmp_path, seed) -> None:
    cap = tmp_path / "r.pcap"
    write_pcap(cap, random_records(random.Random(seed), 3000))
    for fast, slow, _located in _both(cap):
        _assert_same(fast, slow, f"seed {seed}")


def test_compiled_interning_equals_numpy(tmp_path) -> None:
    from streamlens_dist import streamchunk

    cap = tmp_path / "ft.pcap"
    flight_test_capture(cap, 5000, seed=5)
    plan = plan_capture([str(cap)], 1 << 30)
    spec = plan.chunks[0]
    buf = map_range(spec.path, spec.start, spec.end)
    cols = record_columns(spec, buf)
    cls = classify_columns(buf, cols)
    cm = chunk_messages(buf, cols.offset, cols.caplen, cols.linktype, cls.ftype, cls.flow >= 0,
                        cls.app_off, cls.app_len)
    if streamchunk._messages is None:
        pytest.skip("compiled kernel not built")
    sid, keys, order = streamchunk.stream_ids(cm, cls.flow, cls.keys)
    saved, streamchunk._messages = streamchunk._messages, None
    try:
        sid2, keys2, order2 = streamchunk.stream_ids(cm, cls.flow, cls.keys)
    finally:
        streamchunk._messages = saved
    # ids are numbered differently; the partition and the stream order must agree
    assert [keys[s] for s in sid.tolist()] == [keys2[s] for s in sid2.tolist()]
    assert np.array_equal(np.sort(sid[order], kind="stable") == sid[order], np.ones(len(sid), bool))
    assert [keys[s] for s in sid[order].tolist()] != [] and len(set(keys)) == len(keys)
    for ordr, ids in ((order, sid), (order2, sid2)):  # stable: message order within a stream
        grouped = ids[ordr]
        same = grouped[1:] == grouped[:-1]
        assert (np.diff(ordr)[same] > 0).all()
