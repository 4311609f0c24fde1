"""Engine-level checks of protocol streams on small hand-built captures whose answer is known
by construction (docs/STREAMS.md): shared Chapter 10 channel counters, multi-packet datagrams,
and identical tables for every chunking and for a real Dask run."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_tables_equal
from storeio import load_store

import streamlens_dist
from streamlens_dist.synth import write_pcap
from streamlens_dist.synth.ch10 import ch10_packet, ch10_transfer
from streamlens_dist.synth.frames import udp_frame

STREAM_TABLES = ("streams", "stream_outliers", "sequence_gaps", "tmats", "ptp_grandmasters")


def _datagram(packets: list[bytes], udp_seq: int) -> bytes:
    return udp_frame("10.0.0.1", "239.1.1.1", 5000, 6000,
                     ch10_transfer(1, b"".join(packets), udp_seq=udp_seq))


def _shared_counter_capture(path) -> None:
    """Channel 0 numbers events (0x02) and index (0x03) packets in one series, 0..39 with
    number 17 missing; channel 5 (PCM 0x09) rides along in the same datagrams, 0..39 with
    a wrap-free duplicate of 30."""
    records, t, udp_seq = [], 1_700_000_000 * 10**9, 0
    ch5 = [*range(31), 30, *range(31, 40)]
    for i in range(40):
        pkts = []
        if i != 17:
            pkts.append(ch10_packet(0x02 if i % 3 else 0x03, 0, i, b"\0" * 8))
        pkts.append(ch10_packet(0x09, 5, ch5[i], b"\1" * 12))
        records.append((t, _datagram(pkts, udp_seq)))
        udp_seq, t = udp_seq + 1, t + 10_000_000
    records.append((t, _datagram([ch10_packet(0x09, 5, ch5[40], b"\1" * 12)], udp_seq)))
    write_pcap(path, records)


def test_chapter10_channel_counter_is_shared_by_its_data_types(tmp_path) -> None:
    cap = tmp_path / "c.pcap"
    _shared_counter_capture(cap)
    base = None
    for chunk in ("1KiB", "2KiB", "64MiB"):
        store = tmp_path / f"{chunk}.zarr"
        streamlens_dist.analyze(cap, store, chunk_size=chunk, serial=True)
        t, _ = load_store(store)
        tables = {k: t[k] for k in STREAM_TABLES}
        if base is None:
            base = tables
        else:
            assert_tables_equal(tables, base, where=chunk)
    s = base["streams"]
    rows = {str(x): i for i, x in enumerate(s["stream"])}
    ev, ix, pcm = rows["ch 0x0000 type 0x02"], rows["ch 0x0000 type 0x03"], rows["ch 0x0005 type 0x09"]
    # one counter for channel 0: 39 numbers received of 40, one gap, nothing else
    for r in (ev, ix):
        assert (s["received"][r], s["expected"][r], s["lost"][r], s["gap_count"][r],
                s["duplicated"][r], s["out_of_order"][r]) == (39, 40, 1, 1, 0, 0)
    assert int(s["messages"][ev]) + int(s["messages"][ix]) == 39
    assert (s["received"][pcm], s["duplicated"][pcm], s["lost"][pcm]) == (41, 1, 0)
    g = base["sequence_gaps"]
    assert len(g["stream_row"]) == 1
    # the message after the gap is number 18: an events packet (18 % 3 == 0 -> index 0x03)
    assert int(g["stream_row"][0]) == ix and (int(g["seq_before"][0]), int(g["seq_after"][0]),
                                              int(g["missing"][0])) == (16, 18, 1)
    assert int(g["frame_before"][0]) == 17 and int(g["frame_after"][0]) == 19
    assert int(g["span_ns"][0]) == 20_000_000
    udp = rows["fmt 1"]
    assert (s["messages"][udp], s["lost"][udp], s["gap_count"][udp]) == (41, 0, 0)


@pytest.mark.timeout(300)
def test_dask_run_equals_serial(tmp_path) -> None:
    cap = tmp_path / "c.pcap"
    _shared_counter_capture(cap)
    serial = tmp_path / "s.zarr"
    streamlens_dist.analyze(cap, serial, chunk_size="1KiB", serial=True)
    dist = tmp_path / "d.zarr"
    streamlens_dist.analyze(cap, dist, chunk_size="1KiB", workers=2)
    a, _ = load_store(serial)
    b, _ = load_store(dist)
    assert_tables_equal(a, b)
    assert np.sum(a["streams"]["messages"]) > 0


@pytest.mark.parametrize("nibble", [0, 4, 8, 9, 15])
def test_format3_source_id_width_any_nibble(tmp_path, nibble) -> None:
    """Format 3 keeps 32 - 4L sequence bits; L >= 8 leaves none (STREAMS.md §1), never a
    crash, and the engine equals the reference."""
    from reference import reference_analyze

    records, t = [], 1_600_000_000 * 10**9
    for i in range(6):
        word = (0xABCD1234 + i) & 0xFFFFFFFF
        payload = bytes([0x03 | nibble << 4, 0, 0, 0]) + word.to_bytes(4, "little") + \
            ch10_packet(0x09, 7, i, b"\0" * 8)
        records.append((t + i * 1000, udp_frame("10.0.0.2", "239.0.0.9", 1, 2, payload)))
    cap = tmp_path / "f3.pcap"
    write_pcap(cap, records)
    store = tmp_path / "f3.zarr"
    streamlens_dist.analyze(cap, store, serial=True, chunk_size="1KiB")
    t_, _ = load_store(store)
    ref = reference_analyze([cap])
    assert_tables_equal({k: t_[k] for k in STREAM_TABLES}, {k: ref[k] for k in STREAM_TABLES})
    s = t_["streams"]
    udp = [i for i, p in enumerate(s["protocol"]) if str(p) == "CH10-UDP"]
    assert len(udp) >= 1 and int(s["seq_bits"][udp[0]]) == max(0, 32 - 4 * nibble)


def test_numpy_fallback_equals_compiled(tmp_path, monkeypatch) -> None:
    """Without the compiled message and stream passes (no C compiler at install) the stores
    are identical."""
    from streamlens_dist import streamchunk
    from streamlens_dist.dissect import streams
    from streamlens_dist.synth import telemetry_capture

    cap = tmp_path / "t.pcap"
    telemetry_capture(cap, seed=11, n_messages=150)
    stores = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(streams, "_messages", None)
            monkeypatch.setattr(streamchunk, "_messages", None)
            monkeypatch.setattr(streamchunk, "_streams", None)
        store = tmp_path / f"{compiled}.zarr"
        streamlens_dist.analyze(cap, store, chunk_size="8KiB", serial=True)
        stores.append(load_store(store)[0])
    assert_tables_equal(stores[0], stores[1])
    assert len(stores[0]["sequence_gaps"]["frame_after"]) > 0
