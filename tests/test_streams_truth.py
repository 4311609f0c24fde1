"""Protocol streams (docs/STREAMS.md): the stream oracle (tests/reference_streams.py) against

(a) the ground truth of generated telemetry captures (streamlens_dist.synth.telemetry), which
    knows what it sent: losses, duplicates, swaps, displacements, counter wraps;
(b) hand-made tiny captures with known answers (wraps, 1,2,4,3,5, duplicates, 32-bit wrap,
    the seq_irregular limit, the Chapter 10 walk, continuations, PTP pairing, grandmasters,
    TMATS, IENA key maps, outliers);
(c) the real captures, against facts from PROVENANCE.md and tshark;
(d) the engine's store, for generated captures at random chunk sizes and for the real
    captures (active once the store layout has the stream tables).
"""

from __future__ import annotations

import random
import struct

import pytest
from conftest import CAPTURES, assert_tables_equal, real_captures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import reference_analyze
from reference_streams import (
    GAP_COLUMNS,
    GRANDMASTER_COLUMNS,
    STREAM_COLUMNS,
    STREAM_OUTLIER_COLUMNS,
    TMATS_COLUMNS,
    load_iena_keys,
)

import streamlens_dist
from streamlens_dist.store import LAYOUT
from streamlens_dist.synth import (
    ch10_packet,
    ch10_tmats_udp,
    ch10_transfer,
    ch10_udp,
    ether,
    iena,
    inetx,
    ptp,
    telemetry_capture,
    tmats_text,
    udp_frame,
    write_pcap,
)

STREAM_TABLES = ("streams", "stream_outliers", "sequence_gaps", "tmats", "ptp_grandmasters")
T0 = 1_700_000_000_000_000_000
MS = 1_000_000

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def write(tmp_path, frames, name="t.pcap", step=MS):
    """A pcap of frames (bytes, or (ts, bytes)) one `step` apart from T0."""
    records = [f if isinstance(f, tuple) else (T0 + i * step, f) for i, f in enumerate(frames)]
    path = tmp_path / name
    write_pcap(path, records, snaplen=262144)
    return path


def rows(r: dict) -> list[dict]:
    s = r["streams"]
    return [{c: s[c][i] for c in s} for i in range(len(s["flow"]))]


def row(r: dict, text: str, flow: int | None = None) -> dict:
    found = [x for x in rows(r) if x["stream"] == text and (flow is None or x["flow"] == flow)]
    assert len(found) == 1, (text, [x["stream"] for x in rows(r)])
    return found[0]


def row_index(r: dict, text: str) -> int:
    return r["streams"]["stream"].index(text)


def gap_rows(r: dict, stream_row: int | None = None) -> list[tuple]:
    g = r["sequence_gaps"]
    out = [tuple(g[c][i] for c in GAP_COLUMNS) for i in range(len(g["stream_row"]))]
    return [x for x in out if stream_row is None or x[0] == stream_row]


def iena_frame(seq: int, key: int = 0x001A, dst: str = "239.0.0.20", **kw) -> bytes:
    return udp_frame("10.0.0.20", dst, 50000, 50000, iena(key, "N", seq, 4, **kw))


def ch10_frame(payload: bytes, src: str = "10.0.0.10", dst: str = "239.0.0.1") -> bytes:
    return udp_frame(src, dst, 6679, 6679, payload)


def sequence_columns(x: dict) -> tuple:
    return tuple(x[c] for c in ("seq_first", "seq_last", "expected", "received", "lost",
                                "duplicated", "out_of_order", "gap_count", "gap_missing"))


_stores = iter(range(10**9))


def analyze(path, sigma: str = "3", iena_keys: dict | None = None) -> dict:
    """The reference's tables; once the engine has the stream tables, the engine's store of
    the same capture must hold the same stream tables and frame types."""
    r = reference_analyze([path], sigma=sigma, iena_keys=iena_keys)
    if "streams" in LAYOUT:
        from storeio import load_store

        store = path.parent / f"engine-{next(_stores)}.zarr"
        entries = [(k, t, n or "") for k, (t, n) in (iena_keys or {}).items()]
        streamlens_dist.analyze(path, store, sigma=sigma, chunk_size="2KiB", serial=True,
                                iena_keys=entries or None)
        tables, _attrs = load_store(store)
        names = (*STREAM_TABLES, "frame_types")
        assert_tables_equal({t: tables[t] for t in names}, {t: r[t] for t in names},
                            where=f"engine on {path.name}")
    return r


# --------------------------------------------------------------------------------------
# (a) generated captures against their ground truth
# --------------------------------------------------------------------------------------


def by_key(r: dict) -> dict:
    flows = r["flows"]
    return {(flows["src"][x["flow"]], flows["dst"][x["flow"]], x["protocol"],
             (x["id1"], x["id2"], x["id3"], x["id4"])): (i, x) for i, x in enumerate(rows(r))}


@pytest.mark.parametrize(("seed", "n"), [(1, 150), (2, 200), (3, 120), (4, 300)])
def test_reference_equals_generated_truth(tmp_path, seed, n) -> None:
    path = tmp_path / "tel.pcap"
    truth = telemetry_capture(path, seed, n)
    r = reference_analyze([path])
    assert r["attrs"]["frames"] == truth.n_frames
    got = by_key(r)
    assert set(got) == {s.key for s in truth.streams}
    for s in truth.streams:
        i, x = got[s.key]
        where = f"seed {seed} {s.stream}"
        assert x["stream"] == s.stream, where
        assert (x["messages"], x["first_frame"], x["last_frame"]) == \
            (s.messages, s.frames[0], s.frames[-1]), where
        assert x["seq_bits"] == s.seq_bits, where
        assert sequence_columns(x) == (s.seqs[0], s.seqs[-1], s.expected, s.received, s.lost,
                                       s.duplicated, s.out_of_order, s.gap_count,
                                       s.gap_missing), where
        assert x["seq_irregular"] is False
        assert [g[1:3] + g[6:] for g in gap_rows(r, i)] == \
            [(g.frame_before, g.frame_after, g.seq_before, g.seq_after, g.missing)
             for g in s.gaps], where
        assert (x["errors"], x["segments"], x["unpaired_syncs"], x["status_changes"],
                x["status_first"], x["status_last"], x["iena_type"], x["tmats_name"]) == \
            (s.errors, s.segments, s.unpaired_syncs, s.status_changes, s.status_first,
             s.status_last, s.iena_type, s.tmats_name), where
        assert x["iena_type_source"] == ("flags" if s.protocol == "IENA" else "")
    # the generator did inject every kind of fault somewhere
    assert sum(s.duplicated for s in truth.streams) > 0
    assert sum(s.out_of_order for s in truth.streams) > 0
    assert sum(s.lost for s in truth.streams) > 0
    assert any(g.missing > 1 for s in truth.streams for g in s.gaps)
    assert any(s.unpaired_syncs for s in truth.streams)
    assert any(s.seqs[0] > s.seqs[-1] for s in truth.streams if s.seq_bits == 32)  # a wrap
    # silent flows (continuation look-alikes without Chapter 10) report no stream
    flows = r["flows"]
    silent = {i for i in range(len(flows["src"])) if (flows["src"][i], flows["dst"][i])
              in truth.silent_flows}
    assert silent and not silent & set(r["streams"]["flow"])
    # TMATS rows and grandmaster changes
    t = r["tmats"]
    assert [(flows["src"][f], flows["dst"][f], fr, ch, change, text) for f, fr, ch, change, text
            in zip(t["flow"], t["frame"], t["channel_id"], t["change"], t["text"],
                   strict=True)] == list(truth.tmats)
    g = r["ptp_grandmasters"]
    assert [(d, gm, flows["src"][f], flows["dst"][f], fr, c) for d, gm, f, fr, c
            in zip(g["domain"], g["grandmaster"], g["flow"], g["frame"], g["change"],
                   strict=True)] == list(truth.grandmasters)
    # reordered Announces around a switch-over can add changes
    assert len(truth.tmats) == 2 and len(truth.grandmasters) >= 4
    # stream_outliers/ and sequence_gaps/ are ordered as STREAMS.md says
    o = r["stream_outliers"]
    assert list(zip(o["frame"], o["stream_row"], strict=True)) == \
        sorted(zip(o["frame"], o["stream_row"], strict=True))
    gaps = gap_rows(r)
    assert [(x[2], x[0]) for x in gaps] == sorted((x[2], x[0]) for x in gaps)


def test_reference_with_the_key_map_of_the_truth(tmp_path) -> None:
    path = tmp_path / "tel.pcap"
    truth = telemetry_capture(path, 5, 100)
    plain, mapped = reference_analyze([path]), reference_analyze([path], iena_keys=truth.iena_keys)
    got = by_key(mapped)
    for s in truth.streams:
        if s.protocol != "IENA":
            continue
        _i, x = got[s.key]
        named = truth.iena_keys.get(s.ids[0])
        assert x["iena_type"] == s.iena_type_mapped
        assert x["iena_type_source"] == ("map" if named else "flags")
        assert x["stream"] == (f"{s.stream} {named[1]}" if named else s.stream)
    # the map changes IENA frame types (STREAMS.md §6): the status-0 key is no longer Unknown
    types = set(plain["frame_types"]["frame_type"]) - set(mapped["frame_types"]["frame_type"])
    assert types == {"IENA-Unknown"}
    for table in ("sequence_gaps", "tmats", "ptp_grandmasters"):
        assert mapped[table] == plain[table]


def test_generator_is_deterministic(tmp_path) -> None:
    a = telemetry_capture(tmp_path / "a.pcap", 11, 60)
    b = telemetry_capture(tmp_path / "b.pcap", 11, 60)
    assert (tmp_path / "a.pcap").read_bytes() == (tmp_path / "b.pcap").read_bytes()
    assert a.streams == b.streams and a.n_frames == b.n_frames
    c = telemetry_capture(tmp_path / "c.pcap", 12, 60)
    assert (tmp_path / "c.pcap").read_bytes() != (tmp_path / "a.pcap").read_bytes()
    assert c.stream("INETX", id1=0xCA).seq_bits == 32


# --------------------------------------------------------------------------------------
# (b) hand-made sequences
# --------------------------------------------------------------------------------------


def test_table_columns_are_the_specified_ones(tmp_path) -> None:
    r = analyze(write(tmp_path, [iena_frame(1)]))
    assert list(r["streams"]) == STREAM_COLUMNS
    assert list(r["stream_outliers"]) == STREAM_OUTLIER_COLUMNS
    assert list(r["sequence_gaps"]) == GAP_COLUMNS
    assert list(r["tmats"]) == TMATS_COLUMNS
    assert list(r["ptp_grandmasters"]) == GRANDMASTER_COLUMNS
    if "streams" in LAYOUT:  # the engine's store layout lists the same columns
        for table, columns in zip(STREAM_TABLES, (STREAM_COLUMNS, STREAM_OUTLIER_COLUMNS,
                                                  GAP_COLUMNS, TMATS_COLUMNS,
                                                  GRANDMASTER_COLUMNS), strict=True):
            assert list(LAYOUT[table]) == columns, table


def test_8_bit_and_24_bit_wraps_are_in_order(tmp_path) -> None:
    frames = [ch10_frame(ch10_udp(1, 0x09, 3, s, b"\0" * 8, udp_seq=u))
              for s, u in ((254, 0xFFFFFE), (255, 0xFFFFFF), (0, 0), (1, 1))]
    r = analyze(write(tmp_path, frames))
    assert [x["stream"] for x in rows(r)] == ["fmt 1", "ch 0x0003 type 0x09"]
    assert sequence_columns(row(r, "ch 0x0003 type 0x09")) == (254, 1, 4, 4, 0, 0, 0, 0, 0)
    assert sequence_columns(row(r, "fmt 1")) == (0xFFFFFE, 1, 4, 4, 0, 0, 0, 0, 0)
    assert row(r, "fmt 1")["seq_bits"] == 24 and row(r, "ch 0x0003 type 0x09")["seq_bits"] == 8
    assert gap_rows(r) == []


def test_reordering_and_loss_as_specified(tmp_path) -> None:
    r = analyze(write(tmp_path, [iena_frame(s) for s in (1, 2, 4, 3, 5)]))
    x = row(r, "key 0x001a")
    assert sequence_columns(x) == (1, 5, 5, 5, 0, 0, 1, 1, 1)
    assert gap_rows(r) == [(0, 2, 3, T0 + MS, T0 + 2 * MS, MS, 2, 4, 1)]

    r = analyze(write(tmp_path, [iena_frame(s) for s in (1, 2, 4, 5)]))
    assert sequence_columns(row(r, "key 0x001a")) == (1, 5, 5, 4, 1, 0, 0, 1, 1)
    assert gap_rows(r) == [(0, 2, 3, T0 + MS, T0 + 2 * MS, MS, 2, 4, 1)]


def test_duplicates_and_late_repeats(tmp_path) -> None:
    r = analyze(write(tmp_path, [iena_frame(s) for s in (7, 7, 8, 8, 8, 9)]))
    assert sequence_columns(row(r, "key 0x001a")) == (7, 9, 3, 6, 0, 3, 0, 0, 0)
    # a repeated late number is late again, not a duplicate (it is not the highest)
    r = analyze(write(tmp_path, [iena_frame(s) for s in (1, 3, 2, 2)]))
    assert sequence_columns(row(r, "key 0x001a")) == (1, 2, 3, 4, 0, 0, 2, 1, 1)
    # the message that set H is frame_before, not a later duplicate of it
    r = analyze(write(tmp_path, [iena_frame(s) for s in (1, 2, 2, 5)]))
    assert [g[1:3] + g[6:] for g in gap_rows(r)] == [(2, 4, 2, 5, 2)]


def test_32_bit_wrap_and_gap_across_it(tmp_path) -> None:
    def frame(seq, pif=0):
        return udp_frame("10.0.0.21", "239.0.0.21", 6000, 6000, inetx(0xCA, seq, b"x" * 16, pif=pif))
    seqs = (2**32 - 2, 2**32 - 1, 0, 1, 4)
    r = analyze(write(tmp_path, [frame(s, 1 << 31 if s == 0 else 0) for s in seqs]))
    x = row(r, "stream 0x000000ca")
    assert x["seq_bits"] == 32 and x["errors"] == 1
    assert sequence_columns(x) == (2**32 - 2, 4, 7, 5, 2, 0, 0, 1, 2)
    assert [g[6:] for g in gap_rows(r)] == [(1, 4, 2)]
    r = analyze(write(tmp_path, [frame(s) for s in (2**32 - 1, 2)]))
    assert [g[6:] for g in gap_rows(r)] == [(2**32 - 1, 2, 2)]
    # PIF lost-count bits alone are no error; timeout (bit 26) is
    r = analyze(write(tmp_path, [frame(1, 0x78000000), frame(2, 1 << 26)]))
    assert row(r, "stream 0x000000ca")["errors"] == 1


def test_half_the_range_back_is_late(tmp_path) -> None:
    """d >= M/2 counts backwards: 0 then 40000 (16-bit) is 25536 below, a late message."""
    r = analyze(write(tmp_path, [iena_frame(s) for s in (0, 40000)]))
    assert sequence_columns(row(r, "key 0x001a")) == (0, 40000, 25537, 2, 25535, 0, 1, 0, 0)
    r = analyze(write(tmp_path, [iena_frame(s) for s in (0, 32767, 32766)]))
    assert sequence_columns(row(r, "key 0x001a"))[2:] == (32768, 3, 32765, 0, 1, 1, 32766)


def _ch10_burst(path, counts_and_tail):
    """Format 1 datagrams of up to 2700 minimal channel-3 packets (sequence number 0),
    then `tail` packets in the last datagram."""
    n, tail = counts_and_tail
    packet = ch10_packet(0x09, 3, 0, b"")
    records, u = [], 0
    while n:
        k = min(2700, n)
        n -= k
        data = packet * k + (tail if not n else b"")
        records.append((T0 + u * MS, ch10_frame(ch10_transfer(1, data, udp_seq=u))))
        u += 1
    write_pcap(path, records, snaplen=262144)
    return path


def test_seq_irregular_limit(tmp_path) -> None:
    """Exactly 100,000 pairs whose step is not +1 are still listed; one more is irregular."""
    r = analyze(_ch10_burst(tmp_path / "a.pcap", (100_001, b"")))
    x = row(r, "ch 0x0003 type 0x09")
    assert x["messages"] == 100_001 and x["seq_irregular"] is False
    assert sequence_columns(x) == (0, 0, 1, 100_001, 0, 100_000, 0, 0, 0)
    r = analyze(_ch10_burst(tmp_path / "b.pcap",
                                       (100_001, ch10_packet(0x09, 3, 5, b""))))
    x = row(r, "ch 0x0003 type 0x09")
    assert x["messages"] == 100_002 and x["seq_irregular"] is True
    assert sequence_columns(x) == (0, 5, -1, 100_002, -1, -1, -1, -1, -1)
    assert gap_rows(r) == []  # the 0 -> 5 gap is not listed
    assert row(r, "fmt 1")["seq_irregular"] is False


def test_chapter10_walk(tmp_path) -> None:
    ch3 = ch10_packet(0x09, 3, 10, b"\1" * 12, flags=0x10)
    ch5 = ch10_packet(0x19, 5, 20, b"\2" * 20, flags=0x20, bad_checksum=True)
    ch3b = ch10_packet(0x09, 3, 11, b"\3" * 12)
    broken = b"\0\0" + ch3b[2:]  # no sync: the walk stops there
    frames = [
        ch10_frame(ch10_transfer(1, ch5 + ch3 + ch3b, udp_seq=1)),  # checksum: walk goes on
        ch10_frame(ch10_transfer(1, ch3 + broken + ch3b, udp_seq=2)),
        ch10_frame(ch10_transfer(1, ch3 + ch5[:-4], udp_seq=3)),  # last packet cut: counts
        ch10_frame(ch10_transfer(1, ch3 + ch3b[:20], udp_seq=4)),  # < 24 bytes left: stop
    ]
    r = analyze(write(tmp_path, frames))
    # same first frame: CH10-UDP first, then channel 3 before channel 5 (id1)
    assert [x["stream"] for x in rows(r)] == ["fmt 1", "ch 0x0003 type 0x09",
                                               "ch 0x0005 type 0x19"]
    c3, c5 = row(r, "ch 0x0003 type 0x09"), row(r, "ch 0x0005 type 0x19")
    assert (c3["messages"], c5["messages"]) == (5, 2)
    assert c5["bytes"] == 2 * len(ch5) and c5["errors"] == 2
    assert c3["errors"] == 4  # every ch3 (flag 0x10), not ch3b
    assert c3["iat_count"] == 4 and c3["iat_min_ns"] == 0  # two messages in frame 1
    assert sequence_columns(c3) == (10, 10, 2, 5, 0, 0, 3, 0, 0)  # 10, 11, then 10 late x3
    assert row(r, "fmt 1")["segments"] == 0


def test_segment_continuations(tmp_path) -> None:
    def f1_cont(seq, offset):
        return b"\x11" + seq.to_bytes(3, "little") + bytes(4) + struct.pack("<I", offset) + \
            b"A" * 40

    def f2_cont(seq, offset, words):
        return seq.to_bytes(3, "big") + bytes([0x12, offset >> 16]) + words.to_bytes(3, "big") \
            + struct.pack(">HH", offset & 0xFFFF, 9) + b"B" * 40

    full = ch10_udp(1, 0x09, 3, 0, b"\0" * 8, udp_seq=7)
    frames = [
        ch10_frame(f1_cont(5, 100), dst="239.0.0.9"),  # flow without CH10: no stream
        ch10_frame(full),
        ch10_frame(f1_cont(7, 100)),
        ch10_frame(f1_cont(7, 200)),
        ch10_frame(f2_cont(3, 100, 400)),  # size 400 > offset 100 words: a continuation
        ch10_frame(f2_cont(4, 400, 400)),  # 400 > 400 fails: plain UDP
        ch10_frame(ch10_udp(1, 0x09, 3, 1, b"\0" * 8, udp_seq=8)),
        ch10_frame(f1_cont(9, 100), dst="239.0.0.8"),  # CH10 on this flow comes from F2
        ch10_frame(ch10_transfer(2, ch10_packet(0x09, 4, 0, b"\0" * 8), udp_seq=1),
                   dst="239.0.0.8"),
    ]
    r = analyze(write(tmp_path, frames))
    flows = r["flows"]["dst"]
    assert flows[0] == "239.0.0.9" and 0 not in r["streams"]["flow"]
    f1 = row(r, "fmt 1", flow=1)
    assert (f1["messages"], f1["segments"], f1["received"]) == (4, 2, 2)
    assert sequence_columns(f1) == (7, 8, 2, 2, 0, 0, 0, 0, 0)
    assert f1["iat_count"] == 3
    f2 = row(r, "fmt 2", flow=1)
    assert (f2["messages"], f2["segments"]) == (1, 1)
    assert sequence_columns(f2) == (-1, -1, 0, 0, 0, 0, 0, 0, 0)  # continuations only
    assert f2["seq_bits"] == 24 and f2["seq_irregular"] is False
    only = row(r, "fmt 1", flow=2)
    assert sequence_columns(only) == (-1, -1, 0, 0, 0, 0, 0, 0, 0)
    assert row(r, "fmt 2", flow=2)["received"] == 1


def test_format3_source_id_and_28_bit_wrap(tmp_path) -> None:
    packet = ch10_packet(0x00, 0xDC, 0, b"\0" * 8)
    frames = [ch10_frame(ch10_transfer(3, packet, udp_seq=s, source_id=5, source_id_len=1))
              for s in (2**28 - 2, 2**28 - 1, 0, 2)]
    r = analyze(write(tmp_path, frames))
    x = row(r, "fmt 3 src 0x5")
    assert (x["id1"], x["id2"], x["seq_bits"]) == (3, 5, 28)
    assert sequence_columns(x) == (2**28 - 2, 2, 5, 4, 1, 0, 0, 1, 1)


def test_format3_long_source_id(tmp_path) -> None:
    """L > 8 would leave 32 - 4L < 0 sequence bits: read as 0 bits, the whole word is the
    source ID (a reading of STREAMS.md; reference only)."""
    packet = ch10_packet(0x00, 0xDC, 0, b"\0" * 8)
    frames = [ch10_frame(struct.pack("<BBHI", (9 << 4) | 3, 0, 0, 0x12345678) + packet)] * 2
    r = reference_analyze([write(tmp_path, frames)])
    x = row(r, "fmt 3 src 0x12345678")
    assert (x["seq_bits"], x["id2"]) == (0, 0x12345678)
    assert sequence_columns(x) == (0, 0, 1, 2, 0, 1, 0, 0, 0)


def test_ptp_pairing_names_and_signed_clock(tmp_path) -> None:
    clock = bytes.fromhex("f0e1d2fffec3b4a5")

    def msg(mt, seq, port=319, **kw):
        payload = ptp(mt, seq=seq, clock_identity=clock, **kw)
        return udp_frame("10.0.0.1", "224.0.1.129", port, port, payload)

    frames = [msg(0, 1), msg(8, 1, 320), msg(0, 2), msg(0, 3), msg(8, 3, 320), msg(8, 2, 320),
              msg(0, 4, flags=0), msg(0, 5), msg(8, 5, 320, port_number=2), msg(4, 9)]
    r = analyze(write(tmp_path, frames))
    sync = row(r, "domain 0 Sync f0e1d2fffec3b4a5-1")
    assert sync["id3"] == int.from_bytes(clock, "big") - 2**64 and sync["id4"] == 1
    assert sync["unpaired_syncs"] == 2  # 2 (Follow_Up after the next Sync) and 5 (other port)
    assert row(r, "domain 0 Follow_Up f0e1d2fffec3b4a5-1")["unpaired_syncs"] == 0
    assert row(r, "domain 0 Follow_Up f0e1d2fffec3b4a5-2")["messages"] == 1
    assert row(r, "domain 0 type 4 f0e1d2fffec3b4a5-1")["bytes"] == 44
    l2 = ether("01:1b:19:00:00:00", "00:1b:19:00:00:07", 0x88F7,
               ptp(0, domain=7, seq=3, clock_identity=clock), vlans=[(0x8100, 5)])
    r = analyze(write(tmp_path, [l2]))
    assert [x["stream"] for x in rows(r)] == ["domain 7 Sync f0e1d2fffec3b4a5-1"]
    assert rows(r)[0]["unpaired_syncs"] == 1


def test_grandmaster_changes(tmp_path) -> None:
    gm = {c: bytes.fromhex(h) for c, h in (("A", "00000000000000aa"), ("B", "00000000000000bb"),
                                             ("C", "00000000000000cc"))}

    def announce(domain, which, seq, length=None, dst="224.0.1.129"):
        m = ptp(0xB, domain=domain, seq=seq, length=length)
        return udp_frame("10.0.0.1", dst, 320, 320, m[:53] + gm[which] + m[61:])

    frames = [announce(0, "A", 1), announce(1, "C", 1, dst="224.0.1.130"), announce(0, "A", 2),
              announce(0, "B", 3, length=62),  # shorter than 63 bytes: names no grandmaster
              announce(0, "B", 4), announce(0, "A", 5), announce(1, "C", 2, dst="224.0.1.130")]
    r = analyze(write(tmp_path, frames))
    g = r["ptp_grandmasters"]
    assert list(zip(g["domain"], g["grandmaster"], g["flow"], g["frame"], g["change"],
                    strict=True)) == [(0, "00000000000000aa", 0, 1, 0),
                                      (1, "00000000000000cc", 1, 2, 0),
                                      (0, "00000000000000bb", 0, 5, 1),
                                      (0, "00000000000000aa", 0, 6, 2)]
    assert g["ts_ns"] == [T0, T0 + MS, T0 + 4 * MS, T0 + 5 * MS]


def test_tmats_changes_and_channel_names(tmp_path) -> None:
    v1 = tmats_text(channels=3)
    v2 = v1.replace("R-1\\DSI-2:CH2;", "R-1\\DSI-2:FUEL;")
    cut = ch10_tmats_udp(v2 + "X" * 40)[:-16]  # TMATS packet cut by the datagram: no text
    frames = [
        ch10_frame(ch10_tmats_udp(v1)),
        ch10_frame(ch10_udp(1, 0x09, 2, 0, b"\0" * 8)),
        ch10_frame(ch10_tmats_udp(v1 + "\0\0\0")),  # trailing NULs removed: same text
        ch10_frame(ch10_tmats_udp(v2, seq=2)),
        ch10_frame(ch10_udp(1, 0x09, 7, 0, b"\0" * 8)),
        ch10_frame(cut),
        ch10_frame(ch10_tmats_udp(v1), dst="239.0.0.2"),
    ]
    r = analyze(write(tmp_path, frames))
    t = r["tmats"]
    assert list(zip(t["flow"], t["frame"], t["channel_id"], t["change"], strict=True)) == \
        [(0, 1, 0, 0), (0, 4, 0, 1), (1, 7, 0, 0)]
    assert t["text"] == [v1, v2, v1]
    assert row(r, "ch 0x0002 type 0x09")["tmats_name"] == "FUEL"  # the flow's last text
    assert row(r, "ch 0x0007 type 0x09")["tmats_name"] == ""
    assert row(r, "ch 0x0000 type 0x01", flow=0)["messages"] == 4


def test_chapter10_counter_per_channel(tmp_path) -> None:
    """Channel 0 numbers TMATS and recording events in one series (STREAMS.md §2): both rows
    show the channel's accounting, and a gap row belongs to the message after the gap."""
    text = tmats_text(channels=1)
    event = ch10_packet(0x02, 0, 1, b"\0" * 8)
    frames = [
        ch10_frame(ch10_tmats_udp(text, seq=0)),
        ch10_frame(ch10_transfer(1, event)),
        ch10_frame(ch10_tmats_udp(text, seq=4)),  # 2 and 3 missing
        ch10_frame(ch10_transfer(1, ch10_packet(0x02, 0, 3, b"\0" * 8))),  # late
        ch10_frame(ch10_transfer(1, ch10_packet(0x02, 0, 6, b"\0" * 8))),  # 5 missing
        ch10_frame(ch10_transfer(1, ch10_packet(0x09, 3, 9, b"\0" * 8))),  # own channel
    ]
    r = analyze(write(tmp_path, frames))
    tm, ev = row(r, "ch 0x0000 type 0x01"), row(r, "ch 0x0000 type 0x02")
    assert (tm["messages"], ev["messages"]) == (2, 3)
    assert sequence_columns(tm) == sequence_columns(ev) == (0, 6, 7, 5, 2, 0, 1, 2, 3)
    assert sequence_columns(row(r, "ch 0x0003 type 0x09")) == (9, 9, 1, 1, 0, 0, 0, 0, 0)
    t, e = row_index(r, "ch 0x0000 type 0x01"), row_index(r, "ch 0x0000 type 0x02")
    assert [g[:3] + g[6:] for g in gap_rows(r) if g[0] in (t, e)] == \
        [(t, 2, 3, 1, 4, 2), (e, 3, 5, 4, 6, 1)]


def test_iena_key_map_status_and_type(tmp_path) -> None:
    frames = [iena_frame(s, key=0x0E50, key_status=0, n2=n2)
              for s, n2 in zip(range(5), (0, 0, 1, 1, 0), strict=True)]
    frames.append(iena_frame(9, key=0x0B20))
    path = write(tmp_path, frames)
    r = analyze(path)
    x = row(r, "key 0x0e50")
    assert (x["iena_type"], x["iena_type_source"]) == ("Unknown", "flags")
    assert (x["status_changes"], x["status_first"], x["status_last"]) == (2, 0, 0)
    assert "IENA-Unknown" in r["frame_types"]["frame_type"]

    (tmp_path / "keys.csv").write_text("key,type,name\n0x0e50,iena-d,ENGINE\n2848,N,\n")
    (tmp_path / "keys.yaml").write_text("0x0e50: {type: D, name: ENGINE}\n2848: n\n")
    keys = load_iena_keys(tmp_path / "keys.csv")
    assert keys == load_iena_keys(tmp_path / "keys.yaml") == {0x0E50: ("D", "ENGINE"),
                                                               0x0B20: ("N", None)}
    r = analyze(path, iena_keys=keys)
    x = row(r, "key 0x0e50 ENGINE")
    assert (x["iena_type"], x["iena_type_source"]) == ("D", "map")
    assert row(r, "key 0x0b20")["iena_type_source"] == "map"
    assert r["frame_types"]["frame_type"] == ["IENA-D", "IENA-N"]
    assert r["frame_types"]["frames"] == [5, 1]


def test_stream_outliers_and_sigma(tmp_path) -> None:
    times = [T0 + 10 * MS * i for i in range(20)] + [T0 + 10 * MS * 19 + 200 * MS]
    frames = [(ts, iena_frame(s)) for s, ts in enumerate(times)]
    frames.insert(5, (T0 + 45 * MS, iena_frame(0, key=0x0001)))
    r = analyze(write(tmp_path, frames))
    o = r["stream_outliers"]
    i = row_index(r, "key 0x001a")
    assert list(zip(o["stream_row"], o["frame"], o["ts_ns"], o["iat_ns"], strict=True)) == \
        [(i, 22, times[-1], 200 * MS)]
    assert o["deviation"][0] > 3
    assert analyze(write(tmp_path, frames), sigma="100")["stream_outliers"][
        "frame"] == []


# --------------------------------------------------------------------------------------
# (c) real captures
# --------------------------------------------------------------------------------------

REAL = {p.name: p for p in real_captures()}
PROTOCOL_CAPTURES = sorted(n for n in REAL if n.startswith(("iena_", "inetx_", "ch10udp_",
                                                              "ptpv2_")))


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_captures_run(name) -> None:
    r = reference_analyze([REAL[name]])
    s = r["streams"]
    n = len(s["flow"])
    assert all(len(col) == n for col in s.values())
    for x in rows(r):
        assert x["messages"] >= 1 and x["iat_count"] == x["messages"] - 1
        if not x["seq_irregular"] and x["received"]:
            assert x["expected"] >= 1 and x["lost"] >= 0
            assert x["gap_count"] == len(gap_rows(r, rows(r).index(x)))
    if name in PROTOCOL_CAPTURES:
        assert n > 0, name
    keys = [(x["flow"], x["first_frame"], x["protocol"], x["id1"], x["id2"], x["id3"], x["id4"])
            for x in rows(r)]
    rank = {"CH10-UDP": 0, "CH10": 1, "PTP": 2, "IENA": 3, "INETX": 4}
    assert keys == sorted(keys, key=lambda k: (k[0], k[1], rank[k[2]], *k[3:]))


def real(name: str) -> dict:
    return reference_analyze([CAPTURES / name])


def test_real_iena() -> None:
    r = real("iena_n_key001a_10hz.pcap")
    assert [x["stream"] for x in rows(r)] == ["key 0x001a"]
    x = rows(r)[0]
    assert x["messages"] == 51 and x["bytes"] == 51 * 48  # 48-byte payloads
    assert sequence_columns(x) == (195, 245, 51, 51, 0, 0, 0, 0, 0)
    # frame 1 has key status 0x01 / N2 0x01 (IENA-N), the other 50 status 0 (IENA-Unknown)
    assert (x["iena_type"], x["status_changes"], x["status_first"], x["status_last"]) == \
        ("N,Unknown", 1, 0x0101, 0)
    assert x["iat_mean_ns"] == pytest.approx(100 * MS, rel=0.01)  # 10 Hz
    r = real("iena_d_random_keys.pcap")
    assert len(rows(r)) == 24 and sum(r["streams"]["messages"]) == 53
    assert {x["protocol"] for x in rows(r)} == {"IENA"}
    assert row(r, "key 0x2cfa")["messages"] == 2
    r = real("iena_m_two_packets.pcap")
    assert [(x["stream"], x["messages"]) for x in rows(r)] == [("key 0xa33d", 2)]


def test_real_inetx() -> None:
    for name, text, messages in (("inetx_stream_ca_8hz.pcap", "stream 0x000000ca", 10),
                                 ("inetx_samdec008.pcap", "stream 0x00000153", 4),
                                 ("inetx_parser_aligned.pcap", "stream 0x00000a00", 4)):
        r = real(name)
        assert [(x["stream"], x["messages"]) for x in rows(r)] == [(text, messages)], name
        x = rows(r)[0]
        assert x["expected"] == messages and x["lost"] == 0 and x["errors"] == 0, name
    assert rows(real("inetx_stream_ca_8hz.pcap"))[0]["bytes"] == 10 * 72
    # the MPEG-TS stream sends every sequence number twice (0, 0, 1, 1, ..., 25)
    x = rows(real("inetx_mpegts_video.pcap"))[0]
    assert (x["stream"], x["messages"]) == ("stream 0x000000dc", 51)
    assert sequence_columns(x) == (0, 25, 26, 51, 0, 25, 0, 0, 0)


def test_real_ptp() -> None:
    r = real("ptpv2_l2_ethertype88f7.pcap")
    counts = {x["stream"].split()[2]: x["messages"] for x in rows(r)}
    assert counts == {"Sync": 70, "Follow_Up": 70, "Announce": 35, "Delay_Req": 15,
                      "Delay_Resp": 15}
    sync = row(r, "domain 0 Sync 7483efffff01ac16-274")
    assert sync["unpaired_syncs"] == 0 and sync["lost"] == 0 and sync["expected"] == 70
    g = r["ptp_grandmasters"]  # tshark: grandmasterClockIdentity changes at frame 22
    assert list(zip(g["grandmaster"], g["frame"], g["change"], strict=True)) == \
        [("7483efffff01ac16", 3, 0), ("000006ffff010000", 22, 1)]

    r = real("ptpv2_l2_gptp_pdelay.pcap")
    counts = {x["stream"].split()[2]: x["messages"] for x in rows(r)}
    assert counts == {"Sync": 11, "Follow_Up": 11, "Announce": 5, "Pdelay_Req": 11}
    assert row(r, "domain 0 Sync 38f3abfffe96ec12-1")["unpaired_syncs"] == 0
    r = real("ptpv2_udp_ipv4_multicast.pcap")
    assert sorted(x["stream"].split()[2] for x in rows(r)) == \
        ["Announce", "Delay_Req", "Delay_Resp", "Follow_Up", "Sync"]


def test_real_chapter10() -> None:
    r = real("ch10udp_f3_cg0_stream.pcap")
    x = row(r, "fmt 3 src 0x0")
    assert x["messages"] == 1481 and sequence_columns(x) == (0, 1480, 1481, 1481, 0, 0, 0, 0, 0)
    assert row(r, "ch 0x00dc type 0x00")["messages"] == 1481
    r = real("ch10udp_f2_segmented_pcm.pcap")
    x = row(r, "fmt 2")
    # 171 segments of 3 packets numbered 17068-17070: continuations carry no number
    assert (x["messages"], x["segments"], x["received"]) == (171, 171, 3)
    assert sequence_columns(x) == (17068, 17070, 3, 3, 0, 0, 0, 0, 0)
    assert row(r, "ch 0x0200 type 0x09")["messages"] == 3
    r = real("ch10udp_f1_cg0_zero_timestamps.pcap")
    x = row(r, "fmt 1")
    assert x["messages"] == 423 and x["iat_sum_ns"] == 0 and x["iat_max_ns"] == 0
    r = real("ch10udp_f1_full_and_segmented.pcap")
    assert row(r, "fmt 1")["segments"] == 1 and row(r, "fmt 1")["messages"] == 2
    r = real("ch10udp_f1_arinc429_random_hdrs.pcap")
    assert len(set(r["streams"]["flow"])) == 24 and r["tmats"]["frame"] == []


# --------------------------------------------------------------------------------------
# (d) the engine
# --------------------------------------------------------------------------------------

needs_engine = pytest.mark.skipif("streams" not in LAYOUT,
                                  reason="the engine's store has no stream tables yet")


def engine_tables(capture, store, **kw) -> dict:
    from storeio import load_store

    streamlens_dist.analyze(capture, store, serial=True, **kw)
    tables, attrs = load_store(store)
    assert attrs["complete"] is True
    return tables


@needs_engine
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), chunk=st.integers(1024, 200 * 1024))
def test_engine_equals_reference_on_generated(tmp_path_factory, seed, chunk) -> None:
    tmp = tmp_path_factory.mktemp("eng")
    path = tmp / "tel.pcap"
    telemetry_capture(path, seed, 80)
    ref = reference_analyze([path])
    tables = engine_tables(path, tmp / "out.zarr", chunk_size=chunk)
    assert_tables_equal({t: tables[t] for t in STREAM_TABLES}, {t: ref[t] for t in STREAM_TABLES},
                        where=f"seed {seed} chunk {chunk}")


@needs_engine
def test_engine_equals_reference_with_key_map(tmp_path) -> None:
    path = tmp_path / "tel.pcap"
    truth = telemetry_capture(path, 21, 60)
    entries = [(k, t, n) for k, (t, n) in sorted(truth.iena_keys.items())]
    ref = reference_analyze([path], iena_keys=truth.iena_keys)
    tables = engine_tables(path, tmp_path / "out.zarr", chunk_size="7KiB", iena_keys=entries)
    assert_tables_equal({t: tables[t] for t in (*STREAM_TABLES, "frame_types")},
                        {t: ref[t] for t in (*STREAM_TABLES, "frame_types")})


@needs_engine
@pytest.mark.parametrize("name", PROTOCOL_CAPTURES)
def test_engine_equals_reference_on_real(tmp_path, name) -> None:
    ref = reference_analyze([CAPTURES / name])
    chunk = random.Random(name).choice(["1KiB", "3000", "50KiB"])
    tables = engine_tables(CAPTURES / name, tmp_path / "out.zarr", chunk_size=chunk)
    assert_tables_equal({t: tables[t] for t in STREAM_TABLES}, {t: ref[t] for t in STREAM_TABLES},
                        where=f"{name} {chunk}")
