"""The columnar fast path gives exactly the per-frame classifier's records: on every real
capture, on random frame mixes, on damaged frames, with and without the compiled kernel.
Its application payload offsets (`app_off`, `app_len`) are those an independent dpkt
dissection finds, on every frame the fast path kept, and -1/0 on every other frame."""

from __future__ import annotations

import random
import struct

import dpkt
import numpy as np
import pytest
from conftest import CAPTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlens_dist.capture.columns import record_columns
from streamlens_dist.capture.split import plan_capture
from streamlens_dist.chunktask import read_range
from streamlens_dist.dissect import columnar
from streamlens_dist.dissect.malformed_scan import maybe_malformed
from streamlens_dist.synth import pcap_bytes, random_records

VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)  # docs/DECISIONS.md "Layers"


def records(cls: columnar.FrameClasses) -> list[tuple]:
    return [(cls.keys[f] if f >= 0 else None, int(t), int(h), int(m))
            for f, t, h, m in zip(cls.flow, cls.ftype, cls.hints, cls.malformed, strict=True)]


def dpkt_app_payload(frame: bytes, linktype: int = 1) -> tuple[int, int] | None:
    """(offset in the frame, length) of an Ethernet (or Linux cooked: SLL 113, SLL2 276; raw
    IP; NULL / LOOP) frame's application payload, found with dpkt: the UDP payload (`udp.data[:ulen - 8]` when
    8 <= ulen <= the UDP bytes, else all of them; PROTOCOLS.md §7.4) of a first or
    unfragmented IPv4 / IPv6 datagram, or the body of an Ethernet 0x88F7 (PTP) frame (a
    cooked one has no MAC pair: the per-frame path's); None for anything else. The VLAN walk
    is written out here because dpkt stops after two tags and reads MPLS and 802.3 frames,
    which the engine does not."""
    if linktype == 1:
        if len(frame) < 14:
            return None
        (et,), l3 = struct.unpack_from(">H", frame, 12), 14
    elif linktype in (113, 276):
        header = dpkt.sll.SLL if linktype == 113 else dpkt.sll2.SLL2
        if len(frame) < header.__hdr_len__:
            return None
        et, l3 = header(frame).ethtype, header.__hdr_len__
    else:  # raw IP, or a NULL / LOOP header's BSD address family (either byte order)
        l3 = 4 if linktype in (0, 108) else 0
        if len(frame) <= l3:
            return None
        version = {228: 4, 229: 6}.get(linktype, frame[0] >> 4)
        if l3:
            le, be = struct.unpack_from("<I", frame)[0], struct.unpack_from(">I", frame)[0]
            family = le if le in (2, 24, 28, 30) else be
            version = 4 if family == 2 else 6 if family in (24, 28, 30) else None
        et = {4: 0x0800, 6: 0x86DD}.get(version, 0)
    for _ in range(8):
        if et not in VLAN_TPIDS:
            break
        if len(frame) < l3 + 4:
            return None
        (et,), l3 = struct.unpack_from(">H", frame, l3 + 2), l3 + 4
    if et == 0x88F7:
        return (l3, len(frame) - l3) if linktype == 1 else None
    if linktype not in (1, 113, 276) and et == 0:
        return None
    try:
        if et == 0x0800:
            ip = dpkt.ip.IP(frame[l3:])
            ihl = ip.hl * 4
            if ip.v != 4 or ihl > len(frame) - l3 or ip.offset != 0 or ip.p != 17:
                return None
            data = ip.data
            if 0 < ip.len < ihl:  # an impossible total length: the engine keeps all bytes,
                data = dpkt.udp.UDP(frame[l3 + ihl:])  # dpkt keeps none
            l4 = l3 + ihl
        elif et == 0x86DD:
            ip = dpkt.ip6.IP6(frame[l3:])
            if ip.v != 6 or ip.nxt != 17:  # extension headers: the per-frame path's business
                return None
            data, l4 = ip.data, l3 + 40
        else:
            return None
    except (dpkt.UnpackError, struct.error):
        return None
    if not isinstance(data, dpkt.udp.UDP):
        return None  # fewer than 8 UDP header bytes
    payload = data.data[:data.ulen - 8] if 8 <= data.ulen <= 8 + len(data.data) else data.data
    assert frame[l4 + 8:l4 + 8 + len(payload)] == payload
    return l4 + 8, len(payload)


def fast_path_mask(buf: bytes, cols) -> np.ndarray:
    """The frames `classify_columns` keeps on its fast path (the kernel's or numpy's)."""
    n = len(cols)
    if not n:
        return np.zeros(0, dtype=bool)
    c, out = columnar._Chunk(buf), columnar._Out(n)
    tables = columnar._kernel_tables(columnar._kernels)
    if tables is not None:
        return columnar._compiled(c, cols, out, tables)
    done = columnar._fast(c, cols, out)
    return done & ~maybe_malformed(c, cols, out, done)


def assert_app_payloads(buf: bytes, cols, cls: columnar.FrameClasses, kept: np.ndarray) -> None:
    """app_off/app_len are dpkt's on every frame in `kept` (the fast path's), -1/0 elsewhere."""
    for i in range(len(cols)):
        got = (int(cls.app_off[i]), int(cls.app_len[i]))
        want = None
        if kept[i]:
            off = int(cols.offset[i])
            want = dpkt_app_payload(bytes(buf[off:off + int(cols.caplen[i])]),
                                    int(cols.linktype[i]))
            if want is not None:
                want = (off + want[0], want[1])
        assert got == (want or (-1, 0)), f"frame index {i}: app payload {got}, dpkt {want}"


def assert_same(buf: bytes, cols) -> columnar.FrameClasses:
    fast = columnar.classify_columns(buf, cols)
    slow = columnar.classify_columns(buf, cols, force_slow=True)
    assert slow.slow_frames == int((~cols.untimed).sum())
    got, want = records(fast), records(slow)
    bad = [i for i in range(len(got)) if got[i] != want[i]]
    assert not bad, f"frame index {bad[0]}: fast {got[bad[0]]} vs per-frame {want[bad[0]]}"
    kept = fast_path_mask(buf, cols)
    assert fast.slow_frames == int((~cols.untimed & ~kept).sum())
    assert_app_payloads(buf, cols, fast, kept)
    assert_app_payloads(buf, cols, slow, np.zeros(len(cols), dtype=bool))
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
                 "iena_m_two_packets.pcap", "ptpv2_l2_ethertype88f7.pcap",
                 "inetx_mpegts_video.pcap"):
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


@given(st.integers(0, 2**32), st.integers(1, 150))
@settings(max_examples=50, deadline=None)
def test_random_frame_mixes_numpy_only(seed: int, n: int) -> None:
    """The same with the kernel taken away: numpy's payload offsets are dpkt's too."""
    frames = [f for _ts, f in random_records(random.Random(seed), n)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(columnar, "_kernels", None)
        assert_same(*_columns_of(frames))


def test_numpy_kernel_fallback_is_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [c for name in ("ch10udp_f3_cg0_stream.pcap", "inetx_mpegts_video.pcap",
                             "ptpv2_l2_ethertype88f7.pcap")
              for c in _capture_chunks(CAPTURES / name)]

    def run() -> list:
        return [(records(cls), cls.app_off.tolist(), cls.app_len.tolist())
                for cls in (columnar.classify_columns(b, c) for b, c in chunks)]

    with_kernel = run()
    monkeypatch.setattr(columnar, "_kernels", None)
    assert with_kernel == run()


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
