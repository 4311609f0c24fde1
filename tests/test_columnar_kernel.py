"""The compiled fast-path ladder (`_kernels.classify_frames`) is the numpy fast path
(`columnar._fast`) frame for frame, and both are the per-frame `classify`.

Three ways are compared on every input: `classify_columns` with the kernel, with the kernel
taken away (numpy `_fast`), and with `force_slow=True` (per-frame `classify` only). Besides
equal records, the kernel must hand exactly the same frames to the slow path as `_fast`, intern
the same flow keys in the same order and write the same codes and application payload offsets
(`app_off`, `app_len`, checked against dpkt too) for every handled frame.
"""

from __future__ import annotations

import random
import struct
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from conftest import CAPTURES
from hypothesis import given, settings
from hypothesis import strategies as st
from test_columnar import assert_app_payloads

from streamlens_dist.capture.columns import RecordColumns, record_columns
from streamlens_dist.capture.split import plan_capture
from streamlens_dist.chunktask import read_range
from streamlens_dist.dissect import columnar
from streamlens_dist.dissect.malformed_scan import maybe_malformed
from streamlens_dist.dissect.names import MALFORMED_NAMES, TYPE_NAMES
from streamlens_dist.errors import CaptureFormatError
from streamlens_dist.synth import (
    arp,
    ch10_packet,
    ch10_tmats_udp,
    ch10_transfer,
    ch10_udp,
    ether,
    flight_test_capture,
    icmp_echo,
    iena,
    igmp,
    inetx,
    ip_frame,
    ipv4,
    ipv4_fragments,
    ipv6,
    ipv6_fragment_header,
    ptp,
    random_records,
    tcp,
    tmats_text,
    udp,
    udp_frame,
)

TABLES = columnar._kernel_tables(columnar._kernels)
pytestmark = pytest.mark.skipif(TABLES is None, reason="compiled classify_frames not built")

@contextmanager
def numpy_only():
    with mock.patch.object(columnar, "_kernels", None):
        yield


def records(cls: columnar.FrameClasses) -> list[tuple]:
    return [(cls.keys[f] if f >= 0 else None, int(t), int(h), int(m))
            for f, t, h, m in zip(cls.flow, cls.ftype, cls.hints, cls.malformed, strict=True)]


def three_ways(buf: bytes, cols: RecordColumns) -> tuple[np.ndarray, columnar.FrameClasses]:
    """Assert kernel == numpy fast path == per-frame; return the kernel's handled mask and
    its classes."""
    n = len(cols)
    c = columnar._Chunk(buf)
    k_out, n_out = columnar._Out(n), columnar._Out(n)
    k_done = columnar._compiled(c, cols, k_out, TABLES) if n else np.zeros(0, bool)
    n_done = columnar._fast(c, cols, n_out) if n else np.zeros(0, bool)
    # The kernel handles what the numpy ladder does, except frames that might carry a
    # malformed payload named only per frame: it leaves those to the per-frame path, and
    # numpy's (cheaper, wider) suspect scan must then have caught them too. Malformed
    # payloads the kernel names itself (PTP-header, IENA-size) numpy sends on as suspects.
    suspects = maybe_malformed(c, cols, n_out, n_done) if n else np.zeros(0, bool)
    diff = np.flatnonzero((k_done & ~n_done) | (n_done & ~k_done & ~suspects))
    assert not len(diff), f"frame index {diff[0]}: kernel handled {k_done[diff[0]]}, numpy " \
                          f"{n_done[diff[0]]}, numpy suspect {suspects[diff[0]]}"
    # same keys interned in the same order, same codes on every frame both kept (a suspect's
    # codes in numpy are provisional: the per-frame path replaces them; the records below
    # hold the kernel's to the per-frame path's)
    assert k_out.keys == n_out.keys
    both = k_done & n_done & ~suspects
    for name in ("flow", "ftype", "hints", "malformed"):
        a, b = getattr(k_out, name)[both], getattr(n_out, name)[both]
        bad = np.flatnonzero(a != b)
        assert not len(bad), f"{name} differs at handled frame {np.flatnonzero(both)[bad[0]]}"
    for name in ("app_off", "app_len"):
        a, b = getattr(k_out, name), getattr(n_out, name)
        bad = np.flatnonzero(both & (a != b))
        assert not len(bad), f"{name} differs at handled frame {bad[0]}: {a[bad[0]]} {b[bad[0]]}"
    for out, done in ((k_out, k_done), (n_out, n_done)):  # nothing located on unhandled frames
        assert np.all(out.app_off[~done] == -1) and np.all(out.app_len[~done] == 0)

    kern = columnar.classify_columns(buf, cols)
    with numpy_only():
        fast = columnar.classify_columns(buf, cols)
    slow = columnar.classify_columns(buf, cols, force_slow=True)
    assert kern.slow_frames <= fast.slow_frames  # numpy sends a wider set of suspects
    assert kern.keys == fast.keys
    assert np.array_equal(kern.flow, fast.flow)
    got, mid, want = records(kern), records(fast), records(slow)
    bad = [i for i in range(n) if not got[i] == mid[i] == want[i]]
    assert not bad, f"frame index {bad[0]}: kernel {got[bad[0]]}, numpy {mid[bad[0]]}, " \
                    f"per-frame {want[bad[0]]}"
    # payload offsets: where each path kept the frame, dpkt's; elsewhere -1/0. The kernel keeps
    # frames numpy's wider suspect scan sends on, so there numpy has -1 and the kernel offsets.
    assert_app_payloads(buf, cols, kern, k_done)
    assert_app_payloads(buf, cols, fast, n_done & ~suspects)
    assert_app_payloads(buf, cols, slow, np.zeros(n, dtype=bool))
    return k_done, kern


def columns_of(frames: list[bytes], linktypes: list[int] | None = None,
               untimed: list[bool] | None = None) -> tuple[bytes, RecordColumns]:
    """A chunk buffer holding the frames back to back (with a gap byte between them, so a read
    past a frame's end would see foreign bytes) and its columns."""
    parts, offs = [], []
    pos = 0
    for f in frames:
        parts.append(f + b"\xa5")
        offs.append(pos)
        pos += len(f) + 1
    n = len(frames)
    lts = np.array(linktypes if linktypes is not None else [1] * n, dtype=np.int32)
    unt = np.array(untimed if untimed is not None else [False] * n, dtype=np.bool_)
    cols = RecordColumns(np.arange(n, dtype=np.int64) * 1000, unt, lts,
                         np.array(offs, dtype=np.int64),
                         np.array([len(f) for f in frames], dtype=np.int64))
    return b"".join(parts), cols


def check_frames(frames: list[bytes], **kw) -> tuple[np.ndarray, columnar.FrameClasses]:
    return three_ways(*columns_of(frames, **kw))


# ----------------------------------------------------------------------------- real captures

def _capture_chunks(path) -> list:
    try:
        plan = plan_capture([path], 1 << 16)
    except CaptureFormatError:
        return []
    out = []
    for spec in plan.chunks:
        buf = read_range(spec.path, spec.start, spec.end)
        out.append((buf, record_columns(spec, buf)))
    return out


@pytest.mark.parametrize("path", sorted(CAPTURES.glob("*.pcap*")), ids=lambda p: p.name)
def test_real_captures(path) -> None:
    for buf, cols in _capture_chunks(path):
        three_ways(buf, cols)


def test_flight_test_capture_slow_frames(tmp_path) -> None:
    """Only IPv6 frames with extension headers (MLD behind hop-by-hop) go per frame."""
    path = tmp_path / "ft.pcap"
    flight_test_capture(path, 20_000, seed=3)
    spec = plan_capture([path], 64 << 20).chunks[0]
    buf = read_range(spec.path, spec.start, spec.end)
    cols = record_columns(spec, buf)
    done, cls = three_ways(buf, cols)
    slow = np.flatnonzero(~done)
    assert cls.slow_frames == len(slow) < len(cols) // 100
    b = np.frombuffer(buf, np.uint8)
    for i in slow.tolist():
        off = int(cols.offset[i])
        assert b[off + 12:off + 14].tobytes() == b"\x86\xdd"
        assert int(b[off + 14 + 6]) in columnar._IP6_EXT


# ----------------------------------------------------------------------------- random frames

@given(st.integers(0, 2**32), st.integers(1, 150))
@settings(max_examples=150, deadline=None)
def test_random_frame_mixes(seed: int, n: int) -> None:
    rng = random.Random(seed)
    frames = [f for _ts, f in random_records(rng, n)]
    lts = [1 if rng.random() < 0.9 else rng.choice([0, 101, 113, 276]) for _ in frames]
    unt = [rng.random() < 0.05 for _ in frames]
    check_frames(frames, linktypes=lts, untimed=unt)


@given(st.integers(0, 2**32))
@settings(max_examples=200, deadline=None)
def test_damaged_frames(seed: int) -> None:
    """Bytes overwritten (mostly in the headers the ladder reads) and frames cut short."""
    rng = random.Random(seed)
    frames = []
    for _ts, f in random_records(rng, 40):
        b = bytearray(f)
        for _ in range(rng.randrange(5)):
            if b:
                hi = len(b) if rng.random() < 0.3 else min(len(b), 90)
                b[rng.randrange(hi)] = rng.choice([0, 0xFF, 0x25, 0xEB, 2, 4, 6, 0x81,
                                                   rng.randrange(256)])
        if rng.random() < 0.4:
            b = b[:rng.randrange(len(b) + 1)]
        frames.append(bytes(b))
    check_frames(frames)


@given(st.lists(st.binary(min_size=0, max_size=120), min_size=1, max_size=30))
@settings(max_examples=100, deadline=None)
def test_random_bytes_behind_ethernet_headers(tails: list[bytes]) -> None:
    heads = [b"\x01\x00\x5e\x00\x00\x01\x02\x00\x00\x00\x00\x01" + et
             for et in (b"\x08\x00", b"\x86\xdd", b"\x81\x00", b"\x88\xf7", b"\x08\x06")]
    check_frames([heads[i % len(heads)] + t for i, t in enumerate(tails)])


# ----------------------------------------------------------------------------- edge cases

A4, B4, M4 = "10.0.0.1", "10.0.0.2", "239.1.2.3"
A6, M6 = "fd00::1", "ff02::1"
MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"


def _u4(payload: bytes, sport: int = 5000, dport: int = 5000, dst: str = A4, **kw) -> bytes:
    return udp_frame(A4, dst, sport, dport, payload, **kw)


def _raw4(l4: bytes, proto: int = 17, dst: str = A4, **kw) -> bytes:
    return ether(MAC2, MAC1, 0x0800, ipv4(A4, dst, proto, l4, fill_checksum=False, **kw), pad=False)


def _ch10(fmt: int, dtype: int = 0x09, body: bytes = b"\0\0\0\0" + bytes(range(128, 228)),
          **kw) -> bytes:
    return ch10_udp(fmt, dtype, 3, 1, body, **kw)


def _with(b: bytes, at: int, new: bytes) -> bytes:
    return b[:at] + new + b[at + len(new):]


def _iena_raw(status: int, payload: bytes, trailer: bytes = b"\xde\xad", size: int | None = None
              ) -> bytes:
    n = 14 + len(payload) + 2
    return struct.pack(">HH", 0x1234, (n // 2) if size is None else size) + bytes(6) + \
        struct.pack(">BBH", status, 0, 7) + payload + trailer


PTP_SYNC = ptp(0x0)
F2 = _ch10(2)
# a first segment as recorders send it: the size field counts the whole packet's words
F2_SEG = bytes([0, 0, 1, 0x12]) + F2[4:12 + 64]
F1 = _ch10(1)
F1_SEG = _ch10(1, segmented=True, segment_size=64)
F3 = _ch10(3)
# A datagram with a valid Format 2 header whose first byte also reads as Format 3 pointing
# (8 + 0x200) at a TMATS packet header inside the first packet: Format 2 is tried first.
_INNER = ch10_packet(0x09, 3, 1, b"\0\0\0\0" + b"\x80" * 480 + ch10_packet(0x01, 0, 0, bytes(4)))
F2_AND_F3 = bytes([3, 0, 0, 2, 0]) + (len(_INNER) // 4).to_bytes(3, "big") + bytes(4) + _INNER
PKT = ch10_packet(0x09, 3, 1, b"\0\0\0\0" + bytes(range(128, 228)))
# as inetx_stream_ca_8hz.pcap sends it: stream 0xCA, 44 data bytes, nanoseconds just below 10^9
INETX = inetx(0xCA, 1011, bytes(range(44)), ptp_ns=755 * 10**9 + 999_999_500)


def _be32(v: int) -> bytes:
    return v.to_bytes(4, "big")

# (name, frame, expected frame type or None, expected path: "fast", "slow" or None)
CASES: list[tuple[str, bytes, str | None, str | None]] = [
    # link layer and VLAN walk
    ("no tag", _u4(b"x" * 20), "UDP", "fast"),
    ("one tag", _u4(b"x" * 20, vlans=[(0x8100, 5)]), "UDP", "fast"),
    ("two tags 88a8", _u4(b"x" * 20, vlans=[(0x88A8, 5), (0x8100, 6)]), "UDP", "fast"),
    ("two tags 9100 9200", _u4(b"x" * 20, vlans=[(0x9100, 5), (0x9200, 6)]), "UDP", "fast"),
    ("three tags", _u4(b"x" * 20, vlans=[(0x8100, 1), (0x8100, 2), (0x8100, 3)]), "UDP", "slow"),
    ("tag cut short", ether(MAC2, MAC1, 0x0800, b"", [(0x8100, 5)], pad=False)[:16], "OTHER",
     "slow"),
    ("second tag cut short",
     ether(MAC2, MAC1, 0x0800, b"", [(0x8100, 5), (0x8100, 6)], pad=False)[:20], "OTHER",
     "slow"),
    ("tag exactly captured", ether(MAC2, MAC1, 0x0800, b"", [(0x8100, 5)], pad=False), "OTHER",
     "slow"),
    ("bare ethernet header", ether(MAC2, MAC1, 0x1234, b"", pad=False), "OTHER", "fast"),
    ("13 bytes", ether(MAC2, MAC1, 0x1234, b"", pad=False)[:13], None, "slow"),
    ("arp", ether(MAC2, MAC1, 0x0806, arp(1, MAC1, A4, MAC2, B4)), "ARP", "fast"),
    ("arp behind tags", ether(MAC2, MAC1, 0x0806, arp(1, MAC1, A4, MAC2, B4),
                              [(0x8100, 1), (0x8100, 2)]), "ARP", "fast"),
    ("l2 other", ether(MAC2, MAC1, 0x88B5, b"hello"), "OTHER", "fast"),
    ("l2 ptp", ether(MAC2, MAC1, 0x88F7, PTP_SYNC), "PTP-Sync", "fast"),
    ("l2 ptp behind tag", ether(MAC2, MAC1, 0x88F7, ptp(0xB), [(0x8100, 3)]), "PTP-Announce",
     "fast"),
    ("l2 ptp v1", ether(MAC2, MAC1, 0x88F7, ptp(0x0, version=1)), "OTHER", "fast"),
    ("l2 ptp 33 bytes", ether(MAC2, MAC1, 0x88F7, PTP_SYNC[:33], pad=False), "OTHER", "fast"),
    ("l2 ptp length 33", ether(MAC2, MAC1, 0x88F7, ptp(0x0, length=33)), "OTHER", "fast"),
    ("l2 ptp length 34", ether(MAC2, MAC1, 0x88F7, ptp(0x0, length=34)), "PTP-Sync", "fast"),
    ("l2 ptp length > captured", ether(MAC2, MAC1, 0x88F7, ptp(0x0, length=45), pad=False),
     "OTHER", "fast"),
    ("l2 ptp unknown type", ether(MAC2, MAC1, 0x88F7, ptp(0x5)), "PTP-Unknown", "fast"),
    # IPv4 header validity
    ("ipv4 19 bytes", ether(MAC2, MAC1, 0x0800, ipv4(A4, B4, 17, b"")[:19], pad=False), "OTHER",
     "slow"),
    ("ipv4 version 5", ether(MAC2, MAC1, 0x0800, _with(ipv4(A4, B4, 17, udp(1, 2, b"")), 0,
                                                        b"\x55")), "OTHER", "slow"),
    ("ipv4 ihl 4", ether(MAC2, MAC1, 0x0800, _with(ipv4(A4, B4, 17, udp(1, 2, b"")), 0,
                                                    b"\x44")), "OTHER", "slow"),
    ("ipv4 ihl beyond captured", ether(MAC2, MAC1, 0x0800, _with(ipv4(A4, B4, 17, b""), 0,
                                                                  b"\x4f"), pad=False),
     "OTHER", "slow"),
    # the ethertype announces IPv4: a version-6 header there is a broken IPv4 header, so the
    # frame carries no IP and joins its MAC pair (docs/DECISIONS.md)
    ("ipv6 packet behind 0800", ether(MAC2, MAC1, 0x0800, ipv6(A6, M6, 17, udp(1, 2, b"xx"))),
     "OTHER", "slow"),
    ("ipv4 options", ip_frame(A4, B4, 17, udp(53, 4000, b"q" * 12), options=b"\x01" * 8), "DNS",
     "fast"),
    ("ipv4 total < ihl", ether(MAC2, MAC1, 0x0800, _with(ipv4(A4, B4, 17, udp(53, 1, b"")), 2,
                                                          b"\x00\x10")), "DNS", "fast"),
    ("ipv4 total == ihl", ether(MAC2, MAC1, 0x0800, _with(ipv4(A4, B4, 17, udp(53, 1, b"")), 2,
                                                           b"\x00\x14")), "UDP", "fast"),
    ("ipv4 total > captured", ether(MAC2, MAC1, 0x0800, _with(ipv4(A4, B4, 17, udp(53, 1, b"")),
                                                               2, b"\x05\xdc")), "DNS", "fast"),
    ("ptp cut by the datagram", ip_frame(A4, B4, 17, udp(319, 319, PTP_SYNC[:40])), "UDP",
     "fast"),
    ("ipv4 total cuts udp", ether(MAC2, MAC1, 0x0800, _with(ipv4(A4, B4, 17, udp(1, 2, b"ab")),
                                                             2, b"\x00\x1a")), "UDP", "fast"),
    ("fragment offset > 0", ether(MAC2, MAC1, 0x0800, ipv4_fragments(A4, M4, udp(1, 2, bytes(3000)))[1]),
     "IP-Fragment", "fast"),
    ("first fragment", ether(MAC2, MAC1, 0x0800, ipv4_fragments(A4, M4, udp(53, 2, bytes(3000)))[0]),
     "DNS", "fast"),
    ("fragment of tcp", ether(MAC2, MAC1, 0x0800, ipv4(A4, B4, 6, bytes(8), frag_offset=8)),
     "IP-Fragment", "fast"),
    ("multicast 224", _u4(b"", dst="224.0.0.1"), "UDP", "fast"),
    ("multicast 239", _u4(b"", dst="239.255.255.255"), "UDP", "fast"),
    ("not multicast 240", _u4(b"", dst="240.0.0.1"), "UDP", "fast"),
    ("not multicast 223", _u4(b"", dst="223.255.255.255"), "UDP", "fast"),
    # IPv6
    ("ipv6 39 bytes", ether(MAC2, MAC1, 0x86DD, ipv6(A6, M6, 17, b"")[:39], pad=False), "OTHER",
     "slow"),
    ("ipv6 version 4", ether(MAC2, MAC1, 0x86DD, ipv4(A4, B4, 17, udp(1, 2, bytes(30)))),
     "OTHER", "slow"),
    ("ipv6 udp", ip_frame(A6, M6, 17, udp(547, 546, b"d" * 10)), "UDP", "fast"),
    ("ipv6 icmpv6", ip_frame(A6, M6, 58, icmp_echo(v6=True)), "ICMP", "fast"),
    ("ipv6 icmp 1", ip_frame(A6, M6, 1, icmp_echo()), "ICMP", "fast"),
    ("ipv6 payload length 0", ether(MAC2, MAC1, 0x86DD, _with(ipv6(A6, M6, 17, udp(123, 1, b"")),
                                                              4, b"\0\0")), "NTP", "fast"),
    ("ipv6 payload length > captured",
     ether(MAC2, MAC1, 0x86DD, _with(ipv6(A6, M6, 17, udp(123, 1, b"")), 4, b"\x10\0")), "NTP",
     "fast"),
    ("ipv6 payload length cuts udp",
     ether(MAC2, MAC1, 0x86DD, _with(ipv6(A6, M6, 17, udp(123, 1, b"abcdef")), 4, b"\0\x06")),
     "UDP", "fast"),
    ("ipv6 tcp", ip_frame("fd00::2", A6, 6, tcp(443, 50000)), "HTTPS", "fast"),
    ("ipv6 fragment", ip_frame(A6, M6, 17, udp(1, 2, b""),
                               ext_headers=[ipv6_fragment_header(8, False, 1)]), "IP-Fragment",
     "slow"),
    *((f"ipv6 ext {nh}", ether(MAC2, MAC1, 0x86DD, _with(ipv6(A6, M6, 17, bytes(16)), 6,
                                                         bytes([nh]))), None, "slow")
      for nh in (0, 43, 44, 51, 60, 135, 139, 140)),
    ("ipv6 no next header 59", ether(MAC2, MAC1, 0x86DD, ipv6(A6, M6, 59, b"")), "OTHER",
     "fast"),
    # transport
    ("icmp", ip_frame(A4, B4, 1, icmp_echo()), "ICMP", "fast"),
    ("igmp", ip_frame(A4, M4, 2, igmp(M4)), "IGMP", "fast"),
    ("gre", ip_frame(A4, B4, 47, bytes(8)), "OTHER", "fast"),
    ("sctp multicast", ip_frame(A4, M4, 132, bytes(8)), "OTHER", "fast"),
    *((f"udp {k} header bytes", _raw4(udp(53, 53, b"")[:k]), "UDP", "fast") for k in range(8)),
    *((f"tcp {k} header bytes", _raw4(tcp(80, 1)[:k], proto=6), "TCP", "fast")
      for k in range(4)),
    ("tcp 4 header bytes", _raw4(tcp(80, 1)[:4], proto=6), "HTTP", "fast"),
    ("tcp 80 443", _raw4(tcp(443, 80), proto=6), "HTTP", "fast"),
    ("tcp 22 80", _raw4(tcp(80, 22), proto=6), "HTTP", "fast"),
    ("tcp 443 443", _raw4(tcp(443, 443), proto=6, dst=M4), "HTTPS", "fast"),
    ("tcp unknown ports", _raw4(tcp(1234, 4321), proto=6), "TCP", "fast"),
    ("udp 67 68", _u4(bytes(30), 68, 67), "DHCP", "fast"),
    ("udp 53 123", _u4(bytes(30), 123, 53), "DNS", "fast"),
    ("udp 161 53", _u4(bytes(30), 161, 53), "DNS", "fast"),
    ("udp 69 123", _u4(bytes(30), 69, 123), "NTP", "fast"),
    ("udp 50000", _u4(bytes(30), 50000, 7), "UDP", "fast"),
    ("udp ulen < 8", _raw4(_with(udp(123, 1, bytes(30)), 4, b"\0\x07")), "NTP", "fast"),
    ("udp ulen 8", _raw4(_with(udp(319, 319, PTP_SYNC), 4, b"\0\x08")), "UDP", "fast"),
    ("udp ulen 9", _raw4(_with(udp(319, 319, PTP_SYNC), 4, b"\0\x09")), "UDP", "fast"),
    ("udp ulen > captured", _raw4(_with(udp(123, 1, bytes(30)), 4, b"\x01\0")), "NTP", "fast"),
    ("udp ulen trims", _raw4(_with(udp(319, 1, PTP_SYNC + b"zz"), 4, b"\0\x2c")), "UDP",
     "fast"),
    # Chapter 10
    ("ch10 f1", _u4(F1), "CH10-Data", "fast"),
    ("ch10 f1 segmented first", _u4(F1_SEG), "CH10-Data", "fast"),
    ("ch10 f1 segmented continuation", _u4(_ch10(1, segmented=True, segment_offset=24)), "UDP",
     "fast"),
    ("ch10 f1 typ 2", _u4(_with(F1, 0, b"\x21")), "UDP", "fast"),
    ("ch10 f2", _u4(F2), "CH10-Data", "fast"),
    ("ch10 f2 first segment", _u4(F2_SEG), "CH10-Data", "fast"),
    ("ch10 f2 continuation", _u4(_ch10(2, segmented=True, segment_offset=64)), "UDP", "fast"),
    ("ch10 f2 words short", _u4(_with(F2, 5, b"\0\0\x01")), "UDP", "fast"),
    ("ch10 f2 segmented words short", _u4(_with(F2_SEG, 5, b"\0\0\x01")), "UDP", "fast"),
    ("ch10 f2 unsegmented words long", _u4(_with(F2, 5, b"\0\x01\0")), "UDP", "fast"),
    ("ch10 f2 byte 4", _u4(_with(F2, 4, b"\x01")), "UDP", "fast"),
    ("ch10 f2 byte 8", _u4(_with(F2, 8, b"\x01")), "UDP", "fast"),
    ("ch10 f2 byte 9", _u4(_with(F2, 9, b"\x01")), "UDP", "fast"),
    ("ch10 f2 seq looks like f1", _u4(ch10_transfer(2, PKT, udp_seq=0x010000)), "CH10-Data",
     "fast"),
    ("ch10 f1 looks like f2", _u4(b"\x01\0\0\x02" + PKT), "CH10-Data", "fast"),
    ("ch10 f2 bad, f1 good", _u4(_with(ch10_transfer(2, PKT, udp_seq=0x010000), 12, b"\0")),
     "UDP", "fast"),
    ("ch10 f2 before f3", _u4(F2_AND_F3), "CH10-Data", "fast"),
    ("ch10 f3", _u4(F3), "CH10-Data", "fast"),
    ("ch10 f3 source id", _u4(ch10_transfer(3, PKT, source_id=5, source_id_len=2)),
     "CH10-Data", "fast"),
    ("ch10 f3 offset", _u4(b"\x03\0\x04\0" + bytes(8) + PKT), "CH10-Data", "fast"),
    ("ch10 f3 offset beyond", _u4(b"\x03\0\xff\x7f" + bytes(4) + PKT), "UDP", "fast"),
    ("ch10 payload 27", _u4(F1[:27]), "UDP", "fast"),
    ("ch10 payload 28", _u4(b"\x01\0\0\0" + ch10_packet(0x09, 3, 1, b""), ), "CH10-Data",
     "fast"),
    ("ch10 bad sync", _u4(_with(F1, 4, b"\x26")), "UDP", "fast"),
    ("ch10 plen % 4", _u4(_with(F1, 8, b"\x7d")), "UDP", "slow"),
    ("ch10 plen < hlen", _u4(_with(F1, 8, b"\x14\0\0\0")), "UDP", "slow"),
    ("ch10 dlen > plen - hlen", _u4(_with(F1, 12, b"\xff\0\0\0")), "UDP", "slow"),
    ("ch10 secondary header", _u4(_ch10(1, secondary_header=True, time_ns=5)), "CH10-Data",
     "fast"),
    ("ch10 bad checksum", _u4(_ch10(1, bad_checksum=True)), "CH10-Data", "fast"),
    ("ch10 tmats", _u4(ch10_tmats_udp(tmats_text())), "TMATS", "fast"),
    ("ch10 tmats bad checksum", _u4(ch10_udp(1, 0x01, 0, 0, b"\0\0\0\0junk",
                                             bad_checksum=True)), "TMATS", "fast"),
    ("ch10 tmats text in data", _u4(_ch10(1, body=b"\0\0\0\0" + tmats_text().encode())),
     "TMATS", "slow"),
    ("ch10 printable non-tmats", _u4(_ch10(3, body=b"\0\0\0\0" + b"hello world;" * 9)),
     "CH10-Data", "slow"),
    ("ch10 empty body", _u4(_ch10(1, body=b"\0\0\0\0")), "CH10-Data", "fast"),
    ("ch10 csdw only cut", _u4(_ch10(1, body=b"\0\0")), "CH10-Data", "fast"),
    ("ch10 body 10 bytes, 1 non-printable", _u4(_ch10(1, body=b"\0\0\0\0" + b"abcdefghi\x00")),
     "CH10-Data", "fast"),
    ("ch10 body 11 bytes, 1 non-printable",
     _u4(_ch10(1, body=b"\0\0\0\0" + b"abcdefghij\x00")), "CH10-Data", "slow"),
    ("ch10 body cut by the datagram", _u4(_ch10(1, body=b"\0\0\0\0" + b"A" * 200)[:60]),
     "CH10-Data", "slow"),
    ("ch10 body cut to binary", _u4(_ch10(1, body=b"\0\0\0\0" + b"\x01" * 20 + b"A" * 200)[:40]),
     "CH10-Data", "slow"),
    ("ch10 on tcp", _raw4(tcp(5000, 5000) + F1, proto=6), "TCP", "fast"),
    ("ch10 multicast", _u4(F2, dst=M4), "CH10-Data", "fast"),
    ("ch10 on ptp port", _u4(F1, 319, 319), "CH10-Data", "fast"),
    ("ch10 on ipv6", ip_frame(A6, M6, 17, udp(8010, 8010, F3)), "CH10-Data", "fast"),
    # PTP over UDP
    ("ptp 319", _u4(PTP_SYNC, 319, 319), "PTP-Sync", "fast"),
    ("ptp 320 source", _u4(ptp(0x8), 320, 40000), "PTP-Follow_Up", "fast"),
    ("ptp 319 destination", _u4(ptp(0x1), 40000, 319), "PTP-Delay_Req", "fast"),
    ("ptp other port", _u4(PTP_SYNC, 321, 321), "UDP", "fast"),
    ("ptp v1", _u4(ptp(0x0, version=1), 319, 319), "UDP", "fast"),
    ("ptp 33 bytes", _u4(PTP_SYNC[:33], 319, 319), "UDP", "fast"),
    ("ptp length 33", _u4(ptp(0x0, length=33), 319, 319), "UDP", "fast"),
    ("ptp length beyond", _u4(ptp(0x0, length=45), 319, 319), "UDP", "fast"),
    ("ptp unknown", _u4(ptp(0x6), 319, 319), "PTP-Unknown", "fast"),
    ("ptp ipv6", ip_frame(A6, "ff02::6b", 17, udp(319, 319, ptp(0xC))), "PTP-Signaling", "fast"),
    ("ptp on 319, iena bytes", _u4(iena(1, "P", 1, 4), 319, 319), "IENA-P", "fast"),
    # IENA
    ("iena p", _u4(iena(1, "P", 1, 4), 50000, 50000), "IENA-P", "fast"),
    ("iena d", _u4(iena(2, "D", 1, 3, words=2)), "IENA-D", "fast"),
    ("iena n", _u4(iena(3, "N", 1, 3, words=3)), "IENA-N", "fast"),
    ("iena m", _u4(iena(4, "M", 1, 5)), "IENA-M", "fast"),
    ("iena q", _u4(iena(5, "Q", 1, 5)), "IENA-Q", "fast"),
    ("iena d bad modulus", _u4(_iena_raw(0x12, bytes(6))), "IENA-Unknown", "fast"),
    ("iena d good modulus", _u4(_iena_raw(0x12, bytes(8))), "IENA-D", "fast"),
    ("iena n bad modulus", _u4(_iena_raw(0x02, bytes(4))), "IENA-Unknown", "fast"),
    ("iena n good modulus", _u4(_iena_raw(0x02, bytes(6))), "IENA-N", "fast"),
    ("iena w 0", _u4(_iena_raw(0x10, bytes(6))), "IENA-Unknown", "fast"),
    ("iena p with w", _u4(_iena_raw(0x97, bytes(2))), "IENA-P", "fast"),
    ("iena empty d", _u4(_iena_raw(0x11, b"")), "IENA-D", "fast"),
    ("iena empty m", _u4(_iena_raw(0x30, b"")), "IENA-M", "fast"),
    ("iena empty q", _u4(_iena_raw(0x20, b"")), "IENA-Q", "fast"),
    ("iena m length 0", _u4(_iena_raw(0x30, b"\x02\0\0\0\0\0")), "IENA-Unknown", "fast"),
    ("iena m overshoot", _u4(_iena_raw(0x30, b"\x02\0\0\0\0\x04ab")), "IENA-Unknown", "fast"),
    ("iena m short head", _u4(_iena_raw(0x30, b"\x02\0\0\0")), "IENA-Unknown", "fast"),
    ("iena q odd length pad", _u4(_iena_raw(0x20, b"\x02\0\0\x03abc\0")), "IENA-Q", "fast"),
    ("iena q odd length no pad", _u4(_iena_raw(0x20, b"\x02\0\0\x03abc")), "UDP", "fast"),
    ("iena q as m", _u4(_iena_raw(0x30, b"\x02\0\0\x02ab")), "IENA-Unknown", "fast"),
    ("iena bad trailer", _u4(_iena_raw(0x80, bytes(4), trailer=b"\xde\xae")), "UDP", "fast"),
    ("iena bad size", _u4(_iena_raw(0x80, bytes(4), size=3)), "UDP", "fast"),
    ("iena 14 bytes", _u4(_iena_raw(0x80, b"")[:14]), "UDP", "fast"),
    ("iena 14 bytes, size 7", _u4(struct.pack(">HH", 1, 7) + bytes(6) + b"\x80\0\xde\xad"),
     "UDP", "fast"),
    ("iena trailer before ethernet padding", _u4(_iena_raw(0x80, b""), dst=M4), "IENA-P", "fast"),
    ("iena on ptp port", _u4(iena(4, "M", 1, 3), 320, 5000), "IENA-M", "fast"),
    # iNET-X (ladder rule after IENA, docs/DECISIONS.md)
    ("inetx", _u4(INETX, 1023, 1023), "INETX", "fast"),
    ("inetx header only", _u4(inetx(1, 2, b"")), "INETX", "fast"),
    ("inetx 27 bytes", _u4(inetx(1, 2, b"")[:27]), "UDP", "fast"),
    ("inetx 27 bytes, length 27", _u4(_with(inetx(1, 2, b"")[:27], 12, _be32(27))), "UDP",
     "fast"),
    ("inetx ns 999999999", _u4(_with(INETX, 20, _be32(10**9 - 1))), "INETX", "fast"),
    ("inetx ns 10^9", _u4(_with(INETX, 20, _be32(10**9))), "UDP", "fast"),
    ("inetx ns 2^32 - 1", _u4(_with(INETX, 20, _be32(2**32 - 1))), "UDP", "fast"),
    ("inetx control word 0x11000001", _u4(_with(INETX, 0, _be32(0x11000001))), "UDP", "fast"),
    ("inetx control word 0x10000000", _u4(_with(INETX, 0, _be32(0x10000000))), "UDP", "fast"),
    ("inetx control word little-endian", _u4(_with(INETX, 0, _be32(0x11))), "UDP", "fast"),
    ("inetx length + 1", _u4(_with(INETX, 12, _be32(len(INETX) + 1))), "UDP", "fast"),
    ("inetx length - 1", _u4(_with(INETX, 12, _be32(len(INETX) - 1))), "UDP", "fast"),
    ("inetx length with udp header", _u4(_with(INETX, 12, _be32(len(INETX) + 8))), "UDP",
     "fast"),
    ("inetx length 2^16 off", _u4(_with(INETX, 12, _be32(len(INETX) + 65536))), "UDP", "fast"),
    ("inetx ulen trims", _raw4(_with(udp(6000, 6000, INETX + b"zz"), 4,
                                     (8 + len(INETX)).to_bytes(2, "big"))), "INETX", "fast"),
    ("inetx ulen cuts the header", _raw4(_with(udp(6000, 6000, INETX), 4, b"\0\x23")), "UDP",
     "fast"),
    ("inetx cut by the snap length", _u4(INETX)[:-5], "UDP", "fast"),
    ("inetx ip total cuts it", ether(MAC2, MAC1, 0x0800, _with(ipv4(A4, B4, 17, udp(
        6000, 6000, INETX)), 2, (20 + 8 + 40).to_bytes(2, "big"))), "UDP", "fast"),
    ("inetx on ptp port", _u4(INETX, 319, 319), "INETX", "fast"),
    ("inetx on ptp port, bad length", _u4(_with(INETX, 12, _be32(3)), 40000, 320), "UDP",
     "fast"),
    ("inetx on dns port", _u4(INETX, 53, 6000), "INETX", "fast"),
    ("inetx on iena port", _u4(INETX, 50000, 50000), "INETX", "fast"),
    ("inetx on ch10 port", _u4(INETX, 8010, 8010), "INETX", "fast"),
    ("inetx ending in 0xdead", _u4(inetx(1, 2, b"ab\xde\xad")), "INETX", "fast"),
    ("inetx ending in 0xdead, ns 10^9", _u4(_with(inetx(1, 2, b"ab\xde\xad"), 20,
                                                   _be32(10**9))), "UDP", "fast"),
    ("inetx pif error bits", _u4(inetx(1, 2, bytes(8), pif=0xFFFFFFFF)), "INETX", "fast"),
    ("inetx multicast", _u4(INETX, dst=M4), "INETX", "fast"),
    ("inetx ipv6 vlan", ip_frame(A6, M6, 17, udp(6000, 6000, INETX), vlans=[(0x8100, 7)]),
     "INETX", "fast"),
    ("inetx qinq", _u4(INETX, vlans=[(0x88A8, 5), (0x8100, 6)]), "INETX", "fast"),
    ("inetx three tags", _u4(INETX, vlans=[(0x8100, 1), (0x8100, 2), (0x8100, 3)]), "INETX",
     "slow"),
    ("inetx on tcp", _raw4(tcp(6000, 6000) + INETX, proto=6), "TCP", "fast"),
    ("inetx first fragment", ether(MAC2, MAC1, 0x0800, ipv4_fragments(
        A4, M4, udp(6000, 6000, inetx(1, 2, bytes(3000))))[0]), "UDP", "fast"),
    ("inetx small first fragment", ether(MAC2, MAC1, 0x0800, ipv4(
        A4, B4, 17, udp(6000, 6000, inetx(1, 2, bytes(8))), frag_offset=0, more_fragments=True)),
     "INETX", "fast"),
]


@pytest.mark.parametrize(("name", "frame", "ftype", "path"), CASES, ids=[c[0] for c in CASES])
def test_ladder_rule(name: str, frame: bytes, ftype: str | None, path: str | None) -> None:
    done, cls = check_frames([frame])
    if ftype is not None:
        assert TYPE_NAMES[cls.ftype[0]] == ftype, name
    if path is not None:
        assert bool(done[0]) == (path == "fast"), name


def test_malformed_ptp_and_iena_payloads_are_named_in_compiled_code() -> None:
    """Random bytes on a PTP port or ethertype and IENA trailers with a wrong size are
    common enough to be decided by the kernel, as the per-frame ladder names them."""
    frames = [_u4(PTP_SYNC[:33], 319, 319), _u4(b"\xff" * 60, 40000, 320),
              ether(MAC2, MAC1, 0x88F7, ptp(0x0, length=33)),
              _u4(_iena_raw(0x80, bytes(4), size=3)), _u4(ptp(0x0, version=1), 319, 319)]
    done, cls = check_frames(frames)
    assert done.all()
    assert [MALFORMED_NAMES[m] if m >= 0 else None for m in cls.malformed.tolist()] == \
        ["PTP-header", "PTP-header", "PTP-header", "IENA-size", None]  # PTPv1: not broken


def test_all_ladder_rules_in_one_chunk() -> None:
    frames = [c[1] for c in CASES]
    done, _ = check_frames(frames)
    assert [bool(d) for d in done] == [c[3] == "fast" for c in CASES]


def test_every_ladder_frame_cut_at_every_length() -> None:
    """Every prefix of every edge case: bounds are the captured bytes, never the buffer's."""
    frames = [c[1][:k] for c in CASES for k in {*range(min(len(c[1]), 120)), len(c[1]) - 1}]
    check_frames(frames)


def cooked(frame: bytes, linktype: int) -> bytes:
    """An Ethernet frame as Linux captures it on `any` (SLL 113, SLL2 276): the MAC pair
    dropped (the source kept as the link-layer address), the protocol type and all that
    follows it unchanged (VLAN tags included)."""
    src, proto, rest = frame[6:12], frame[12:14], frame[14:]
    if linktype == 113:
        return struct.pack(">HHH", 4, 1, len(src)) + src.ljust(8, b"\0") + proto + rest
    return proto + b"\0\0" + struct.pack(">IHBB", 2, 1, 4, len(src)) + src.ljust(8, b"\0") + rest


def ip_layer(frame: bytes) -> tuple[bytes, int | None]:
    """An Ethernet frame's bytes after its link header and VLAN tags, and the IP version its
    ethertype announces (None: not IP)."""
    if len(frame) < 14:
        return b"", None
    (et,), at = struct.unpack_from(">H", frame, 12), 14
    while et in (0x8100, 0x88A8, 0x9100, 0x9200) and len(frame) >= at + 4:
        (et,), at = struct.unpack_from(">H", frame, at + 2), at + 4
    return frame[at:], {0x0800: 4, 0x86DD: 6}.get(et)


def linked(frame: bytes, linktype: int, swapped: bool = False) -> bytes:
    """An Ethernet frame as another link layer carries it: Linux cooked (113, 276), raw IP
    (101, 12, 14, 228, 229) or a NULL / LOOP header (0, 108) with its BSD address family,
    little- / big-endian (`swapped`: the other order: a big-endian host's NULL header, a
    LOOP header that is not one)."""
    if linktype == 1:
        return frame
    if linktype in (113, 276):
        return cooked(frame, linktype)
    ip, version = ip_layer(frame)
    if linktype in (0, 108):
        family = {4: 2, 6: random.Random(len(frame)).choice([24, 28, 30])}.get(version, 7)
        order = ">I" if (linktype == 108) != swapped else "<I"
        return struct.pack(order, family) + ip
    return ip


LINK_TYPES = [113, 276, 101, 12, 14, 228, 229, 0, 108]


@pytest.mark.parametrize("linktype", LINK_TYPES)
def test_ladder_rules_behind_other_link_headers(linktype: int) -> None:
    """Every edge case behind another link layer: kernel == numpy == per frame; a frame the
    fast path takes behind Ethernet as IP it takes there too, with the same record (unless
    the link type admits only the other IP version); frames without IP (no MAC pair to key
    them by) go per frame."""
    eth_done, eth = check_frames([c[1] for c in CASES])
    frames = [linked(c[1], linktype) for c in CASES]
    done, cls = check_frames(frames, linktypes=[linktype] * len(CASES))
    taken = 0
    for i, (name, frame, *_rest) in enumerate(CASES):
        version = ip_layer(frame)[1]
        if version is None:
            assert not done[i], name
            continue
        if eth_done[i] and eth.keys[eth.flow[i]][2] in ("ip4", "ip6") and \
                (linktype, version) not in ((228, 6), (229, 4)):
            assert done[i], name
            assert records(cls)[i] == records(eth)[i], name
            taken += 1
    assert taken >= 5  # the eligible cases exist: the check above is not vacuous


def test_other_link_frames_cut_at_every_length() -> None:
    frames, lts = [], []
    for lt in LINK_TYPES:
        for c in CASES:
            f = linked(c[1], lt, swapped=len(c[1]) % 2 == 0)
            cuts = [f[:k] for k in {*range(min(len(f), 90)), len(f) - 1}]
            frames += cuts
            lts += [lt] * len(cuts)
    check_frames(frames, linktypes=lts)


@given(st.integers(0, 2**32), st.integers(1, 120))
@settings(max_examples=120, deadline=None)
def test_random_mixes_of_link_types(seed: int, n: int) -> None:
    """Random traffic (some of it damaged) behind every link header the fast path reads (and
    a link type it does not) in one chunk, some frames untimed."""
    rng = random.Random(seed)
    frames, lts = [], []
    for _ts, f in random_records(rng, n):
        lt = rng.choice([1, 1, *LINK_TYPES, 9])
        b = bytearray(linked(f, lt, swapped=rng.random() < 0.3))
        if rng.random() < 0.2 and b:
            b[rng.randrange(min(len(b), 64))] = rng.randrange(256)
        if rng.random() < 0.1:
            b = b[:rng.randrange(len(b) + 1)]
        frames.append(bytes(b))
        lts.append(lt)
    check_frames(frames, linktypes=lts, untimed=[rng.random() < 0.05 for _ in frames])


def test_other_link_types_and_untimed_go_per_frame() -> None:
    f = _u4(F1)
    # PPP (9) is not read here; an Ethernet frame's bytes under IPV4_ONLY hold no IPv4 header
    done, cls = check_frames([f, f, f, f], linktypes=[1, 9, 1, 228], untimed=[False, False,
                                                                              True, False])
    assert done.tolist() == [True, False, False, False]
    assert cls.flow[2] == -1


def test_empty_chunk() -> None:
    buf, cols = columns_of([])
    assert columnar.classify_columns(buf, cols).slow_frames == 0


def test_frames_outside_the_buffer_are_refused() -> None:
    buf, cols = columns_of([_u4(F1)])
    bad = RecordColumns(cols.ts, cols.untimed, cols.linktype, cols.offset + 5, cols.caplen)
    with pytest.raises(ValueError, match="outside"):
        columnar.classify_columns(buf, bad)


def test_old_build_falls_back_to_numpy() -> None:
    """A kernel module without classify_frames (or asking for unknown names) is not used."""
    class Old:
        nonprintable = staticmethod(columnar._kernels.nonprintable)

    class Drifted(Old):
        CLASSIFY_NAMES = ("type:No-Such-Type",)
        LADDER_VERSION = 4

        @staticmethod
        def classify_frames(*_args):  # pragma: no cover - must not be called
            raise AssertionError("called")

    class Version2(Drifted):  # before iNET-X and the payload offsets
        CLASSIFY_NAMES = tuple(n for n in columnar._kernels.CLASSIFY_NAMES if "INETX" not in n)
        LADDER_VERSION = 2

    class Version3(Drifted):  # before Linux cooked captures: its frames would differ
        CLASSIFY_NAMES = tuple(n for n in columnar._kernels.CLASSIFY_NAMES if "SLL" not in n)
        LADDER_VERSION = 3

    for mod in (Old, Drifted, Version2, Version3):
        assert columnar._kernel_tables(mod) is None
    buf, cols = columns_of([_u4(F1), _u4(ch10_tmats_udp(tmats_text())), _u4(INETX)])
    want = records(columnar.classify_columns(buf, cols))
    for mod in (Old, Drifted, Version2, Version3):
        with mock.patch.object(columnar, "_kernels", mod):
            assert records(columnar.classify_columns(buf, cols)) == want
    assert columnar._kernel_tables(columnar._kernels) is not None


def test_inetx_hints_and_payload() -> None:
    """An iNET-X frame carries the INETX hint beside its port hint (or UDP); its payload
    offsets span the datagram's payload, without bytes past the UDP length."""
    from streamlens_dist.dissect.names import HINT_BIT, hint_names

    assert columnar._kernels.LADDER_VERSION >= 3
    frames = [_u4(INETX, 1023, 1023), _u4(INETX, 53, 6000, dst=M4),
              _raw4(_with(udp(6000, 6000, INETX + b"zz"), 4, (8 + len(INETX)).to_bytes(2, "big"))),
              ether(MAC2, MAC1, 0x88F7, PTP_SYNC, [(0x8100, 3)], pad=False)]
    buf, cols = columns_of(frames)
    done, cls = three_ways(buf, cols)
    assert done.all()
    assert [hint_names(int(h)) for h in cls.hints] == [
        {"UDP", "INETX"}, {"DNS", "INETX", "Multicast"}, {"UDP", "INETX"}, {"PTP"}]
    assert HINT_BIT["INETX"] == 1 << 22
    b = np.frombuffer(buf, np.uint8)
    for i, want in enumerate((INETX, INETX, INETX, PTP_SYNC)):
        off, n = int(cls.app_off[i]), int(cls.app_len[i])
        assert b[off:off + n].tobytes() == want
