"""Tests of the synthetic capture generator (streamlens_dist.synth).

Containers are read back with dpkt and with small independent readers that take integer
timestamps from the record headers; tshark (when installed) is the outside referee.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import random
import shutil
import struct
import subprocess
from collections import defaultdict
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlens_dist import synth
from streamlens_dist.synth import (
    Interface,
    PcapngWriter,
    ch10_checksum,
    ch10_udp,
    iena,
    pcap_bytes,
    pcapng_bytes,
)

TSHARK = shutil.which("tshark") or ("/usr/bin/tshark" if Path("/usr/bin/tshark").exists() else None)
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")


# --------------------------------------------------------------------------- readers


def read_pcap(data: bytes) -> tuple[dict[str, int | bool], list[tuple[int, int, bytes]]]:
    """(header fields, [(ts_ns, orig_len, frame)]) with integer timestamps."""
    magic = data[:4]
    e = ">" if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d") else "<"
    nano = magic in (b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1")
    _, major, minor, _, _, snaplen, linktype = struct.unpack_from(e + "IHHiIII", data)
    out, pos = [], 24
    while pos < len(data):
        sec, frac, incl, orig = struct.unpack_from(e + "IIII", data, pos)
        out.append((sec * 10**9 + frac * (1 if nano else 1000), orig, data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    head = {"big": e == ">", "nano": nano, "major": major, "minor": minor,
            "snaplen": snaplen, "linktype": linktype}
    return head, out


def read_pcapng(data: bytes) -> list[tuple[int | None, int, int, bytes]]:
    """[(ts_ns | None, iface, linktype, frame)] — the PROTOCOLS.md §7.4 walker, strict."""
    f, end, ifaces, out = io.BytesIO(data), "<", [], []
    while (hdr := f.read(8)) and len(hdr) == 8:
        if hdr[:4] == b"\x0a\x0d\x0d\x0a":
            bom = f.read(4)
            end = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            blen = struct.unpack(end + "I", hdr[4:])[0]
            rest = f.read(blen - 12)
            assert struct.unpack(end + "I", rest[-4:])[0] == blen
            ifaces = []
            continue
        btype, blen = struct.unpack(end + "II", hdr)
        assert blen % 4 == 0 and blen >= 12
        raw = f.read(blen - 8)
        assert struct.unpack(end + "I", raw[-4:])[0] == blen
        body = raw[:-4]
        if btype == 1:
            lt, _, snap = struct.unpack_from(end + "HHI", body)
            res, tsoff, pos = 6, 0, 8
            while pos + 4 <= len(body):
                code, olen = struct.unpack_from(end + "HH", body, pos)
                if code == 0:
                    break
                val = body[pos + 4 : pos + 4 + olen]
                if code == 9:
                    res = val[0]
                elif code == 14:
                    tsoff = struct.unpack(end + "q", val)[0]
                pos += 4 + olen + (-olen % 4)
            ifaces.append((lt, snap, res, tsoff))
        elif btype in (6, 2):
            if btype == 6:
                ifid, hi, lo, cap, _ = struct.unpack_from(end + "IIIII", body)
            else:
                ifid, _, hi, lo, cap, _ = struct.unpack_from(end + "HHIIII", body)
            lt, _, res, tsoff = ifaces[ifid]
            t = (hi << 32) | lo
            if res & 0x80:
                ns = (t * 10**9) >> (res & 0x7F)
            else:
                ns = t * 10 ** (9 - res) if res <= 9 else t // 10 ** (res - 9)
            out.append((ns + tsoff * 10**9, ifid, lt, body[20 : 20 + cap]))
        elif btype == 3:
            orig = struct.unpack_from(end + "I", body)[0]
            lt, snap, _, _ = ifaces[0]
            out.append((None, 0, lt, body[4 : 4 + min(orig, snap or orig, len(body) - 4)]))
    return out


# --------------------------------------------------------------------------- pcap writer

frames_st = st.lists(st.binary(min_size=0, max_size=120), min_size=0, max_size=20)
ts_st = st.integers(min_value=0, max_value=synth.MAX_PCAP_NS)


@settings(max_examples=60, deadline=None)
@given(frames=frames_st, data=st.data(), nano=st.booleans(), big=st.booleans())
def test_pcap_roundtrip_property(frames, data, nano, big):
    unit = 1 if nano else 1000
    stamps = data.draw(st.lists(ts_st, min_size=len(frames), max_size=len(frames)))
    records = [(ts - ts % unit, fr) for ts, fr in zip(stamps, frames, strict=True)]
    raw = pcap_bytes(records, nanosecond=nano, big_endian=big, linktype=1)
    head, back = read_pcap(raw)
    assert (head["nano"], head["big"], head["linktype"]) == (nano, big, 1)
    assert (head["major"], head["minor"]) == (2, 4)
    assert [(ts, fr) for ts, _, fr in back] == records
    reader = dpkt.pcap.Reader(io.BytesIO(raw))
    assert [bytes(buf) for _, buf in reader] == [fr for _, fr in records]


def test_write_pcap_streams_to_disk_and_truncates(tmp_path):
    records = ((1_000_000_000 + i * 1000, bytes([i % 256]) * (10 + i)) for i in range(300))
    path = tmp_path / "a.pcap"
    assert synth.write_pcap(path, records, snaplen=100, linktype=101) == 300
    head, back = read_pcap(path.read_bytes())
    assert head["snaplen"] == 100 and head["linktype"] == 101
    assert [len(fr) for _, _, fr in back] == [min(10 + i, 100) for i in range(300)]
    assert [orig for _, orig, _ in back] == [10 + i for i in range(300)]
    assert back[5][0] == 1_000_005_000


def test_pcap_microseconds_store_floor_division():
    _, back = read_pcap(pcap_bytes([(1_234_567_999, b"x")]))
    assert back[0][0] == 1_234_567_000


def test_pcap_rejects_unstorable_timestamp():
    with pytest.raises(ValueError, match="outside"):
        pcap_bytes([(-1000, b"x")])
    with pytest.raises(ValueError, match="outside"):
        pcap_bytes([(synth.MAX_PCAP_NS + 1, b"x")], nanosecond=True)


# --------------------------------------------------------------------------- pcapng writer

RESOLUTIONS = [6, 9, 0, 3, 12, 0x80 | 10, 0x80 | 20, 0x80 | 30, 0x80 | 40]


@st.composite
def pcapng_case(draw):
    ifaces = [
        Interface(linktype=draw(st.sampled_from([1, 101, 113, 276])),
                  snaplen=draw(st.sampled_from([0, 0, 40, 65535])),
                  tsresol=draw(st.sampled_from(RESOLUTIONS)),
                  tsoffset=draw(st.integers(-10**6, 10**9)))
        for _ in range(draw(st.integers(1, 3)))
    ]
    records = []
    for _ in range(draw(st.integers(0, 15))):
        frame = draw(st.binary(max_size=80))
        index = draw(st.integers(0, len(ifaces) - 1))
        if draw(st.integers(0, 5)) == 0:
            records.append((None, 0, frame))
            continue
        a, b = ifaces[index].tick_ratio()
        ticks = draw(st.integers(0, 2**64 - 1))
        records.append(((ticks * a) // b + ifaces[index].tsoffset * 10**9, index, frame))
    return ifaces, records


@settings(max_examples=80, deadline=None)
@given(case=pcapng_case(), big=st.booleans())
def test_pcapng_roundtrip_property(case, big):
    ifaces, records = case
    back = read_pcapng(pcapng_bytes(records, ifaces, big_endian=big))
    expected = []
    for ts, index, frame in records:
        snap = ifaces[index].snaplen
        expected.append((ts, index, ifaces[index].linktype, frame[:snap] if snap else frame))
    assert back == expected


def test_pcapng_readable_by_dpkt():
    records = [(1_700_000_000_000_000_000 + i * 1000, 0, bytes(60)) for i in range(5)]
    raw = pcapng_bytes(records + [(None, 0, bytes(64))], [Interface(1)])
    got = list(dpkt.pcapng.Reader(io.BytesIO(raw)))
    assert len(got) == 5  # dpkt skips the SPB (PROTOCOLS.md §7.4)
    assert all(bytes(buf) == bytes(60) for _, buf in got)


def test_ticks_for_ns_exactness():
    assert synth.ticks_for_ns(1_500_000_000, Interface(tsresol=3)) == 1500
    assert synth.ticks_for_ns(7, Interface(tsresol=12)) == 7000
    assert synth.ticks_for_ns(2 * 10**9, Interface(tsresol=6, tsoffset=1)) == 10**6
    binary = Interface(tsresol=0x80 | 30)
    assert (synth.ticks_for_ns(123_456_789, binary) * 10**9) >> 30 == 123_456_789
    with pytest.raises(ValueError, match="not exactly representable"):
        synth.ticks_for_ns(1_500_000_001, Interface(tsresol=6))
    with pytest.raises(ValueError, match="not exactly representable"):
        synth.ticks_for_ns(1, Interface(tsresol=0x80 | 10))  # 2^-10 s ticks
    with pytest.raises(ValueError, match="not exactly representable"):
        synth.ticks_for_ns(0, Interface(tsresol=9, tsoffset=5))  # before the offset


def test_pcapng_argument_errors():
    with pytest.raises(ValueError, match="interface 0"):
        pcapng_bytes([(None, 1, b"x")], [Interface(), Interface()])
    with pytest.raises(ValueError, match="not declared"):
        pcapng_bytes([(0, 2, b"x")], [Interface()])
    with pytest.raises(ValueError, match="one byte"):
        Interface(tsresol=256)


def test_pcapng_writer_sections_and_obsolete_blocks():
    out = io.BytesIO()
    w = PcapngWriter(out)
    w.section(big_endian=True)
    w.interface(Interface(linktype=1, tsresol=9))
    w.obsolete_packet(5, 0, b"abc")
    w.block(0x0BAD, b"custom")  # unknown block types are skipped by readers
    w.section(big_endian=False)
    w.interface(Interface(linktype=101))
    w.interface(Interface(linktype=1, tsresol=3))
    w.enhanced_packet(2_000_000, 1, b"de")
    w.simple_packet(b"fgh")
    assert read_pcapng(out.getvalue()) == [(5, 0, 1, b"abc"), (2_000_000, 1, 1, b"de"),
                                           (None, 0, 101, b"fgh")]


# --------------------------------------------------------------------------- frames


def _ip_checksum_ok(header: bytes) -> bool:
    return synth.inet_checksum(header) == 0  # a correct checksum makes the sum 0xFFFF


def _transport_checksum_ok(ip: dpkt.ip.IP | dpkt.ip6.IP6, proto: int, seg: bytes) -> bool:
    if isinstance(ip, dpkt.ip.IP):
        pseudo = ip.src + ip.dst + struct.pack(">xBH", proto, len(seg))
    else:
        pseudo = ip.src + ip.dst + struct.pack(">I3xB", len(seg), proto)
    data = pseudo + seg + b"\0" * (len(seg) % 2)
    return sum(struct.unpack(f">{len(data) // 2}H", data)) % 0xFFFF == 0


def test_udp_frame_layers_lengths_and_checksums():
    frame = synth.udp_frame("192.168.28.10", "239.28.0.1", 8010, 8011, b"hello",
                            vlans=[(0x88A8, 200), (0x8100, 20)], ident=7)
    eth = dpkt.ethernet.Ethernet(frame)
    assert len(frame) == 60  # padded to the Ethernet minimum
    assert eth.dst == bytes.fromhex("01005e1c0001")
    assert [t.id for t in eth.vlan_tags] == [200, 20]
    ip = eth.data
    assert isinstance(ip, dpkt.ip.IP) and ip.len == 20 + 8 + 5 and ip.id == 7
    assert _ip_checksum_ok(bytes(ip)[:20])
    assert isinstance(ip.data, dpkt.udp.UDP) and ip.data.ulen == 13
    assert _transport_checksum_ok(ip, 17, bytes(ip.data))


def test_ipv4_fragments_reassemble():
    dgram = synth.udp(5004, 5004, bytes(range(256)) * 20)
    frags = synth.ipv4_fragments("10.0.0.1", "10.0.0.2", dgram, ident=99, mtu=1500)
    assert len(frags) == 4
    parts = b""
    for i, raw in enumerate(frags):
        ip = dpkt.ip.IP(raw)
        assert _ip_checksum_ok(raw[:20]) and ip.id == 99 and len(raw) <= 1500
        assert ip.offset * 8 == len(parts) and bool(ip.mf) == (i < 3)
        parts += bytes(ip.data) if i else bytes(ip)[20:]
    assert parts[8:] == dgram[8:] and parts[:6] == dgram[:6]
    assert _transport_checksum_ok(dpkt.ip.IP(frags[0]), 17, parts)


def test_ipv6_extension_headers_and_checksums():
    hop = (0, b"\x05\x02\x00\x00")
    pkt = synth.ipv6("fe80::1", "ff02::16", 17, synth.udp(1, 2, b"xyz"), [hop, (60, b"")])
    ip6 = dpkt.ip6.IP6(pkt)
    assert ip6.nxt == 0 and ip6.p == 17 and ip6.plen == len(pkt) - 40
    assert isinstance(ip6.data, dpkt.udp.UDP) and ip6.data.data == b"xyz"
    assert _transport_checksum_ok(ip6, 17, bytes(ip6.data))
    frag = synth.ipv6("fd00::1", "fd00::2", 17, b"\0" * 16, [synth.ipv6_fragment_header(8, True, 5)])
    ip6 = dpkt.ip6.IP6(frag)
    assert ip6.extension_hdrs[44].frag_off == 1 and ip6.extension_hdrs[44].m_flag == 1


def test_small_builders():
    eth = dpkt.ethernet.Ethernet(synth.ip_frame("10.0.0.1", "10.0.0.2", 1, synth.icmp_echo(1, 2)))
    assert isinstance(eth.data.data, dpkt.icmp.ICMP) and synth.inet_checksum(bytes(eth.data.data)) == 0
    arp = dpkt.ethernet.Ethernet(synth.ether("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", 0x0806,
                                             synth.arp(1, "02:00:00:00:00:01", "10.0.0.1",
                                                       b"\0" * 6, "10.0.0.2")))
    assert isinstance(arp.data, dpkt.arp.ARP) and arp.data.tpa == bytes([10, 0, 0, 2])
    seg = dpkt.ip.IP(synth.ipv4("10.0.0.1", "10.0.0.2", 6, synth.tcp(1234, 80, b"GET", 0x18)))
    assert isinstance(seg.data, dpkt.tcp.TCP) and seg.data.dport == 80 and seg.data.data == b"GET"
    assert _transport_checksum_ok(seg, 6, bytes(seg.data))
    assert synth.igmp("239.1.2.3")[4:] == bytes([239, 1, 2, 3])
    assert synth.multicast_mac("ff0e::181") == "33:33:00:00:01:81"
    with pytest.raises(ValueError, match="multiple of 8"):
        synth.ipv4("10.0.0.1", "10.0.0.2", 17, b"", frag_offset=3)


# --------------------------------------------------------------------------- payloads

SYNC = b"\x25\xeb"


def ch10_hdr_ok(buf: bytes, off: int):
    """PROTOCOLS.md §1.8, verbatim."""
    if len(buf) - off < 24 or buf[off : off + 2] != SYNC:
        return None
    ch, plen, dlen, dtv, seq, flags, dtype = struct.unpack_from("<HIIBBBB", buf, off + 2)
    hlen = 36 if flags & 0x80 else 24
    if plen % 4 or plen < hlen or dlen > plen - hlen:
        return None
    csum_ok = sum(struct.unpack_from("<11H", buf, off)) & 0xFFFF == struct.unpack_from(
        "<H", buf, off + 22)[0]
    return dtype, csum_ok


def find_ch10(p: bytes):
    """PROTOCOLS.md §1.8, verbatim."""
    if len(p) < 28:
        return None
    cands = []
    if (p[3] & 0x0F) == 2 and int.from_bytes(p[5:8], "big") * 4 == len(p) - 12 \
            and p[4] == 0 and p[8:10] == b"\0\0":
        cands.append((2, 12))
    fmt, typ = p[0] & 0x0F, p[0] >> 4
    if fmt == 1 and typ == 0:
        cands.append((1, 4))
    elif fmt == 1 and typ == 1 and struct.unpack_from("<I", p, 8)[0] == 0:
        cands.append((1, 12))
    elif fmt == 3:
        cands.append((3, 8 + struct.unpack_from("<H", p, 2)[0]))
    for f, off in cands:
        if ch10_hdr_ok(p, off) is not None:
            return f, off
    return None


@pytest.mark.parametrize("fmt", [1, 2, 3])
@pytest.mark.parametrize("secondary", [False, True])
@pytest.mark.parametrize("size", [4, 5, 7, 300])
def test_ch10_udp_detected_with_valid_checksums(fmt, secondary, size):
    body = bytes(range(256)) * 2
    p = ch10_udp(fmt, 0x09, 3, 0x1FF, body[:size], secondary_header=secondary, time_ns=10**18 + 5)
    found = find_ch10(p)
    assert found is not None
    off = found[1]
    assert found[0] == fmt and ch10_hdr_ok(p, off) == (0x09, True)
    assert ch10_checksum(p[off : off + 24]) == struct.unpack_from("<H", p, off + 22)[0]
    ch, plen, dlen, _, seq, flags, _ = struct.unpack_from("<HIIBBBB", p, off + 2)
    hlen = 36 if secondary else 24
    assert (ch, dlen, seq, bool(flags & 0x80)) == (3, size, 0xFF, secondary)
    assert plen % 4 == 0 and plen == len(p) - off == hlen + size + (-size % 4)
    if secondary:
        words = struct.unpack_from("<6H", p, off + 24)
        assert sum(words[:5]) & 0xFFFF == words[5]
        assert struct.unpack_from("<II", p, off + 24) == (5, 10**9)


def test_ch10_bad_checksum_segments_and_tmats():
    p = ch10_udp(1, 0x19, 5, 1, bytes(40), bad_checksum=True)
    assert ch10_hdr_ok(p, 4) == (0x19, False)
    for fmt in (1, 2):
        first = ch10_udp(fmt, 0x68, 7, 2, bytes(200), segmented=True, segment_size=100)
        rest = ch10_udp(fmt, 0x68, 7, 2, bytes(200), segmented=True, segment_offset=100)
        assert find_ch10(first) is not None and find_ch10(rest) is None
        assert len(first) + len(rest) == 2 * 12 + 24 + 200
    t = synth.ch10_tmats_udp(synth.tmats_text())
    assert ch10_hdr_ok(t, 4) == (0x01, True) and b"G\\PN:FLIGHT_TEST_1;" in t
    with pytest.raises(ValueError, match="1, 2 or 3"):
        synth.ch10_transfer(4, b"")


def iena_type(p: bytes) -> str:
    """PROTOCOLS.md §3.3 rule, steps 2 and 3 (no key map)."""
    size, status = struct.unpack_from(">H", p, 2)[0], p[10]
    w = status & 0x07
    if status & 0x80:
        return "P"
    if status & 0x20:
        t = "M" if status & 0x10 else "Q"
    elif w:
        t = "D" if status & 0x10 else "N"
    else:
        return "Unknown"
    payload = p[14 : size * 2 - 2]
    if t in "DN":
        return t if len(payload) % (2 * (w + (2 if t == "D" else 1))) == 0 else "Unknown"
    pos, head = 0, 6 if t == "M" else 4
    while pos < len(payload):
        n = struct.unpack_from(">H", payload, pos + head - 2)[0]
        if n == 0:
            return "Unknown"
        pos += head + n + n % 2
    return t if pos == len(payload) else "Unknown"


@settings(max_examples=100, deadline=None)
@given(ptype=st.sampled_from("PDNMQ"), n=st.integers(1, 60), words=st.integers(1, 7),
       key=st.integers(0, 0xFFFF), seq=st.integers(0, 10**6))
def test_iena_structure_matches_type(ptype, n, words, key, seq):
    p = iena(key, ptype, seq, n, words=words, time_us=123)
    size = struct.unpack_from(">H", p, 2)[0]
    assert size * 2 == len(p) and p[-2:] == b"\xde\xad"
    assert struct.unpack_from(">H", p, 12)[0] == seq & 0xFFFF
    assert iena_type(p) == ptype
    assert iena_type(iena(key, ptype, seq, n, words=words, key_status=0)) == "Unknown"


def test_ptp_and_inetx_layouts():
    for name, mt in synth.PTP_TYPES.items():
        msg = synth.ptp(mt, seq=9, domain=4)
        length = struct.unpack_from(">H", msg, 2)[0]
        assert msg[0] & 0x0F == mt and msg[1] & 0x0F == 2 and length == len(msg) >= 44, name
        assert msg[4] == 4 and struct.unpack_from(">H", msg, 30)[0] == 9
    assert len(synth.ptp(0xB)) == 64 and len(synth.ptp(0x9)) == 54
    assert struct.unpack_from(">H", synth.ptp(0, length=999), 2)[0] == 999
    x = synth.inetx(0x0A, 5, b"\1" * 20, ptp_ns=3 * 10**9 + 7)
    assert struct.unpack(">7I", x[:28]) == (0x11000000, 0x0A, 5, 48, 3, 7, 0)


# --------------------------------------------------------------------------- scenario


def _digest(records) -> str:
    h = hashlib.sha256()
    for ts, frame in records:
        h.update(struct.pack("<qI", ts, len(frame)) + frame)
    return h.hexdigest()


def test_scenario_deterministic_ordered_and_streaming():
    a = list(synth.flight_test_records(3000, seed=5))
    assert _digest(a) == _digest(synth.flight_test_records(3000, seed=5))
    assert _digest(a) != _digest(synth.flight_test_records(3000, seed=6))
    stamps = [ts for ts, _ in a]
    assert stamps == sorted(stamps) and all(ts % 1000 == 0 for ts in stamps)
    assert stamps[0] >= synth.DEFAULT_START_NS
    ns = [ts for ts, _ in synth.flight_test_records(500, seed=5, resolution_ns=1)]
    assert any(ts % 1000 for ts in ns)
    gen = synth.flight_test_records(10**9)  # lazily streamed: taking a few is instant
    assert len([next(gen) for _ in range(10)]) == 10


def _flow_of(frame: bytes) -> tuple[str, str] | None:
    eth = dpkt.ethernet.Ethernet(frame)
    ip = eth.data
    if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
        return ipaddress.ip_address(ip.src).compressed, ipaddress.ip_address(ip.dst).compressed
    return None


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "ft.pcap"
    truth = synth.flight_test_capture(path, 20_000, seed=11, gap_rate=0.01)
    return path, truth


def test_scenario_ground_truth_gaps(capture):
    path, truth = capture
    _, records = read_pcap(path.read_bytes())
    assert truth.n_frames == len(records) == 20_000 == sum(truth.stream_frames.values())
    assert (truth.first_ns, truth.last_ns) == (records[0][0], records[-1][0])
    per_flow: dict[tuple[str, str], list[int]] = defaultdict(list)
    for number, (_, _, frame) in enumerate(records, 1):
        flow = _flow_of(frame)
        if flow is not None and not (flow == ("192.168.28.10", "239.28.0.1")
                                     and find_ch10(frame[42:])
                                     and ch10_hdr_ok(frame[42:], 4)[0] == 0x01):
            per_flow[flow].append(number)  # TMATS left out of the ch10-pcm flow
    infos = {s.name: s for s in truth.streams}
    assert len(truth.gaps) >= 10 and {g.stream for g in truth.gaps} <= {
        name for name, s in infos.items() if s.gaps}
    for gap in truth.gaps:
        numbers = per_flow[(gap.src, gap.dst)]
        i = numbers.index(gap.frame)
        assert numbers[i - 1] == gap.prev_frame
        assert records[gap.frame - 1][0] - records[gap.prev_frame - 1][0] == gap.gap_ns
        period = infos[gap.stream].period_ns
        assert abs(gap.gap_ns - (gap.missed + 1) * period) < period // 4
    # away from the gaps, IATs of gap-eligible streams stay near one period
    for name, info in infos.items():
        if info.gaps:
            gap_frames = {g.frame for g in truth.gaps if g.stream == name}
            numbers = per_flow[(info.src, info.dst)]
            for prev, cur in zip(numbers, numbers[1:], strict=False):
                if cur not in gap_frames:
                    assert abs(records[cur - 1][0] - records[prev - 1][0] - info.period_ns) \
                        < info.period_ns // 4


def test_scenario_contents(capture):
    path, truth = capture
    _, records = read_pcap(path.read_bytes())
    seen: set[str] = set()
    for _, _, frame in records:
        p = None
        eth = dpkt.ethernet.Ethernet(frame)
        if isinstance(eth.data, dpkt.ip.IP) and isinstance(eth.data.data, dpkt.udp.UDP):
            u = eth.data.data
            p = bytes(u)[8 : u.ulen]
            if (hit := find_ch10(p)) is not None:
                seen.add("TMATS" if ch10_hdr_ok(p, hit[1])[0] == 1 else f"CH10-{hit[0]}")
            elif len(p) >= 16 and struct.unpack_from(">H", p, 2)[0] * 2 == len(p) \
                    and p[-2:] == b"\xde\xad":
                seen.add("IENA-" + iena_type(p))
            elif p[:4] == b"\x11\x00\x00\x00":
                seen.add("iNET-X")
        if b"\x88\xf7" in frame[12:20]:
            seen.add("PTP-L2")
    assert {"TMATS", "CH10-1", "CH10-2", "CH10-3", "IENA-N", "IENA-D", "IENA-M", "IENA-P",
            "IENA-Q", "iNET-X", "PTP-L2"} <= seen
    assert truth.stream_frames["fragmented"] > 0 and truth.stream_frames["ipv6-icmp"] > 0


# --------------------------------------------------------------------------- random records


def test_random_records_properties():
    for seed in range(20):
        recs = synth.random_records(random.Random(seed), 300)
        assert recs == synth.random_records(random.Random(seed), 300)
        assert len(recs) == 300
        assert all(0 <= ts <= synth.MAX_PCAP_NS and ts % 1000 == 0 for ts, _ in recs)
        _, back = read_pcap(pcap_bytes(recs))
        assert [(ts, fr) for ts, _, fr in back] == recs
    recs = synth.random_records(random.Random(1), 3000, resolution_ns=1)
    deltas = [b[0] - a[0] for a, b in zip(recs, recs[1:], strict=False)]
    assert min(deltas) < 0 and 0 in deltas and max(abs(d) for d in deltas) > 10**12


# --------------------------------------------------------------------------- tshark


def _tshark(path: Path, *fields: str, opts: tuple[str, ...] = ()) -> list[list[str]]:
    cmd = [TSHARK, "-n", "-r", str(path), *opts, "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split("\t") for line in out.splitlines()]


@needs_tshark
def test_tshark_recognises_scenario(capture):
    path, truth = capture
    rows = _tshark(path, "frame.protocols", "ip.checksum.status",
                   opts=("-o", "ip.check_checksum:TRUE"))
    assert len(rows) == truth.n_frames
    layers = set()
    for protocols, status in rows:
        layers.update(protocols.split(":"))
        if ":ip:" in protocols:
            assert status == "1", protocols  # 1 = good
    assert {"ptp", "udp", "tcp", "arp", "vlan", "ieee8021ad", "ipv6", "icmp", "icmpv6", "igmp",
            "dns", "ntp", "http", "dhcp"} <= layers


@needs_tshark
@pytest.mark.parametrize("kind", ["pcap-ns-be", "pcapng"])
def test_tshark_reads_our_timestamps(tmp_path, kind):
    recs = synth.random_records(random.Random(7), 200, resolution_ns=1)
    recs = [(ts, fr) for ts, fr in recs if len(fr) >= 14]
    path = tmp_path / "x.cap"
    if kind == "pcapng":
        ifaces = [Interface(1, tsresol=9, tsoffset=-3), Interface(1, tsresol=6, tsoffset=2)]
        ng = [(ts + 3 * 10**9, 0, fr) if i % 2 else (ts - ts % 1000 + 2 * 10**9, 1, fr)
              for i, (ts, fr) in enumerate(recs)]
        synth.write_pcapng(path, ng, ifaces, big_endian=True)
        expected = [ts for ts, _, _, _ in read_pcapng(path.read_bytes())]
        assert expected == [ts for ts, _, _ in ng]
    else:
        synth.write_pcap(path, recs, nanosecond=True, big_endian=True)
        expected = [ts for ts, _ in recs]
    rows = _tshark(path, "frame.time_epoch")
    got = [int(r[0].replace(".", "")) for r in rows]
    assert got == expected


def test_scenario_capture_options(tmp_path):
    path = tmp_path / "ns.pcap"
    truth = synth.flight_test_capture(path, 400, seed=2, nanosecond=True, big_endian=True,
                                      resolution_ns=1)
    head, records = read_pcap(path.read_bytes())
    assert head["nano"] and head["big"] and len(records) == truth.n_frames == 400
    assert [ts for ts, _, _ in records] == [ts for ts, _ in synth.flight_test_records(
        400, seed=2, resolution_ns=1)]
    with pytest.raises(ValueError, match="nanosecond=True"):
        synth.flight_test_capture(path, 10, resolution_ns=1)
