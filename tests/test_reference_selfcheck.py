"""Self-checks of the reference oracle (tests/reference.py), independent of the engine.

1. Real captures: frame counts against PROVENANCE.md and capinfos, IPv4 per-direction
   frame counts against tshark's conversation tables (expected-tshark.md).
2. Hand-built pcaps with known answers: IAT statistics, negative IAT, outlier exactly at
   the threshold (not an outlier), sigma "2.5", file-set ordering, truncated last record.
3. Hand-built pcapng: two interfaces with different if_tsresol, an if_tsoffset, SPB,
   skipped block types, a second big-endian section, a tick count beyond int64.
"""

from __future__ import annotations

import math
import re
import shutil
import statistics
import struct
import subprocess
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from reference import decode_frame, read_capture, reference_analyze, reference_frames

CAPTURES = Path(__file__).resolve().parent / "captures"

# --------------------------------------------------------------------------------------
# 1. Real captures
# --------------------------------------------------------------------------------------


def provenance_packet_counts() -> dict[str, int]:
    """file name -> capinfos packet count, from the index table of PROVENANCE.md
    (only captures that are not corrupt on purpose)."""
    counts = {}
    for line in (CAPTURES / "PROVENANCE.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not re.search(r"\.pcap(ng)?$", cells[0]):
            continue
        if not cells[6].startswith("no"):
            continue
        counts[cells[0]] = int(re.match(r"\d+", cells[2]).group(0))
    return counts


def tshark_conversations() -> dict[str, tuple[list, bool]]:
    """file name -> ([(a, b, frames b->a, frames a->b)], table complete?).
    A table cut at 15 lines has no closing ==== line: it is incomplete."""
    row = re.compile(
        r"^(\S+)\s+<->\s+(\S+)\s+(\d+) \d+ (?:bytes|kB|MB)\s+(\d+) \d+ (?:bytes|kB|MB)\s+\d+"
    )
    rows: dict[str, list] = {}
    rules: dict[str, int] = {}
    name = None
    for line in (CAPTURES / "expected-tshark.md").read_text().splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
            rows[name], rules[name] = [], 0
        elif name is not None and line.startswith("===="):
            rules[name] += 1
        elif name is not None and (m := row.match(line)):
            rows[name].append((m.group(1), m.group(2), int(m.group(3)), int(m.group(4))))
    return {name: (rows[name], rules[name] >= 2) for name in rows}


PACKET_COUNTS = provenance_packet_counts()
CLEAN_CAPTURES = sorted(PACKET_COUNTS)


def test_provenance_table_parsed():
    assert len(CLEAN_CAPTURES) >= 40
    for name in CLEAN_CAPTURES:
        assert (CAPTURES / name).is_file(), name


@pytest.mark.parametrize("name", CLEAN_CAPTURES)
def test_frame_count_matches_provenance(name):
    assert reference_analyze([CAPTURES / name])["attrs"]["frames"] == PACKET_COUNTS[name]


@pytest.mark.skipif(shutil.which("capinfos") is None, reason="capinfos not installed")
@pytest.mark.parametrize("name", CLEAN_CAPTURES)
def test_frame_count_matches_capinfos(name):
    out = subprocess.run(
        ["capinfos", "-c", "-M", str(CAPTURES / name)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = int(re.search(r"Number of packets:\s*(\d+)", out).group(1))
    assert reference_analyze([CAPTURES / name])["attrs"]["frames"] == expected


CONVERSATIONS = tshark_conversations()


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_ipv4_directions_match_tshark(name):
    rows, complete = CONVERSATIONS[name]
    flows = reference_analyze([CAPTURES / name])["flows"]
    frames = Counter(
        {
            (src, dst): count
            for src, dst, kind, count in zip(
                flows["src"], flows["dst"], flows["kind"], flows["frames"], strict=True
            )
            if kind == "ip4"
        }
    )
    # tshark also counts untimed (SPB) frames, which the contract keeps out of flows:
    # decode them here only to make the counts comparable
    for ts, linktype, data in read_capture(CAPTURES / name):
        decoded = decode_frame(linktype, data) if ts is None else None
        if decoded is not None and decoded["kind"] == "ip4":
            frames[(decoded["src"], decoded["dst"])] += 1
    for a, b, b_to_a, a_to_b in rows:
        if a == b:
            assert frames.get((a, a), 0) == a_to_b + b_to_a, (a, b)
        else:
            assert frames.get((a, b), 0) == a_to_b, (a, b)
            assert frames.get((b, a), 0) == b_to_a, (b, a)
    if complete:
        ours = {frozenset(key) for key in frames}
        theirs = {frozenset((a, b)) for a, b, _, _ in rows}
        assert ours == theirs


def test_some_tshark_tables_are_complete():
    assert sum(1 for _, complete in CONVERSATIONS.values() if complete) >= 30


ALL_CAPTURES = sorted(p.name for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_every_frame_accounted_for(name):
    """Also for the corrupt_* files: no crash, and every numbered frame is in exactly one
    flow and one frame type, or counted as undecodable or untimed."""
    r = reference_analyze([CAPTURES / name])
    a = r["attrs"]
    in_flows = sum(r["flows"]["frames"])
    assert in_flows == sum(r["frame_types"]["frames"])
    assert a["frames"] == in_flows + a["undecodable_frames"] + a["untimed_frames"]
    f = r["flows"]
    for i in range(len(f["src"])):
        assert f["iat_count"][i] == f["frames"][i] - 1
        assert f["iat_sum_ns"][i] == f["last_ns"][i] - f["first_ns"][i]
        assert f["outliers"][i] == r["flow_outliers"]["flow"].count(i)
    assert r["flow_outliers"]["frame"] == sorted(r["flow_outliers"]["frame"])
    assert f["first_frame"] == sorted(f["first_frame"])


def test_corrupt_files_behaviour():
    """Documented decisions on the damaged captures."""
    a = reference_analyze([CAPTURES / "corrupt_truncated_nsec_fuzz.pcap"])["attrs"]
    assert a["frames"] == 0  # the only record runs past the end of the file
    a = reference_analyze([CAPTURES / "corrupt_pcapng_shb_option_too_long.pcapng"])["attrs"]
    assert a["frames"] == 0  # SHB trailing length does not match: the file ends there
    a = reference_analyze([CAPTURES / "corrupt_bad_usec_huge_origlen_fuzz.pcap"])["attrs"]
    assert a["first_ns"] == 1_953_631_157 * 10**9 + 4_293_562_680 * 1000  # taken literally
    a = reference_analyze([CAPTURES / "corrupt_invalid_nsec_timestamps.pcap"])["attrs"]
    assert a["last_ns"] % 10**9 == 147_483_648  # 2 147 483 648 ns added literally
    a = reference_analyze([CAPTURES / "corrupt_pcap_unsupported_version_1_4.pcap"])["attrs"]
    assert a["frames"] == 1  # the version field is not checked


def test_real_capture_details():
    """Spot checks of things PROVENANCE.md states about the captures."""
    r = reference_analyze([CAPTURES / "ptpv2_l2_ethertype88f7.pcap"])
    by_type: dict[str, int] = {}
    for t, n in zip(r["frame_types"]["frame_type"], r["frame_types"]["frames"], strict=True):
        by_type[t] = by_type.get(t, 0) + n
    assert by_type == {
        "PTP-Sync": 70,
        "PTP-Follow_Up": 70,
        "PTP-Announce": 35,
        "PTP-Delay_Req": 15,
        "PTP-Delay_Resp": 15,
    }
    assert set(r["flows"]["kind"]) == {"l2"}
    assert set(r["flows"]["protocols"]) == {"PTP"}

    r = reference_analyze([CAPTURES / "ch10udp_f1_cg0_zero_timestamps.pcap"])
    assert r["flows"]["iat_count"] == [422]
    assert r["flows"]["iat_std_ns"] == [0.0]
    assert r["flows"]["outliers"] == [0]
    assert r["flows"]["protocols"] == ["CH10,Multicast,UDP"]

    r = reference_analyze([CAPTURES / "ipv4_fragments_icmp.pcap"])
    assert r["frame_types"]["frame_type"] == ["ICMP", "IP-Fragment", "ICMP"]

    r = reference_analyze([CAPTURES / "pcapng_simple_packet_blocks.pcapng"])
    assert r["attrs"]["untimed_frames"] == 4
    assert r["flows"]["src"] == []

    # interface 1 tick counts are negative int64 values written as unsigned
    frames = reference_frames([CAPTURES / "pcapng_comments_ether_and_sll.pcapng"])
    assert frames[59]["ts_ns"] == 18446744073204126329 * 1000 - 2**64 * 1000
    assert frames[0]["ts_ns"] == 1422527998578402281


# --------------------------------------------------------------------------------------
# Hand-built captures
# --------------------------------------------------------------------------------------

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x" * 8) -> bytes:
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0,
        64,
        17,
        0,
        bytes(int(x) for x in src.split(".")),
        bytes(int(x) for x in dst.split(".")),
    )
    return MAC_B + MAC_A + b"\x08\x00" + ip + udp


def pcap_ns(records: list[tuple[int, bytes]], linktype: int = 1) -> bytes:
    """Little-endian nanosecond pcap; records = (ts_ns, frame bytes)."""
    out = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, linktype)
    for ts, data in records:
        out += struct.pack("<IIII", ts // 10**9, ts % 10**9, len(data), len(data)) + data
    return out


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def capture_from_iats(tmp_path, iats, start=10**18, name="c.pcap"):
    ts = [start]
    for x in iats:
        ts.append(ts[-1] + x)
    frame = udp_frame("10.0.0.1", "10.0.0.2", 4000, 9999)
    return write(tmp_path, name, pcap_ns([(t, frame) for t in ts])), ts


def test_iat_statistics_known_answer(tmp_path):
    path, ts = capture_from_iats(tmp_path, [10, 20, 30, 40])
    r = reference_analyze([path])
    f = r["flows"]
    assert f["src"] == ["10.0.0.1"] and f["dst"] == ["10.0.0.2"] and f["kind"] == ["ip4"]
    assert f["protocols"] == ["UDP"]
    assert f["frames"] == [5]
    assert f["bytes"] == [5 * 50]
    assert f["first_ns"] == [ts[0]] and f["last_ns"] == [ts[-1]]
    assert f["first_frame"] == [1] and f["last_frame"] == [5]
    assert f["iat_count"] == [4]
    assert f["iat_sum_ns"] == [100]
    assert f["iat_min_ns"] == [10] and f["iat_max_ns"] == [40]
    assert f["iat_mean_ns"] == [25.0]
    assert f["iat_std_ns"] == [statistics.stdev([10, 20, 30, 40])]
    assert f["iat_std_ns"][0] == pytest.approx(12.909944487358056, rel=1e-15)
    assert f["outliers"] == [0]
    assert r["frame_types"]["flow"] == [0]
    assert r["frame_types"]["frame_type"] == ["UDP"]
    assert r["attrs"] == {
        "frames": 5,
        "first_ns": ts[0],
        "last_ns": ts[-1],
        "undecodable_frames": 0,
        "untimed_frames": 0,
    }


def test_single_and_two_frame_scopes(tmp_path):
    path, _ = capture_from_iats(tmp_path, [])
    f = reference_analyze([path])["flows"]
    assert f["iat_count"] == [0] and f["iat_min_ns"] == [0] and f["iat_max_ns"] == [0]
    assert math.isnan(f["iat_mean_ns"][0]) and math.isnan(f["iat_std_ns"][0])

    path, _ = capture_from_iats(tmp_path, [7], name="d.pcap")
    f = reference_analyze([path])["flows"]
    assert f["iat_mean_ns"] == [7.0] and math.isnan(f["iat_std_ns"][0])


def test_negative_iat_is_kept(tmp_path):
    frame = udp_frame("10.0.0.1", "10.0.0.2", 4000, 9999)
    path = write(tmp_path, "neg.pcap", pcap_ns([(1000, frame), (950, frame), (1100, frame)]))
    f = reference_analyze([path])["flows"]
    assert f["iat_min_ns"] == [-50] and f["iat_max_ns"] == [150]
    assert f["iat_sum_ns"] == [100]  # last minus first, not max minus min
    assert f["first_ns"] == [1000] and f["last_ns"] == [1100]
    assert f["iat_mean_ns"] == [50.0]
    assert f["iat_std_ns"] == [statistics.stdev([-50, 150])]


# IATs: nine of 5000, one 6000, one 15000 -> 15000 == mean + 3 * std exactly
BOUNDARY_3 = [5000] * 9 + [6000, 15000]
# IATs: six of 0, then 1, 2, 6 (times 1000) -> 6000 == mean + 2.5 * std exactly
BOUNDARY_2_5 = [0] * 6 + [1000, 2000, 6000]


def exact_deviation(iats, x):
    n, s = len(iats), sum(iats)
    q = sum(v * v for v in iats)
    var = Fraction(n * q - s * s, n * (n - 1))
    return (x - Fraction(s, n)) ** 2 / var  # squared deviation, exact


def test_boundary_data_is_exactly_on_the_threshold():
    assert exact_deviation(BOUNDARY_3, 15000) == 9
    assert exact_deviation(BOUNDARY_2_5, 6000) == Fraction(25, 4)


def test_outlier_exactly_at_threshold_is_not_an_outlier(tmp_path):
    path, ts = capture_from_iats(tmp_path, BOUNDARY_3)
    r = reference_analyze([path], sigma="3")
    assert r["flows"]["outliers"] == [0]
    assert r["flow_outliers"]["frame"] == []
    assert r["frame_types"]["outliers"] == [0]

    # just below the threshold: the same IAT is an outlier
    r = reference_analyze([path], sigma="2.9999999")
    assert r["flows"]["outliers"] == [1]
    o = r["flow_outliers"]
    assert o["flow"] == [0] and o["frame"] == [12] and o["iat_ns"] == [15000]
    assert o["ts_ns"] == [ts[11]]
    mean = sum(BOUNDARY_3) / 11
    std = r["flows"]["iat_std_ns"][0]
    assert o["deviation"] == [(15000.0 - mean) / std]
    assert o["deviation"][0] == pytest.approx(3.0, rel=1e-12)
    t = r["frame_type_outliers"]
    assert t["frame_type_row"] == [0] and t["frame"] == [12] and t["iat_ns"] == [15000]

    assert reference_analyze([path], sigma="3.0000001")["flows"]["outliers"] == [0]


def test_sigma_two_and_a_half(tmp_path):
    path, _ = capture_from_iats(tmp_path, BOUNDARY_2_5)
    assert reference_analyze([path], sigma="2.5")["flows"]["outliers"] == [0]
    assert reference_analyze([path], sigma="2.49")["flows"]["outliers"] == [1]
    assert reference_analyze([path])["flows"]["outliers"] == [0]  # default 3

    # a clear outlier: between 2.5 and 3 standard deviations
    iats = [100] * 8 + [160]  # deviation = 8/3 = 2.67 with n = 9
    path, _ = capture_from_iats(tmp_path, iats, name="e.pcap")
    assert exact_deviation(iats, 160) == Fraction(64, 9)
    r = reference_analyze([path], sigma="2.5")
    assert r["flows"]["outliers"] == [1]
    assert r["flow_outliers"]["frame"] == [10]
    assert r["flow_outliers"]["deviation"][0] == pytest.approx(8 / 3, rel=1e-12)
    assert reference_analyze([path], sigma="3")["flows"]["outliers"] == [0]


def test_flows_and_frame_types(tmp_path):
    dns = udp_frame("10.0.0.1", "10.0.0.2", 5353, 53)
    other = udp_frame("10.0.0.1", "10.0.0.2", 5353, 9999)
    back = udp_frame("10.0.0.2", "10.0.0.1", 53, 5353)
    mcast = udp_frame("10.0.0.3", "239.1.2.3", 1000, 50000)
    records = [
        (100, dns),
        (150, other),
        (200, back),
        (300, dns),
        (330, other),
        (400, mcast),
        (500, dns),
        (520, b"\x00" * 10),  # shorter than an Ethernet header: undecodable
    ]
    r = reference_analyze([write(tmp_path, "m.pcap", pcap_ns(records))])
    f = r["flows"]
    assert list(zip(f["src"], f["dst"], strict=True)) == [
        ("10.0.0.1", "10.0.0.2"),
        ("10.0.0.2", "10.0.0.1"),
        ("10.0.0.3", "239.1.2.3"),
    ]
    assert f["protocols"] == ["DNS,UDP", "DNS", "IENA,Multicast"]
    assert f["frames"] == [5, 1, 1]
    assert f["iat_sum_ns"] == [400, 0, 0]
    t = r["frame_types"]
    assert list(zip(t["flow"], t["frame_type"], strict=True)) == [
        (0, "DNS"),
        (0, "UDP"),
        (1, "DNS"),
        (2, "UDP"),
    ]
    assert t["frames"] == [3, 2, 1, 1]
    assert t["iat_sum_ns"] == [400, 180, 0, 0]
    assert t["iat_min_ns"] == [200, 180, 0, 0]
    assert r["attrs"]["frames"] == 8
    assert r["attrs"]["undecodable_frames"] == 1
    assert r["attrs"]["last_ns"] == 520


def test_file_set_order_and_truncated_record(tmp_path):
    frame = udp_frame("10.0.0.1", "10.0.0.2", 4000, 9999)
    late = write(tmp_path, "a_late.pcap", pcap_ns([(5000, frame), (6000, frame)]))
    early = pcap_ns([(1000, frame), (2000, frame)])
    early += struct.pack("<IIII", 0, 3000, 100, 100) + frame  # record cut short
    early_path = write(tmp_path, "b_early.pcap", early)
    tie = write(tmp_path, "c_tie.pcap", pcap_ns([(5000, frame)]))
    r = reference_analyze([tie, late, early_path])
    assert r["attrs"]["frames"] == 5
    assert r["flows"]["first_ns"] == [1000]
    frames = reference_frames([tie, late, early_path])
    assert [f["ts_ns"] for f in frames] == [1000, 2000, 5000, 6000, 5000]
    assert r["flows"]["iat_min_ns"] == [-1000]


def test_layer2_and_vlan(tmp_path):
    tag = b"\x81\x00\x00\x0a"
    arp = MAC_B + MAC_A + b"\x88\xa8\x00\xc8" + tag + b"\x08\x06" + b"\x00" * 28
    ptp = bytearray(44)
    ptp[0], ptp[1] = 0x08, 0x02  # Follow_Up, version 2
    ptp[2:4] = (44).to_bytes(2, "big")
    ptp_frame = MAC_B + MAC_A + tag + b"\x88\xf7" + bytes(ptp)
    llc = MAC_B + MAC_A + b"\x00\x26" + b"\x42\x42\x03" + b"\x00" * 35
    vlan_ip = udp_frame("10.0.0.1", "10.0.0.2", 4000, 123)
    vlan_ip = vlan_ip[:12] + tag + vlan_ip[12:]
    path = write(tmp_path, "l2.pcap", pcap_ns([(1, arp), (2, ptp_frame), (3, llc), (4, vlan_ip)]))
    r = reference_analyze([path])
    assert r["flows"]["kind"] == ["l2", "ip4"]
    assert r["flows"]["src"] == ["02:00:00:00:00:01", "10.0.0.1"]
    assert r["flows"]["dst"] == ["02:00:00:00:00:02", "10.0.0.2"]
    assert r["flows"]["protocols"] == ["PTP", "NTP"]
    assert r["frame_types"]["frame_type"] == ["ARP", "PTP-Follow_Up", "OTHER", "NTP"]


# --------------------------------------------------------------------------------------
# 3. pcapng: interfaces with different resolutions and an offset
# --------------------------------------------------------------------------------------


def block(order: str, block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def shb(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, linktype: int, snaplen: int = 0, tsresol=None, tsoffset=None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(order, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += option(order, 14, struct.pack(order + "q", tsoffset))
    if opts:
        opts += option(order, 0, b"")
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def epb(order: str, if_id: int, ticks: int, data: bytes) -> bytes:
    head = struct.pack(
        order + "IIIII", if_id, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    )
    return block(order, 6, head + data)


def test_pcapng_interfaces_resolutions_and_offset(tmp_path):
    le = "<"
    frame = udp_frame("10.0.0.1", "10.0.0.2", 4000, 9999)
    content = (
        shb(le)
        + idb(le, 1, tsresol=3, tsoffset=1_000_000_000)  # milliseconds, +10^9 s
        + idb(le, 1, tsresol=0x80 | 10)  # 2^-10 s ticks
        + idb(le, 1, tsresol=12)  # picoseconds: floored to ns
        + epb(le, 0, 5, frame)
        + block(le, 0x00000BAD, b"custom block, not a frame")
        + epb(le, 1, 1025, frame)
        + block(le, 5, struct.pack(le + "III", 0, 0, 0))  # ISB: not a frame
        + block(le, 3, struct.pack(le + "I", len(frame)) + frame)  # SPB: untimed frame
        + epb(le, 2, 1_234_567, frame)
        + epb(le, 0, 7, frame)
    )
    path = write(tmp_path, "ifaces.pcapng", content)
    frames = reference_frames([path])
    assert [f["ts_ns"] for f in frames] == [
        10**18 + 5_000_000,
        1_000_976_562,  # 1025 * 10^9 / 1024 = 1000976562.5, floored
        None,
        1_234,
        10**18 + 7_000_000,
    ]
    assert [f["status"] for f in frames] == ["ok", "ok", "untimed", "ok", "ok"]
    r = reference_analyze([path])
    assert r["attrs"]["frames"] == 5
    assert r["attrs"]["untimed_frames"] == 1
    assert r["attrs"]["first_ns"] == 10**18 + 5_000_000
    assert r["attrs"]["last_ns"] == 10**18 + 7_000_000
    f = r["flows"]
    assert f["frames"] == [4]
    assert f["first_frame"] == [1] and f["last_frame"] == [5]
    assert f["iat_min_ns"] == [1_000_976_562 - (10**18 + 5_000_000)]
    assert f["iat_max_ns"] == [10**18 + 7_000_000 - 1_234]
    assert f["iat_sum_ns"] == [2_000_000]


def test_pcapng_sections_byte_orders_and_signed_ticks(tmp_path):
    frame = udp_frame("10.0.0.1", "10.0.0.2", 4000, 9999)
    content = (
        shb("<")
        + idb("<", 1)  # default microseconds
        + epb("<", 0, 2**64 - 1000, frame)  # negative tick count written as unsigned
        + shb(">")  # new section, big-endian, interface numbering restarts
        + idb(">", 101, snaplen=40, tsresol=9)
        + epb(">", 0, 123, frame[14:])  # raw IP on this interface
        + idb(">", 1)
        + block(">", 3, struct.pack(">I", len(frame)) + frame)  # SPB: interface 0, snaplen 40
    )
    path = write(tmp_path, "sections.pcapng", content)
    frames = reference_frames([path])
    assert [f["ts_ns"] for f in frames] == [-1_000_000, 123, None]
    assert [f["bytes"] for f in frames] == [len(frame), len(frame) - 14, 40]
    r = reference_analyze([path])
    assert r["flows"]["iat_sum_ns"] == [123 + 1_000_000]


def test_untimed_when_no_int64_fits(tmp_path):
    frame = udp_frame("10.0.0.1", "10.0.0.2", 4000, 9999)
    content = shb("<") + idb("<", 1, tsresol=0) + epb("<", 0, 2**62, frame)  # 2^62 seconds
    frames = reference_frames([write(tmp_path, "big.pcapng", content)])
    assert frames[0]["ts_ns"] is None and frames[0]["status"] == "untimed"


# --------------------------------------------------------------------------------------
# Ladder on hand-built payloads: Chapter 10 / TMATS, IENA
# --------------------------------------------------------------------------------------


def ch10_packet(data_type: int, body: bytes, flags: int = 0) -> bytes:
    """A Ch10 packet with a correct header checksum; body includes the CSDW."""
    hlen = 36 if flags & 0x80 else 24
    body += b"\x00" * (-len(body) % 4)
    header = struct.pack(
        "<HHIIBBBB6s", 0xEB25, 1, hlen + len(body), len(body), 6, 0, flags, data_type, b"\x00" * 6
    )
    checksum = sum(struct.unpack("<11H", header)) & 0xFFFF
    secondary = b"\x00" * 12 if flags & 0x80 else b""
    return header + struct.pack("<H", checksum) + secondary + body


def frame_types_of(tmp_path, payloads, sport=4000, dport=6679):
    records = [
        (i, udp_frame("10.0.0.1", "239.0.0.1", sport, dport, p)) for i, p in enumerate(payloads)
    ]
    frames = reference_frames([write(tmp_path, "l.pcap", pcap_ns(records))])
    return [(f["frame_type"], ",".join(sorted(f["hints"]))) for f in frames]


def test_ch10_and_tmats(tmp_path):
    c10 = (CAPTURES / "ch10files" / "discrete_tmats_time_discrete.c10").read_bytes()
    tmats = c10[: struct.unpack_from("<I", c10, 4)[0]]  # first packet: TMATS, type 0x01
    assert tmats[15] == 0x01
    as_pcm = tmats[:15] + b"\x09" + tmats[16:]  # TMATS text, wrong type and checksum
    binary = ch10_packet(0x09, bytes(range(256)) * 4)
    text_once = ch10_packet(0x09, b"\x00" * 4 + b"G\\PN:ONLY ONE;" + b"\x00" * 2)
    fmt1 = b"\x01\x00\x00\x00"
    fmt1_segment = b"\x11\x00\x00\x00" + b"\x01\x00\x00\x00" + struct.pack("<I", 0)
    fmt1_continuation = b"\x11\x00\x00\x00" + b"\x01\x00\x00\x00" + struct.pack("<I", 64)
    bad_sync = bytearray(binary)
    bad_sync[0] = 0x26
    secondary = ch10_packet(0x01, b"\x00" * 8, flags=0x80)
    # Format 2: sequence 0x010001 (byte 0 has low nibble 1, like a Format 1 header),
    # format 2 / full, segment offset 0, size in 32-bit words, channel 1
    fmt2 = b"\x01\x00\x01\x02\x00" + (len(binary) // 4).to_bytes(3, "big") + b"\0\0\0\1"
    fmt3 = b"\x03\x00\x00\x00\x07\x00\x00\x00"
    assert frame_types_of(
        tmp_path,
        [
            fmt1 + tmats,
            fmt1 + as_pcm,
            fmt1 + binary,
            fmt1 + text_once,
            fmt1_segment + binary,
            fmt1_continuation + binary,
            fmt1 + bytes(bad_sync),
            fmt1 + secondary,
            fmt2 + binary,
            fmt3 + binary,
        ],
    ) == [
        ("TMATS", "CH10,Multicast,TMATS,UDP"),
        ("TMATS", "CH10,Multicast,TMATS,UDP"),
        ("CH10-Data", "CH10,Multicast,UDP"),
        ("CH10-Data", "CH10,Multicast,UDP"),
        ("CH10-Data", "CH10,Multicast,UDP"),
        ("UDP", "Multicast,UDP"),
        ("UDP", "Multicast,UDP"),
        ("TMATS", "CH10,Multicast,TMATS,UDP"),
        ("CH10-Data", "CH10,Multicast,UDP"),
        ("CH10-Data", "CH10,Multicast,UDP"),
    ]


def iena(key_status: int, payload: bytes) -> bytes:
    size = (14 + len(payload) + 2) // 2
    return struct.pack(">HHHIBBH", 0x1A, size, 0, 0, key_status, 0, 1) + payload + b"\xde\xad"


def test_iena_types(tmp_path):
    n_payload = b"\x00\x01" + b"\x00\x02" + b"\x00\x03" + b"\x00\x04"  # w = 1: 2 params
    d_payload = b"\x00" * 12  # w = 1: ParamID, Delay, 1 word -> 2 params
    q_payload = b"\x00\x01\x00\x03abc\x00" + b"\x00\x02\x00\x02xy"
    m_payload = b"\x00\x01\x00\x00\x00\x01z\x00"
    wrong_size = bytearray(iena(0x01, n_payload))
    wrong_size[3] += 1
    assert frame_types_of(
        tmp_path,
        [
            iena(0x01, n_payload),
            iena(0x11, d_payload),
            iena(0x20, q_payload),
            iena(0x30, m_payload),
            iena(0x80, b"\x00" * 6),
            iena(0x00, n_payload),  # no informative flags
            iena(0x02, b"\x00" * 4),  # N with w = 2 but 4 bytes: structure does not fit
            iena(0x20, b"\x00\x01\x00\x00"),  # Q with a zero Length
            bytes(wrong_size),
        ],
        dport=50000,
    ) == [
        ("IENA-N", "IENA,Multicast"),
        ("IENA-D", "IENA,Multicast"),
        ("IENA-Q", "IENA,Multicast"),
        ("IENA-M", "IENA,Multicast"),
        ("IENA-P", "IENA,Multicast"),
        ("IENA-Unknown", "IENA,Multicast"),
        ("IENA-Unknown", "IENA,Multicast"),
        ("IENA-Unknown", "IENA,Multicast"),
        ("UDP", "IENA,Multicast"),
    ]
