"""iNET-X in the classification ladder (docs/DECISIONS.md "Ladder details"): frame type and
hint `INETX` for a UDP payload with a whole 28-byte header, control word 0x11000000, packet
length = UDP payload length and PTP nanoseconds < 10^9; first after IENA, before the transport
fallbacks. Checked on the real iNET-X captures against byte checks written here (dpkt for the
layers, no AcraNetwork), on every path (per frame, numpy, compiled kernel) and the reference.
"""

from __future__ import annotations

import random
import struct

import dpkt
import pytest
from conftest import CAPTURES
from reference import decode_frame, reference_frames
from test_columnar import _capture_chunks, assert_same

from streamlens_dist.capture.split import plan_capture
from streamlens_dist.chunktask import iter_frames
from streamlens_dist.dissect import columnar, inetx
from streamlens_dist.dissect.classify import classify
from streamlens_dist.dissect.names import HINT_BIT, TYPE_ID, TYPE_NAMES
from streamlens_dist.synth import inetx as make_inetx
from streamlens_dist.synth import random_records

INETX_CAPTURES = ["inetx_stream_ca_8hz.pcap", "inetx_samdec008.pcap",
                  "inetx_parser_aligned.pcap", "inetx_mpegts_video.pcap"]
ALL_CAPTURES = sorted(p for p in CAPTURES.glob("*.pcap*") if "unsupported_version" not in p.name)


def udp_payload(frame: bytes) -> bytes | None:
    """The UDP payload of an Ethernet frame by dpkt (bytes 8..ulen when that fits, else all;
    PROTOCOLS.md §7.4), None when the frame is not a first or whole UDP datagram."""
    try:
        eth = dpkt.ethernet.Ethernet(frame)
    except (dpkt.UnpackError, struct.error):
        return None
    ip = eth.data
    if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) or not isinstance(ip.data, dpkt.udp.UDP):
        return None
    u = ip.data
    return u.data[:u.ulen - 8] if 8 <= u.ulen <= 8 + len(u.data) else u.data


def looks_like_inetx(p: bytes | None) -> bool:
    """PROTOCOLS.md §4 detection, field by field."""
    if p is None or len(p) < 28:
        return False
    control, _sid, _seq, length, _sec, ns, _pif = struct.unpack(">7I", p[:28])
    return control == 0x11000000 and length == len(p) and ns < 1_000_000_000


def _frames(path) -> list[tuple[int, int | None, int, bytes]]:
    out = []
    for spec in plan_capture([path], 1 << 30).chunks:
        out.extend((n, ts, lt, data) for n, ts, lt, _cap, data in iter_frames(spec))
    return out


# ----------------------------------------------------------------------------- the test itself

def test_detect_fields() -> None:
    good = make_inetx(0xCA, 7, bytes(20), ptp_ns=5 * 10**9 + 999_999_999)
    assert inetx.detect(good) and inetx.detect(make_inetx(1, 2, b""))
    assert not inetx.detect(good[:27]) and not inetx.detect(b"")
    assert not inetx.detect(good + b"\0")  # the packet length no longer matches
    for at, value in ((0, 0x11000001), (0, 0x01000011), (0, 0x00000011), (12, len(good) + 1),
                      (12, len(good) - 1), (12, 0), (20, 10**9), (20, 0xFFFFFFFF)):
        bad = good[:at] + value.to_bytes(4, "big") + good[at + 4:]
        assert not inetx.detect(bad), (at, value)
    # stream ID, sequence number, seconds and PIF do not matter
    assert inetx.detect(good[:4] + b"\xff" * 8 + good[12:16] + b"\xff" * 4 + good[20:24]
                        + b"\xff" * 4 + good[28:])


def test_codes() -> None:
    assert TYPE_NAMES[TYPE_ID["IENA-Unknown"] + 1] == "INETX"
    assert "INETX" in HINT_BIT
    assert columnar._kernel_tables(columnar._kernels) is not None, "kernel not rebuilt"
    assert columnar._kernels.LADDER_VERSION >= 3


# ----------------------------------------------------------------------------- real captures

@pytest.mark.parametrize("name", INETX_CAPTURES)
def test_every_frame_of_the_inetx_captures_is_inetx(name: str) -> None:
    frames = _frames(CAPTURES / name)
    assert frames
    ref = reference_frames([CAPTURES / name])
    for (n, ts, lt, data), r in zip(frames, ref, strict=True):
        assert ts is not None and lt == 1
        assert looks_like_inetx(udp_payload(data)), n  # the bytes say so, independently
        got = classify(lt, data)
        assert got is not None and got[1] == "INETX" and got[3] is None, (n, got)
        assert "INETX" in got[2] and ("UDP" in got[2] or len(got[2]) > 1)
        assert r["frame_type"] == "INETX" and "INETX" in r["hints"]
    for buf, cols in _capture_chunks(CAPTURES / name):
        for kernel in (columnar._kernels, None):  # compiled, then numpy
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(columnar, "_kernels", kernel)
                cls = assert_same(buf, cols)
            assert cls.slow_frames == 0
            assert {TYPE_NAMES[t] for t in cls.ftype} == {"INETX"}
            assert all(h & HINT_BIT["INETX"] for h in cls.hints.tolist())


@pytest.mark.parametrize("path", ALL_CAPTURES, ids=lambda p: p.name)
def test_inetx_exactly_where_the_bytes_say(path) -> None:
    """On every real capture, a frame is INETX exactly when an Ethernet frame's UDP payload
    passes the field checks (no other capture holds iNET-X; none holds a payload that an
    earlier rule of the ladder claims and that also looks like iNET-X)."""
    for n, ts, lt, data in _frames(path):
        if ts is None:
            continue
        got = classify(lt, data)
        is_inetx = got is not None and got[1] == "INETX"
        assert is_inetx == (lt == 1 and looks_like_inetx(udp_payload(data))), (path.name, n)


# ----------------------------------------------------------------------------- generated frames

def test_random_records_hold_inetx_and_near_misses() -> None:
    """The property tests' generator makes valid iNET-X and near misses, and the reference
    agrees with the engine on them."""
    kinds = {"valid": 0, "near miss": 0}
    for seed in range(60):
        for _ts, frame in random_records(random.Random(seed), 120):
            p = udp_payload(frame)
            if p is None or p[:4] != b"\x11\0\0\0" and not looks_like_inetx(p):
                continue
            got, ref = classify(1, frame), decode_frame(1, frame)
            assert got is not None and ref is not None
            assert got[1] == ref["frame_type"] and set(got[2]) == set(ref["hints"])
            valid = looks_like_inetx(p)
            assert (got[1] == "INETX") == valid or got[1] in ("CH10-Data", "TMATS")
            kinds["valid" if valid else "near miss"] += 1
    assert kinds["valid"] > 50 and kinds["near miss"] > 10, kinds
