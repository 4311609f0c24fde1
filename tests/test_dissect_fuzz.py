"""Dissection never raises: random bytes and damaged real frames on every link type are
classified or reported undecodable, and agree with the reference."""

from __future__ import annotations

import pytest
from conftest import CAPTURES
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import decode_frame, reference_frames

from streamlens_dist.capture.split import plan_capture
from streamlens_dist.chunktask import iter_frames
from streamlens_dist.dissect.classify import classify

LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]


def _real_frames() -> list[tuple[int, bytes]]:
    frames = []
    for name in ("mixed_many_protocols_vlan_ipv6.pcap", "ch10udp_f1_arinc429_random_hdrs.pcap",
                 "iena_m_two_packets.pcap", "inetx_stream_ca_8hz.pcap", "ptpv2_l2_gptp_pdelay.pcap",
                 "nsec_littleendian_sll_tcp_handshake.pcap", "ipv6_http_rawip_linktype.pcap",
                 "pcapng_11_interfaces_mixed_linktypes.pcapng"):
        for spec in plan_capture([CAPTURES / name], 1 << 30).chunks:
            frames.extend((lt, data) for _f, _ts, lt, _cap, data in iter_frames(spec))
    return frames[::7]


REAL = _real_frames()


def agree_with_reference(linktype: int, data: bytes) -> None:
    """The engine's dissection of one frame equals the independent reference's."""
    ours, ref = classify(linktype, data), decode_frame(linktype, data)
    if ref is None:
        assert ours is None
        return
    assert ours is not None, ref
    (src, dst, kind), ftype, hints, _bad = ours
    assert (kind, src, dst, ftype, set(hints)) == \
        (ref["kind"], ref["src"], ref["dst"], ref["frame_type"], set(ref["hints"]))


@given(st.sampled_from(LINKTYPES), st.binary(max_size=200))
@settings(max_examples=2000)
def test_random_bytes_never_raise(linktype: int, data: bytes) -> None:
    agree_with_reference(linktype, data)


@given(st.sampled_from(REAL), st.data())
@settings(max_examples=1500)
def test_damaged_real_frames_never_raise(frame: tuple[int, bytes], data: st.DataObject) -> None:
    linktype, raw = frame
    buf = bytearray(raw)
    cut = data.draw(st.integers(0, len(buf)))
    for _ in range(data.draw(st.integers(0, 6))):
        if buf:
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    for candidate in (bytes(buf), bytes(buf[:cut])):
        agree_with_reference(linktype, candidate)


@pytest.mark.parametrize("name", ["ch10udp_f1_arinc429_random_hdrs.pcap",
                                  "pcapng_comments_ether_and_sll.pcapng",
                                  "inetx_mpegts_video.pcap"])
def test_per_frame_classification_equals_reference(name: str) -> None:
    ours = []
    for spec in plan_capture([CAPTURES / name], 4096).chunks:
        for _f, ts, lt, _cap, data in iter_frames(spec):
            r = classify(lt, data) if ts is not None else None
            ours.append(None if r is None else (r[0], r[1]))
    ref = reference_frames([CAPTURES / name])
    assert len(ours) == len(ref)
    for o, f in zip(ours, ref, strict=True):
        if o is not None:
            assert o[1] == f["frame_type"], f
