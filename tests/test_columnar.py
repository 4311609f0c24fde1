"""The columnar fast path gives exactly the per-frame classifier's records: on every real
capture, on random frame mixes, on damaged frames, with and without the compiled kernel."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import CAPTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlens_dist.capture.columns import record_columns
from streamlens_dist.capture.split import plan_capture
from streamlens_dist.chunktask import read_range
from streamlens_dist.dissect import columnar
from streamlens_dist.synth import pcap_bytes, random_records


def records(cls: columnar.FrameClasses) -> list[tuple]:
    return [(cls.keys[f] if f >= 0 else None, int(t), int(h), int(m))
            for f, t, h, m in zip(cls.flow, cls.ftype, cls.hints, cls.malformed, strict=True)]


def assert_same(buf: bytes, cols) -> columnar.FrameClasses:
    fast = columnar.classify_columns(buf, cols)
    slow = columnar.classify_columns(buf, cols, force_slow=True)
    assert slow.slow_frames == int((~cols.untimed).sum())
    got, want = records(fast), records(slow)
    bad = [i for i in range(len(got)) if got[i] != want[i]]
    assert not bad, f"frame index {bad[0]}: fast {got[bad[0]]} vs per-frame {want[bad[0]]}"
    return fast


def _capture_chunks(path) -> list:
    out = []
    for spec in plan_capture([path], 1 << 16).chunks:
        buf = read_range(spec.path, spec.start, spec.end)
        out.append((buf, record_columns(spec, buf)))
    return out


@pytest.mark.parametrize("path", sorted(p for p in CAPTURES.glob("*.pcap*")
                                        if "unsupported_version" not in p.name),
                         ids=lambda p: p.name)
def test_real_captures(path) -> None:
    for buf, cols in _capture_chunks(path):
        assert_same(buf, cols)


def test_fast_path_carries_the_common_frames() -> None:
    """Guard against a fast path that silently hands everything to the slow path."""
    for name in ("mixed_many_protocols_vlan_ipv6.pcap", "ch10udp_f3_cg0_stream.pcap",
                 "iena_m_two_packets.pcap", "ptpv2_l2_ethertype88f7.pcap"):
        for buf, cols in _capture_chunks(CAPTURES / name):
            assert assert_same(buf, cols).slow_frames == 0, name


def _columns_of(frames: list[bytes]) -> tuple[bytes, object]:
    from streamlens_dist.capture.records import Interface
    from streamlens_dist.capture.split import ChunkSpec

    data = pcap_bytes([(i * 1000, f) for i, f in enumerate(frames)], snaplen=1 << 20)
    spec = ChunkSpec(0, "<mem>", 24, len(data), 1, len(frames), "pcap", "<",
                     (Interface(1, 1 << 20, 6, 0),))
    buf = data[24:]
    return buf, record_columns(spec, buf)


@given(st.integers(0, 2**32), st.integers(1, 150))
@settings(max_examples=150, deadline=None)
def test_random_frame_mixes(seed: int, n: int) -> None:
    frames = [f for _ts, f in random_records(random.Random(seed), n)]
    assert_same(*_columns_of(frames))


def test_numpy_kernel_fallback_is_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = _capture_chunks(CAPTURES / "ch10udp_f3_cg0_stream.pcap")
    with_kernel = [records(columnar.classify_columns(b, c)) for b, c in chunks]
    monkeypatch.setattr(columnar, "_kernels", None)
    without = [records(columnar.classify_columns(b, c)) for b, c in chunks]
    assert with_kernel == without


def test_tmats_text_in_a_data_packet_goes_to_the_regex() -> None:
    from streamlens_dist.synth import ch10_udp, tmats_text, udp_frame

    text = tmats_text().encode()
    frame = udp_frame("10.0.0.1", "239.0.0.1", 5000, 5000,
                      ch10_udp(1, 0x00, 1, 0, b"\0\0\0\0" + text))
    buf, cols = _columns_of([frame])
    cls = assert_same(buf, cols)
    assert cls.ftype[0] == columnar.T["TMATS"]
    assert cls.slow_frames == 1
    assert np.all(cls.flow >= 0)
