"""Fuzzing the capture readers, the splitter and the dissectors with mutations of the real
captures in tests/captures: truncation at any offset, byte flips in record and block
headers, random payloads, and garbage inserted between records.

For every mutated file:
- nothing escapes but our own documented errors (`StreamlensError`: a file that is not a
  capture at all), and those are one line naming the file;
- every problem names the file, a byte offset inside it and a frame number; reading stops at
  a damaged record or resumes after a validated resync, saying how many bytes were skipped;
- no damage is reported before the first mutated byte (everything before it is analysed);
- the compiled and the Python splitter scans cut the same chunks and report the same problems;
- the statistics equal the independent reference (`tests/reference.py`) run on the capture
  with the reported damaged byte ranges cut out: for a truncated capture that is the
  undamaged capture truncated at the last whole record, for a damaged header the frames
  before it plus, after a resync, the frames after it.

CI runs a bounded number of examples (the terminal summary says how many);
STREAMLENS_FUZZ_EXAMPLES=N runs N per test (README "Damaged input").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from chunking import as_dict, tables_for
from conftest import CAPTURES, assert_tables_equal, count_example, fuzz_examples
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from reference import reference_analyze

from streamlens_dist.capture import columns, split
from streamlens_dist.capture.records import FATAL, TRUNCATED
from streamlens_dist.errors import StreamlensError

SEEDS = [
    "ptpv2_l2_gptp_pdelay.pcap", "iena_d_random_keys.pcap", "iena_m_two_packets.pcap",
    "ch10udp_f1_arinc429_random_hdrs.pcap", "ch10udp_f2_segmented_pcm.pcap",
    "ch10udp_f3_cg0_stream.pcap", "inetx_stream_ca_8hz.pcap", "vlan_double_8100_icmp_cdp.pcap",
    "nsec_bigendian_http_loopback.pcap", "usec_bigendian_pptp.pcap",
    "nsec_littleendian_sll_tcp_handshake.pcap", "ipv6_http_rawip_linktype.pcap",
    "mixed_many_protocols_vlan_ipv6.pcap", "ptpv2_udp_ipv6_signalling.pcap",
    "pcapng_multi_section_mixed_endian.pcapng", "pcapng_two_idbs_two_linktypes.pcapng",
    "pcapng_simple_packet_blocks.pcapng", "pcapng_bigendian_basic_dhcp.pcapng",
    "pcapng_11_interfaces_mixed_linktypes.pcapng", "pcapng_comments_ether_and_sll.pcapng",
    "corrupt_iena_d_bad_length.pcap", "corrupt_invalid_nsec_timestamps.pcap",
]
MAX_SEED_BYTES = 40_000  # larger captures are cut at a record boundary: fast examples


def fuzz(default_examples: int) -> settings:
    return settings(max_examples=fuzz_examples(default_examples), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@dataclass(frozen=True, repr=False)
class Seed:
    """An undamaged capture and where its records or blocks are."""

    name: str
    data: bytes
    units: tuple[tuple[int, int, int], ...]  # (offset, header length, total length)
    frames: tuple[tuple[int, int, int], ...]  # the units that are frames

    @property
    def pcapng(self) -> bool:
        return self.data[:4] == b"\x0a\x0d\x0d\x0a"

    def __repr__(self) -> str:  # hypothesis prints it for a failing example
        return f"Seed({self.name!r}, {len(self.data)} bytes)"


def _units(data: bytes) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """(all units, frame units) of an undamaged file, parsed here independently: the pcap
    file header and records, or pcapng blocks (packet blocks are the frames)."""
    units, frames = [], []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        pos, e = 0, "<"
        while pos + 12 <= len(data):
            if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
                e = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(e + "II", data, pos)
            # the fixed fields of packet blocks count as header: damage there is header damage
            unit = (pos, min({6: 28, 2: 28, 3: 12, 1: 16}.get(btype, 12), blen), blen)
            units.append(unit)
            if btype in (2, 3, 6):
                frames.append(unit)
            pos += blen
        return units, frames
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos = 24
    units.append((0, 24, 24))
    while pos + 16 <= len(data):
        incl = struct.unpack_from(e + "I", data, pos + 8)[0]
        if pos + 16 + incl > len(data):
            break
        units.append((pos, 16, 16 + incl))
        frames.append(units[-1])
        pos += 16 + incl
    return units, frames


def _captured(seed: Seed, pos: int) -> int:
    """The captured length of the EPB or PB at `pos` (the same field offset in both), in the
    byte order of the last section header (a block unit) before it."""
    shb = max(u[0] for u in seed.units if u[0] <= pos and seed.data[u[0]:u[0] + 4] == SHB)
    e = "<" if seed.data[shb + 8:shb + 12] == b"\x4d\x3c\x2b\x1a" else ">"
    return struct.unpack_from(e + "I", seed.data, pos + 20)[0]


SHB = b"\x0a\x0d\x0d\x0a"


def _load(name: str) -> Seed:
    data = (CAPTURES / name).read_bytes()
    if len(data) > MAX_SEED_BYTES:
        units, _ = _units(data)
        last = [u for u in units if u[0] + u[2] <= MAX_SEED_BYTES][-1]
        data = data[:last[0] + last[2]]
    units, frames = _units(data)
    return Seed(name, data, tuple(units), tuple(frames))


SEED_DATA = {n: _load(n) for n in SEEDS}


def _le(seed: Seed, pos: int) -> bool:
    """Byte order of the section holding `pos` (pcapng)."""
    le = True
    for off, _h, _t in seed.units:
        if off > pos:
            break
        if seed.data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            le = seed.data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a"
    return le


# --- running one mutated file -----------------------------------------------------------------

def _scans_agree(path: Path, chunk_size: int) -> None:
    """The compiled splitter scan and the Python one cut and report identically."""
    fast = split.scan_file(str(path), chunk_size)
    saved = columns._walk
    columns._walk = None
    try:
        slow = split.scan_file(str(path), chunk_size)
    finally:
        columns._walk = saved
    assert (fast.chunks, fast.frames, fast.first_ts, fast.problems) == \
        (slow.chunks, slow.frames, slow.first_ts, slow.problems)


def _kept(data: bytes, problems) -> bytes:
    """The bytes the engine says it analysed: the file less the damaged stretches."""
    out, pos = [], 0
    for p in sorted((p for p in problems if p.kind in FATAL), key=lambda p: p.offset):
        out.append(data[pos:p.offset])
        if not p.skipped:
            return b"".join(out)
        pos = p.offset + p.skipped
    out.append(data[pos:])
    return b"".join(out)


def check(tmp: Path, data: bytes, chunk_size: int, first_damage: int | None = None) -> tuple:
    """Run the splitter and engine on `data`; assert the invariants; return (plan, tables)."""
    path = tmp / "mutated.cap"
    path.write_bytes(data)
    try:
        plan = split.plan_capture([path], chunk_size)
    except StreamlensError as exc:
        text = str(exc)
        assert str(path) in text and "\n" not in text, text
        return None, None
    _scans_agree(path, chunk_size)
    fatal = [p for p in plan.problems if p.kind in FATAL]
    if currently_in_test_context():  # --hypothesis-show-statistics tells how often
        event("resynchronised" if any(p.skipped for p in fatal) else
              "stopped at damage" if fatal else "no damage found")
    for p in plan.problems:
        assert p.file == str(path) and 0 <= p.offset <= len(data) and p.frame >= 1, p
        assert p.skipped >= 0 and p.offset + p.skipped <= len(data), p
        if first_damage is not None and p.kind in FATAL:
            assert p.offset >= first_damage, (p, first_damage)
    tables = as_dict(tables_for(plan))
    kept = _kept(data, plan.problems)
    if not kept:  # the first section header itself is damaged: nothing to analyse
        assert plan.frames == 0 and all(len(next(iter(t.values()))) == 0
                                        for t in tables.values())
        return plan, tables
    clean = tmp / "kept.cap"
    clean.write_bytes(kept)
    ref = reference_analyze([clean])
    assert plan.frames == ref["attrs"]["frames"], (plan.problems, plan.frames)
    assert_tables_equal(tables, {t: ref[t] for t in tables}, where=f"{plan.problems}")
    return plan, tables


seeds = st.sampled_from(SEEDS).map(SEED_DATA.__getitem__)
chunk_sizes = st.sampled_from([1, 300, 4096, 1 << 30])


# --- the tests ----------------------------------------------------------------------------------

@fuzz(150)
@given(seed=seeds, data=st.data(), chunk_size=chunk_sizes)
def test_truncation_at_any_offset(tmp_path_factory, seed: Seed, data, chunk_size: int) -> None:
    """A capture cut anywhere: the frames of every whole record, exactly as the undamaged
    capture truncated at the last whole record, and a warning naming that record."""
    count_example("truncation")
    cut = data.draw(st.integers(0, len(seed.data)), label="cut")
    plan, _ = check(tmp_path_factory.mktemp("trunc"), seed.data[:cut], chunk_size, 0)
    if plan is None:  # only a cut inside the file header makes it not a capture
        assert cut < (seed.units[0][2] if seed.pcapng else 24)
        return
    whole = [u for u in seed.units if u[0] + u[2] <= cut]
    boundary = whole[-1][0] + whole[-1][2] if whole else 0
    fatal = [p for p in plan.problems if p.kind in FATAL]
    if cut == boundary:
        assert not fatal
    else:
        frames_before = sum(1 for u in seed.frames if u[0] + u[2] <= cut)
        assert [(p.kind, p.offset, p.frame, p.skipped) for p in fatal] == \
            [(TRUNCATED, boundary, frames_before + 1, 0)]
        assert fatal[0].severity == "warning"


@fuzz(200)
@given(seed=seeds, data=st.data(), chunk_size=chunk_sizes)
def test_byte_flips_in_headers(tmp_path_factory, seed: Seed, data, chunk_size: int) -> None:
    """Bytes of a record or block header (lengths, timestamps, trailers, interface ids)
    overwritten: damage is found no earlier than the flipped record, everything before it is
    analysed, and what is analysed equals the reference on the kept bytes."""
    count_example("header flips")
    buf = bytearray(seed.data)
    first = len(buf)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        off, head, total = data.draw(st.sampled_from(seed.units), label="unit")
        spots = [*range(off, off + head), *range(off + total - 4, off + total)] \
            if seed.pcapng else list(range(off, off + head))
        at = data.draw(st.sampled_from(spots), label="byte")
        buf[at] = data.draw(st.integers(0, 255), label="value")
        first = min(first, off)
    check(tmp_path_factory.mktemp("flip"), bytes(buf), chunk_size, first)


@fuzz(120)
@given(seed=seeds, data=st.data(), chunk_size=chunk_sizes)
def test_random_payloads(tmp_path_factory, seed: Seed, data, chunk_size: int) -> None:
    """Frame bytes replaced by random bytes or with a few protocol-header bytes flipped
    (the container intact): every frame is still read and dissected as the reference does."""
    count_example("random payloads")
    buf = bytearray(seed.data)
    units = seed.frames
    for _ in range(data.draw(st.integers(1, 8), label="frames")):
        off, head, total = data.draw(st.sampled_from(units), label="frame")
        end = off + total - (4 if seed.pcapng else 0)
        if seed.pcapng and head == 28:  # EPB/PB: the packet, not the options after it
            end = off + head + _captured(seed, off)
        lo = off + head
        if end <= lo:
            continue
        if data.draw(st.booleans(), label="whole frame"):
            buf[lo:end] = data.draw(st.binary(min_size=end - lo, max_size=end - lo), label="bytes")
        else:
            for _ in range(data.draw(st.integers(1, 6), label="flips")):
                at = data.draw(st.integers(lo, min(end, lo + 80) - 1), label="at")
                buf[at] = data.draw(st.integers(0, 255), label="value")
    plan, _ = check(tmp_path_factory.mktemp("payload"), bytes(buf), chunk_size, len(buf))
    assert plan.frames == len(units)


@fuzz(120)
@given(seed=seeds, data=st.data(), chunk_size=chunk_sizes)
def test_garbage_between_records(tmp_path_factory, seed: Seed, data, chunk_size: int) -> None:
    """Garbage inserted between records or blocks (up to three places): reading resumes only
    after a validated resync, and when each resync lands on the next real record nothing
    else is lost."""
    count_example("inserted garbage")
    # after the pcap file header or the first pcapng section header
    spots = [u[0] for u in seed.units[1:]] + [len(seed.data)]
    places = sorted(set(data.draw(st.lists(st.sampled_from(spots), min_size=1, max_size=3),
                                  label="places")))
    mutated, pos, expect = b"", 0, []
    for at in places:
        if seed.pcapng:
            junk = data.draw(st.binary(min_size=1, max_size=50), label="words")
            junk += bytes(-len(junk) % 4)  # blocks stay 4-byte aligned
        else:
            junk = data.draw(st.binary(min_size=1, max_size=200), label="garbage")
        mutated += seed.data[pos:at]
        expect.append((len(mutated), len(junk)))
        mutated += junk
        pos = at
    mutated += seed.data[pos:]
    plan, _ = check(tmp_path_factory.mktemp("junk"), mutated, chunk_size, places[0])
    if plan is None:
        return
    fatal = [(p.offset, p.skipped) for p in plan.problems if p.kind in FATAL]
    if fatal == expect:
        event("every resync landed on the next real record")
        assert plan.frames == len(seed.frames)


# --- deterministic cases the properties rely on --------------------------------------------

@pytest.mark.parametrize("name", ["ptpv2_l2_ethertype88f7.pcap",
                                  "pcapng_comments_ether_and_sll.pcapng"])
def test_resync_skips_exactly_one_damaged_record(tmp_path: Path, name: str) -> None:
    """An impossible length in the middle of a file: one record lost, the rest analysed, the
    skipped byte count reported, and the result equals the file without that record."""
    seed = _load(name)
    units = seed.frames
    off, _h, total = units[len(units) // 2]
    buf = bytearray(seed.data)
    if seed.pcapng:
        buf[off + 4:off + 8] = struct.pack("<I" if _le(seed, off) else ">I", 8)
    else:
        buf[off + 8:off + 12] = b"\xff\xff\xff\x7f"
    plan, _ = check(tmp_path, bytes(buf), 2048, off)
    [p] = [p for p in plan.problems if p.kind in FATAL]
    assert (p.offset, p.skipped, p.frame) == (off, total, len(units) // 2 + 1)
    assert "skipped" in p.message and p.severity == "error"
    assert plan.frames == len(units) - 1


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_resync_over_snapped_packets(tmp_path: Path, big_endian: bool) -> None:
    """Packets cut by the interface's snap length (captured < original) chain like any
    others: a damaged block among them costs that block only."""
    import io

    from streamlens_dist.synth import Interface, PcapngWriter, udp_frame

    out = io.BytesIO()
    w = PcapngWriter(out)
    w.section(big_endian=big_endian)
    w.interface(Interface(1, snaplen=64, tsresol=9))
    offsets = []
    for i in range(12):
        offsets.append(out.tell())
        w.enhanced_packet(10**18 + i * 1000, 0, udp_frame("10.0.0.1", "10.0.0.2", 1, 2,
                                                         bytes(100 + i)))
    data = bytearray(out.getvalue())
    at = offsets[5]
    data[at + 4:at + 8] = struct.pack(">I" if big_endian else "<I", 6)  # impossible length
    plan, _ = check(tmp_path, bytes(data), 1 << 30, at)
    [p] = plan.problems
    assert (p.kind, p.offset, p.frame, p.skipped) == ("corrupt-block", at, 6, offsets[6] - at)
    assert plan.frames == 11


def test_zeros_after_damage_are_not_a_resync_point(tmp_path: Path) -> None:
    """A recorder that lost power leaves zero-filled blocks: they chain as 'records' of 0
    bytes, which a resync must not take (reading stops at the damage)."""
    seed = _load("ptpv2_l2_gptp_pdelay.pcap")
    off = seed.frames[5][0]
    mutated = seed.data[:off] + b"\xff" * 16 + bytes(4096)
    plan, _ = check(tmp_path, mutated, 1 << 30, off)
    [p] = [p for p in plan.problems if p.kind in FATAL]
    assert p.offset == off and p.skipped == 0 and "stopped reading" in p.message
    assert plan.frames == 5


@pytest.mark.parametrize("name", ["ptpv2_l2_gptp_pdelay.pcap",
                                  "pcapng_two_idbs_two_linktypes.pcapng"])
def test_zero_filled_tail_is_a_cut_off_recording(tmp_path: Path, name: str) -> None:
    """What a power loss leaves: the file goes on with zeros after the last whole record.
    Not millions of empty 1970 records: a truncation warning, every record before it read."""
    seed = _load(name)
    off = seed.frames[3][0] if not seed.pcapng else seed.frames[-1][0]
    kept = sum(1 for u in seed.frames if u[0] < off)
    plan, _ = check(tmp_path, seed.data[:off] + bytes(8192), 1024, off)
    assert [(p.kind, p.offset, p.frame, p.severity) for p in plan.problems] == \
        [(TRUNCATED, off, kept + 1, "warning")]
    assert "zero-filled" in plan.problems[0].message and plan.frames == kept


def test_zero_filled_stretch_in_the_middle_is_skipped(tmp_path: Path) -> None:
    seed = _load("ptpv2_l2_gptp_pdelay.pcap")
    off = seed.frames[10][0]
    plan, _ = check(tmp_path, seed.data[:off] + bytes(5000) + seed.data[off:], 1024, off)
    [p] = plan.problems
    assert (p.kind, p.offset, p.skipped) == ("corrupt-record", off, 5000)
    assert plan.frames == len(seed.frames)


def test_deep_nesting_stops_at_a_bound(tmp_path: Path) -> None:
    """Thousands of VLAN tags, dozens of IPv6 extension headers, IP-in-IP tunnels nested a
    hundred deep: each frame is dissected within the bounds (8 tags, 16 extension headers,
    the outermost IP header), as the reference does, and quickly."""
    from streamlens_dist.synth import ip_frame, ipv4, ipv6, pcap_bytes, udp

    inner = udp(5000, 319, bytes(40))
    tunnel = ipv4("10.9.9.9", "10.8.8.8", 17, inner)
    for _ in range(99):
        tunnel = ipv4("10.1.1.1", "10.2.2.2", 4, tunnel)  # IP-in-IP
    frames = [ip_frame("10.0.0.1", "239.0.0.1", 17, inner, vlans=[(0x8100, 1)] * n)
              for n in (2, 8, 9, 3000)]
    frames += [ipv6("fe80::1", "fe80::2", 17, inner, [(60, bytes(6))] * n) for n in (15, 16, 17, 40)]
    frames.append(ip_frame("10.1.1.1", "10.2.2.2", 4, tunnel))
    # the IPv6 packets go in as raw IP (link type 101) files, the rest as Ethernet
    eth = pcap_bytes([(i * 1000, f) for i, f in enumerate(frames[:4] + frames[-1:])],
                     snaplen=1 << 20)
    raw = pcap_bytes([(i * 1000, f) for i, f in enumerate(frames[4:-1])], linktype=101,
                     snaplen=1 << 20)
    for data in (eth, raw):
        plan, tables = check(tmp_path, data, 1 << 30)
        assert plan.frames == (5 if data is eth else 4) and not plan.problems


def test_timestamps_too_far_apart_for_int64_are_untimed(tmp_path: Path) -> None:
    """Found by the long campaign: one flipped byte in a timestamp of an interface whose
    times are stored as negative values put two frames of a flow 2^63 ns apart, an IAT no
    int64 column holds (the tables raised OverflowError). Such a time is out of bounds: the
    frame is untimed and reported, and the rest is analysed as the reference does."""
    seed = _load("pcapng_comments_ether_and_sll.pcapng")
    data = bytearray(seed.data)
    data[451] = 128  # the high timestamp word of the packet block at byte 436
    plan, tables = check(tmp_path, bytes(data), 1)
    [p] = plan.problems
    assert (p.kind, p.offset, p.severity) == ("timestamp", 436, "warning")
    assert plan.frames == len(seed.frames)


def test_hostile_lengths_allocate_nothing_large(tmp_path: Path) -> None:
    """Headers claiming ~4 GiB records or blocks: read up to them, nothing big allocated."""
    import tracemalloc

    pcap_hdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 0xFFFFFFFF, 1)
    ng = _load("pcapng_two_idbs_two_linktypes.pcapng").data
    cases = [(pcap_hdr + struct.pack("<IIII", 1, 2, 0xFFFFFFF0, 0xFFFFFFF0) + bytes(64), 24),
             (ng + struct.pack("<II", 6, 0xFFFFFFFC) + bytes(64), len(ng))]
    for data, at in cases:
        tracemalloc.start()
        try:
            plan, _ = check(tmp_path, data, 1 << 30)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert [p.offset for p in plan.problems if p.kind in FATAL] == [at]
        assert peak < 64 * 1024 * 1024


# --- malformed payloads: the columnar paths name exactly what the per-frame ladder names ----

def _malformed_frames() -> list[tuple[bytes, str | None]]:
    """(frame, malformed name classify gives it) for every new name and its near misses."""
    from streamlens_dist.synth import ch10_udp, ether, iena, ip_frame, ptp, udp, udp_frame

    good_ch10 = ch10_udp(1, 0x09, 3, 0, bytes(64))
    long_ch10 = bytearray(good_ch10)
    long_ch10[8:12] = struct.pack("<I", len(good_ch10))  # first packet longer than datagram
    long_ch10[26:28] = struct.pack("<H", sum(struct.unpack_from("<11H", long_ch10, 4)) & 0xFFFF)
    bad_hdr = bytearray(good_ch10)
    bad_hdr[8:12] = struct.pack("<I", 30)  # packet length not a multiple of 4
    bad_f3 = b"\x03\x00\x04\x00\x00\x00\x00\x00" + bytes(4) + b"\x25\xeb" + bytes(30)
    bad_seg = b"\x11\x00\x00\x00" + bytes(8) + b"\x25\xeb" + b"\x07" * 30
    good_iena = iena(0x1A, "N", 1, 4)
    bad_iena = bytearray(good_iena)
    bad_iena[2:4] = struct.pack(">H", len(good_iena) // 2 + 3)
    v1 = b"\x00\x01" + bytes(42)  # PTPv1: not PTPv2, not malformed
    cases = [
        (good_ch10, None), (bytes(long_ch10), "CH10-length"), (bytes(bad_hdr), "CH10-header"),
        (bad_f3, "CH10-header"), (bad_seg, "CH10-header"), (good_iena, None),
        (bytes(bad_iena), "IENA-size"), (bytes(bad_iena)[:-2] + b"\xbe\xef", None),
    ]
    out = []
    for vlans in ((), [(0x8100, 5)], [(0x88A8, 5), (0x8100, 6)]):
        for payload, name in cases:
            out.append((udp_frame("10.0.0.1", "239.1.1.1", 7000, 7001, payload, vlans=vlans),
                        name))
            out.append((udp_frame("fe80::1", "ff02::1", 7000, 7001, payload, vlans=vlans), name))
        for sport, dport, payload, name in (
                (319, 7000, bytes(20), "PTP-header"), (7000, 320, ptp(0, length=20), "PTP-header"),
                (53, 319, bytes(20), "PTP-header"), (319, 50000, v1, None),
                (319, 319, ptp(0), None), (7000, 7001, bytes(20), None)):
            out.append((udp_frame("10.0.0.1", "224.0.1.129", sport, dport, payload,
                                  vlans=vlans), name))
        mac = b"\x01\x1b\x19\x00\x00\x00"
        out.append((ether(mac, b"\x02" * 6, 0x88F7, bytes(20), vlans), "PTP-header"))
        out.append((ether(mac, b"\x02" * 6, 0x88F7, ptp(0, length=200), vlans), None))
        out.append((ether(mac, b"\x02" * 6, 0x88F7, v1, vlans), None))
    # a datagram the capture cut short is never malformed
    cut = ip_frame("10.0.0.1", "239.1.1.1", 17, udp(7000, 7001, bytes(bad_iena)))
    out.append((cut[:-5], None))
    return out


def test_malformed_payloads_named_alike_on_every_path() -> None:
    from streamlens_dist.capture.columns import record_columns
    from streamlens_dist.capture.records import Interface
    from streamlens_dist.capture.split import ChunkSpec
    from streamlens_dist.dissect import columnar
    from streamlens_dist.dissect.classify import classify
    from streamlens_dist.dissect.names import MALFORMED_ID
    from streamlens_dist.synth import pcap_bytes

    cases = _malformed_frames()
    for frame, name in cases:
        assert classify(1, frame)[3] == name, (frame.hex(), name)
    data = pcap_bytes([(i * 1000 + 1, f) for i, (f, _n) in enumerate(cases)], snaplen=1 << 20)
    spec = ChunkSpec(0, "<mem>", 24, len(data), 1, len(cases), "pcap", "<",
                     (Interface(1, 1 << 20, 6, 0),))
    buf = data[24:]
    cols = record_columns(spec, buf)
    want = [-1 if n is None else MALFORMED_ID[n] for _f, n in cases]
    slow = columnar.classify_columns(buf, cols, force_slow=True)
    fast = columnar.classify_columns(buf, cols)
    saved = columnar._kernels
    columnar._kernels = None  # the numpy fast path
    try:
        numpy_only = columnar.classify_columns(buf, cols)
    finally:
        columnar._kernels = saved
    for got in (slow, fast, numpy_only):
        assert got.malformed.tolist() == want
        assert got.ftype.tolist() == slow.ftype.tolist()
    assert fast.slow_frames < len(cases)  # the clean frames stay on the fast path


# --- timestamp extremes: pcap seconds and fractions, pcapng ticks, if_tsresol, if_tsoffset ------
#
# The seeds' record timestamps rewritten to extreme values, one by one or alternating between
# two far-apart values over every record (so that each flow and protocol stream sees IATs of up
# to ±(2^63 - 2) ns), and every interface description given extreme if_tsresol/if_tsoffset
# options (added where absent, replacing those present): checked with `check` (reference
# equality on the kept bytes; nothing here is damage) and the compiled record walk against the
# Python one, whose tick conversions differ (C converts what fits int64, Python the rest).

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
PCAP_SECONDS = [0, 1, 5, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]
TICKS = [0, 1, 2**32 - 1, 2**32, 2**62 - 1, 2**62, 2**62 + 1, 2**63 - 1, 2**63, 2**63 + 1,
         2**64 - 2**62 - 1, 2**64 - 2**62, 2**64 - 2**62 + 1, 2**64 - 1]
TSRESOLS = [0, 1, 6, 9, 10, 19, 28, 29, 63, 127, 0x80, 0x81, 0x80 | 30, 0x80 | 63, 0x80 | 64,
            0xFE, 0xFF]
TSOFFSETS = [0, 1, -1, 2**31, -(2**31), 4611686017, -4611686017, 4611686018, -4611686018,
             4611686019, -4611686019, 2**62, -(2**62), INT64_MIN, INT64_MAX]


def _pick(values: list[int], lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(values), st.integers(lo, hi))


def _pcap_times(seed: Seed, draw) -> bytes:
    """The seed with record seconds/fractions rewritten (some records, or all alternating)."""
    buf = bytearray(seed.data)
    e = "<" if seed.data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    top = 10**9 if seed.data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 10**6
    secs = _pick(PCAP_SECONDS, 0, 2**32 - 1)
    fracs = _pick([0, 1, top - 1, top, top + 1, 2**32 - 1], 0, 2**32 - 1)
    offsets = [off for off, _h, _t in seed.frames]
    if draw(st.booleans(), label="alternate"):
        pair = [(draw(secs, label="sec a"), draw(fracs, label="frac a")),
                (draw(secs, label="sec b"), draw(fracs, label="frac b"))]
        chosen = [(off, pair[i % 2]) for i, off in enumerate(offsets)]
    else:
        chosen = [(draw(st.sampled_from(offsets), label="record"),
                   (draw(secs, label="sec"), draw(fracs, label="frac")))
                  for _ in range(draw(st.integers(1, 6), label="records"))]
    for off, (sec, frac) in chosen:
        struct.pack_into(e + "II", buf, off, sec, frac)
    return bytes(buf)


def _idb_options(body: bytes, e: str, tsresol: int | None, tsoffset: int | None) -> bytes:
    """An IDB body with if_tsresol/if_tsoffset set (None: the seed's own option kept)."""
    out, pos = [body[:8]], 8
    while pos + 4 <= len(body):
        code, olen = struct.unpack_from(e + "HH", body, pos)
        if code == 0:
            break
        if not ((code == 9 and tsresol is not None) or (code == 14 and tsoffset is not None)):
            out.append(body[pos:pos + 4 + olen] + bytes(-olen % 4))
        pos += 4 + olen + (-olen % 4)
    if tsresol is not None:
        out.append(struct.pack(e + "HHB3x", 9, 1, tsresol))
    if tsoffset is not None:
        out.append(struct.pack(e + "HHq", 14, 8, tsoffset))
    if len(out) > 1:
        out.append(struct.pack(e + "HH", 0, 0))
    return b"".join(out)


def _pcapng_times(seed: Seed, draw) -> bytes:
    """The seed with packet-block ticks rewritten and interfaces given extreme options."""
    ticks = _pick(TICKS, 0, 2**64 - 1)
    frame_offsets = [off for off, _h, _t in seed.frames]
    if draw(st.booleans(), label="alternate"):
        pair = [draw(ticks, label="ticks a"), draw(ticks, label="ticks b")]
        new_ticks = {off: pair[i % 2] for i, off in enumerate(frame_offsets)}
    else:
        new_ticks = {draw(st.sampled_from(frame_offsets), label="block"): draw(ticks, label="ticks")
                     for _ in range(draw(st.integers(1, 6), label="blocks"))}
    out = []
    for off, _head, total in seed.units:
        block = bytearray(seed.data[off:off + total])
        e = "<" if _le(seed, off) else ">"
        btype = struct.unpack_from(e + "I", block, 0)[0]
        if btype == 1 and draw(st.booleans(), label="change interface"):
            body = _idb_options(bytes(block[8:-4]), e,
                                draw(st.none() | _pick(TSRESOLS, 0, 255), label="if_tsresol"),
                                draw(st.none() | _pick(TSOFFSETS, INT64_MIN, INT64_MAX),
                                     label="if_tsoffset"))
            n = len(body) + 12
            block = bytearray(struct.pack(e + "II", 1, n) + body + struct.pack(e + "I", n))
        elif btype in (2, 6) and off in new_ticks:
            t = new_ticks[off]
            struct.pack_into(e + "II", block, 12, t >> 32, t & 0xFFFFFFFF)
        out.append(bytes(block))
    return b"".join(out)


def _walks_agree(data: bytes, plan) -> None:
    """Every chunk's record columns: the compiled walk equals the Python walk."""
    if plan is None or not columns.HAVE_COMPILED:
        return
    for spec in plan.chunks:
        buf = data[spec.start:spec.end]
        fast, slow = columns.record_columns(spec, buf), columns.record_columns_python(spec, buf)
        for name in ("ts", "untimed", "linktype", "offset", "caplen"):
            assert getattr(fast, name).tolist() == getattr(slow, name).tolist(), (name, spec)


@fuzz(150)
@given(seed=seeds, data=st.data(), chunk_size=chunk_sizes)
def test_timestamp_extremes(tmp_path_factory, seed: Seed, data, chunk_size: int) -> None:
    """Extreme and alternating far-apart record times, extreme if_tsresol/if_tsoffset: no
    damage, every frame read, times within ±2^62 ns exact and the others untimed (warned),
    statistics equal to the reference."""
    count_example("timestamp extremes")
    mutated = _pcapng_times(seed, data.draw) if seed.pcapng else _pcap_times(seed, data.draw)
    plan, _ = check(tmp_path_factory.mktemp("times"), mutated, chunk_size)
    assert plan is not None
    assert not [p for p in plan.problems if p.kind in FATAL], plan.problems
    assert plan.frames == len(seed.frames)
    assert {p.kind for p in plan.problems} <= {"timestamp", "unknown-interface"}, plan.problems
    if any(p.kind == "timestamp" for p in plan.problems):
        event("some times out of range")
    _walks_agree(mutated, plan)
