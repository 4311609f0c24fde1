"""The compiled stream pass (_streams.c) gives exactly the stream parts of the numpy path, key
order included (the partial's wire bytes): on random message columns, on timestamps too far
apart for int64 IATs (the pass declines and the exact path runs), and chunk by chunk on every
real capture and a generated flight-test capture."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import real_captures
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlens_dist import streamchunk
from streamlens_dist.capture.split import plan_capture
from streamlens_dist.chunktask import analyze_chunk
from streamlens_dist.dissect.names import TYPE_NAMES
from streamlens_dist.dissect.streams import MESSAGE_COLUMNS, ChunkMessages
from streamlens_dist.partial import Partial
from streamlens_dist.scopestats import TS_LIMIT
from streamlens_dist.settings import Settings
from streamlens_dist.synth import flight_test_capture
from streamlens_dist.wire import partial_from_bytes, partial_to_bytes

pytestmark = pytest.mark.skipif(streamchunk._streams is None,
                                reason="the compiled stream pass is not built")

FIELDS = ("streams", "stream_tops", "seq", "counters", "sync", "grandmasters")


def _parts(compiled: bool, cm: ChunkMessages, frame, ts, flow, ftype, keys) -> dict:
    saved = streamchunk._streams
    if not compiled:
        streamchunk._streams = None
    try:
        p = Partial()
        streamchunk.accumulate_streams(p, cm, frame, ts, flow, ftype, keys)
    finally:
        streamchunk._streams = saved
    return {f: list(getattr(p, f).items()) for f in FIELDS}


@st.composite
def chunks(draw: st.DrawFn) -> tuple:
    """Frames of a few flows with 0-3 messages each: few distinct ids so that streams repeat,
    narrow counters so that sequence numbers wrap, IENA frames of several types."""
    n = draw(st.integers(1, 40))
    nflows = draw(st.integers(1, 3))
    flow = np.array(draw(st.lists(st.integers(0, nflows - 1), min_size=n, max_size=n)),
                    np.int32)
    ftype = np.array(draw(st.lists(st.integers(0, len(TYPE_NAMES) - 1), min_size=n,
                                   max_size=n)), np.int16)
    steps = draw(st.lists(st.integers(-1000, 10**9), min_size=n, max_size=n))
    ts = draw(st.integers(-2**40, 2**40)) + np.cumsum(np.array(steps, np.int64))
    rows = []
    for r in range(n):
        for pos in range(draw(st.integers(0, 3))):
            bits = draw(st.sampled_from([0, 2, 3, 8, 16, 32]))
            rows.append((r, pos, draw(st.integers(0, 4)), draw(st.integers(0, 2)),
                         draw(st.sampled_from([0, 1, 8, 11])),
                         draw(st.sampled_from([0, -5, 2**62])), draw(st.integers(0, 1)),
                         draw(st.integers(0, (1 << bits) - 1)), bits,
                         draw(st.integers(0, 200)), draw(st.sampled_from([0, 1, 0x0101])),
                         draw(st.integers(0, 1)), draw(st.integers(0, 2)),
                         draw(st.sampled_from([-1, 0, 1, -2**63]))))
    cols = np.array(rows, np.int64).reshape(-1, len(MESSAGE_COLUMNS)).T
    cm = ChunkMessages({c: np.ascontiguousarray(cols[i]) for i, c in enumerate(MESSAGE_COLUMNS)},
                       [])
    keys = [(f"10.0.0.{i}", "10.0.0.9", "ip4") for i in range(nflows)]
    return cm, 100 + np.arange(n, dtype=np.int64), ts, flow, ftype, keys


@settings(max_examples=400, deadline=None)
@given(chunks())
def test_random_messages(chunk) -> None:
    assert _parts(True, *chunk) == _parts(False, *chunk)


def test_only_segment_continuations() -> None:
    """No sequence state at all: continuations repeat their packet's number."""
    n = 3
    cols = {c: np.zeros(n, np.int64) for c in MESSAGE_COLUMNS}
    cols["row"] = np.arange(n, dtype=np.int64)
    cols["segment"][:] = 2
    cols["bits"][:] = 24
    chunk = (ChunkMessages(cols, []), np.arange(n, dtype=np.int64), np.arange(n) * 10,
             np.zeros(n, np.int32), np.zeros(n, np.int16), [("a", "b", "ip4")])
    parts = _parts(True, *chunk)
    assert parts == _parts(False, *chunk) and parts["seq"] == [] and len(parts["streams"]) == 1


@settings(max_examples=50, deadline=None)
@given(chunks().filter(lambda c: len(c[0]) > 0))
def test_far_apart_timestamps_take_the_exact_path(chunk) -> None:
    cm, frame, ts, flow, ftype, keys = chunk
    ts = ts.copy()
    ts[cm.cols["row"][-1]] = TS_LIMIT + 1
    c = cm.cols
    assert streamchunk._streams.accumulate(
        flow, frame, ts, ftype, *(c[x] for x in streamchunk._PASS_COLUMNS), 2.0, 8) is None
    assert _parts(True, cm, frame, ts, flow, ftype, keys) == \
        _parts(False, cm, frame, ts, flow, ftype, keys)


def _chunk_bytes(path, chunk_size: int, monkeypatch, compiled: bool) -> list[bytes]:
    with monkeypatch.context() as m:
        if not compiled:
            m.setattr(streamchunk, "_streams", None)
        out = []
        for spec in plan_capture([str(path)], chunk_size).chunks:
            p = partial_from_bytes(analyze_chunk(spec, Settings()))
            p.profile = {}
            out.append(partial_to_bytes(p))
        return out


@pytest.mark.parametrize("capture", real_captures(), ids=lambda p: p.name)
def test_real_captures(capture, monkeypatch) -> None:
    for size in (4096, 1 << 30):
        assert _chunk_bytes(capture, size, monkeypatch, True) == \
            _chunk_bytes(capture, size, monkeypatch, False), f"{capture.name} {size}"


def test_flight_test_capture(tmp_path, monkeypatch) -> None:
    cap = tmp_path / "ft.pcap"
    flight_test_capture(cap, 20_000, seed=7)
    for size in (64 << 10, 1 << 30):
        assert _chunk_bytes(cap, size, monkeypatch, True) == \
            _chunk_bytes(cap, size, monkeypatch, False)
