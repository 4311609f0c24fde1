"""Telemetry streams with injected sequence faults, and their ground truth (docs/STREAMS.md).

:func:`telemetry_capture` writes a pcap of flight-test telemetry streams:

- recorder A: Chapter 10 over UDP Format 1 full-packet datagrams, several packets of
  different channels per datagram (one with a secondary header, some with error flags or a
  bad header checksum, one datagram whose last packet is cut), and a TMATS setup record
  sent twice identical, then changed;
- recorder B: Format 2 segmented packets (first segments + continuations) and Format 2
  full-packet datagrams on the same flow;
- recorder C: Format 1 segmented packets with continuations;
- a flow of UDP datagrams that merely look like segment continuations (no stream);
- PTP over UDP: two-step Sync + Follow_Up (some Follow_Ups missing, some Syncs repeated
  alone), Announce with grandmaster changes; PTP over Ethernet: one-step Sync + Announce;
- IENA with five keys (P, D, N, Q and one with key status 0), N2 status changes;
- iNET-X with two stream IDs, some PIF error/timeout bits.

Each stream's sequence numbers start near the wrap point of their field (8-bit CH10,
16-bit PTP/IENA, 24-bit CH10-UDP, 32-bit iNET-X) and the stream is impaired by losses,
duplicates, adjacent swaps and longer displacements (one message late by several places,
or several places early). The returned :class:`Truth` is computed from what the generator
did - for each stream, the nominal index of every message in the order sent - never by
parsing the file: gaps are forward jumps of the nominal index against the highest index
so far (STREAMS.md §2), so they hold whatever the unwrapping code does.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from streamlens_dist.synth.ch10 import ch10_packet, ch10_transfer, ch10_udp
from streamlens_dist.synth.frames import ETH_PTP, ether, udp_frame
from streamlens_dist.synth.payloads import iena, inetx, ptp
from streamlens_dist.synth.writers import write_pcap

__all__ = ["SeqGap", "StreamTruth", "Truth", "telemetry_capture"]

START_NS = 1_720_000_000_000_000_000
US, MS = 1_000, 1_000_000

REC_A, GRP_A = "192.168.40.10", "239.40.0.1"
REC_B, GRP_B = "192.168.40.11", "239.40.0.2"
REC_C, GRP_C = "192.168.40.12", "239.40.0.3"
DECOY_SRC, DECOY_DST = "192.168.40.99", "192.168.40.100"
GM_IP, PTP_GRP = "192.168.40.1", "224.0.1.129"
PTP_L2_SRC, PTP_L2_DST = "00:1b:19:00:00:07", "01:1b:19:00:00:00"
DAU_IENA, GRP_IENA = "192.168.40.20", "239.40.0.20"
DAU_INETX, GRP_INETX = "192.168.40.21", "239.40.0.21"

CLOCK_UDP = bytes.fromhex("001b19fffe00000a")
CLOCK_L2 = bytes.fromhex("f0e1d2fffec3b4a5")  # top bit set: a negative int64 id3
GM_1, GM_2 = bytes.fromhex("001b19fffe0000a1"), bytes.fromhex("001b19fffe0000b2")

TMATS_NAMES_1 = {0x0003: "PCM_MAIN", 0x0005: "BUS_1553_A"}
TMATS_NAMES_2 = {0x0003: "PCM_MAIN", 0x0005: "BUS_1553_B"}

# IENA keys: key -> (packet type the key status says or None, key map type, map name)
IENA_KEYS = {0x001A: ("N", "N", "AIRDATA"), 0x0B20: ("D", None, None), 0x0C30: ("P", None, None),
             0x0D40: ("Q", None, None), 0x0E50: (None, "P", "ENGINE")}
PTP_NAMES = {0x0: "Sync", 0x8: "Follow_Up", 0xB: "Announce"}


@dataclass(frozen=True)
class SeqGap:
    """A row of ``sequence_gaps/`` as STREAMS.md §2 defines it."""

    frame_before: int
    frame_after: int
    seq_before: int
    seq_after: int
    missing: int


@dataclass(frozen=True)
class StreamTruth:
    """One stream as sent: identity, messages in capture order and the sequence accounting
    of its counter (its own; for CH10 the channel's, shared by the channel's data types)."""

    src: str
    dst: str
    protocol: str
    ids: tuple[int, int, int, int]
    stream: str  # the streams/ text
    seq_bits: int
    frames: tuple[int, ...]  # frame of every message, in capture order
    # raw sequence numbers its counter accounts, in capture order: the stream's messages but
    # segment continuations; for CH10, the messages of every data type of the channel
    seqs: tuple[int, ...]
    expected: int
    lost: int
    duplicated: int
    out_of_order: int
    gaps: tuple[SeqGap, ...]  # its counter's gaps whose message after the gap is this stream's
    gap_count: int  # of the counter
    gap_missing: int
    errors: int = 0
    segments: int = 0
    unpaired_syncs: int = 0
    status_changes: int = 0
    status_first: int = -1
    status_last: int = -1
    iena_type: str = ""  # without a key map
    iena_type_mapped: str = ""  # with Truth.iena_keys
    tmats_name: str = ""

    @property
    def key(self) -> tuple:
        return (self.src, self.dst, self.protocol, self.ids)

    @property
    def messages(self) -> int:
        return len(self.frames)

    @property
    def received(self) -> int:
        return len(self.seqs)



@dataclass(frozen=True)
class Truth:
    """What :func:`telemetry_capture` wrote."""

    path: str
    seed: int
    n_frames: int
    streams: tuple[StreamTruth, ...]
    # (domain, grandmaster hex, src, dst, frame, change) per STREAMS.md §5
    grandmasters: tuple[tuple[int, str, str, str, int, int], ...]
    # (src, dst, frame, channel_id, change, text) per STREAMS.md §4
    tmats: tuple[tuple[str, str, int, int, int, str], ...]
    # the key map that goes with the capture: {key: (type, name)}
    iena_keys: dict[int, tuple[str, str]] = field(default_factory=dict)
    # flows that carry frames but must not report any stream (continuation look-alikes)
    silent_flows: tuple[tuple[str, str], ...] = ()

    def stream(self, protocol: str, **ids: int) -> StreamTruth:
        """The one stream of ``protocol`` whose id1..id4 match the given ones."""
        found = [s for s in self.streams if s.protocol == protocol
                 and all(s.ids[int(k[2]) - 1] == v for k, v in ids.items())]
        if len(found) != 1:
            raise KeyError(f"{len(found)} {protocol} streams match {ids}")
        return found[0]


# --------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------

FAULTS = ("loss", "dup", "swap", "late", "early")


def impaired_order(n: int, rng: random.Random, rate: float = 0.05,
                   protected: frozenset[int] = frozenset()) -> list[int]:
    """Nominal indices 0..n-1 in the order sent, with faults in disjoint windows that keep
    the first 3 and last 12 indices and the ``protected`` ones untouched:
    loss of 1-3, an immediate duplicate, an adjacent swap, one index sent 2-6 places late,
    or one index sent 2-6 places early. Each fault is followed by 3 clean indices."""
    out: list[int] = []
    i = 0
    while i < n:
        if 3 <= i < n - 12 and rng.random() < rate \
                and not protected.intersection(range(i, i + 10)):
            kind = rng.choice(FAULTS)
            if kind == "loss":
                i += rng.randint(1, 3)
            elif kind == "dup":
                out += [i, i]
                i += 1
            elif kind == "swap":
                out += [i + 1, i]
                i += 2
            elif kind == "late":
                d = rng.randint(2, 6)
                out += [*range(i + 1, i + d + 1), i]
                i += d + 1
            else:
                d = rng.randint(2, 6)
                out += [i + d, *range(i, i + d)]
                i += d + 1
            out += [i, i + 1, i + 2]
            i += 3
        else:
            out.append(i)
            i += 1
    return out


# --------------------------------------------------------------------------------------
# Messages and frames as the generator records them
# --------------------------------------------------------------------------------------


@dataclass
class _Msg:
    stream: tuple  # (src, dst, protocol, ids)
    idx: int  # nominal index in its stream
    seq: int  # raw sequence number
    error: bool = False
    segment: str | None = None  # "first" segment or "continuation" (no own number)
    status: int = -1
    iena_type: str = ""
    two_step: bool = False
    grandmaster: str | None = None
    tmats: str | None = None
    channel: int = 0
    frame: int = 0
    pos: int = 0  # position in its frame


@dataclass
class _Frame:
    ts: int
    order: tuple
    data: bytes
    msgs: list[_Msg]
    frame: int = 0


class _Streams:
    """Collects frames and remembers each stream's sequence width and text."""

    def __init__(self) -> None:
        self.frames: list[_Frame] = []
        self.info: dict[tuple, tuple[int, str]] = {}

    def declare(self, key: tuple, bits: int, text: str) -> tuple:
        self.info.setdefault(key, (bits, text))
        return key

    def add(self, ts: int, order: tuple, data: bytes, msgs: list[_Msg]) -> None:
        self.frames.append(_Frame(ts, order, data, msgs))


def _slot_times(rng: random.Random, count: int, start: int, period: int) -> list[int]:
    """Strictly increasing µs times, one per send slot, jittered inside a quarter period."""
    return [start + k * period + rng.randrange(0, period // 4 // US) * US for k in range(count)]


def _int64(raw: bytes) -> int:
    v = int.from_bytes(raw, "big")
    return v - 2**64 if v >= 2**63 else v


_LETTERS = bytes(0x41 + b % 26 for b in range(256))


def _letters(rng: random.Random, n: int) -> bytes:
    """Filler that cannot look like a sync word, an IENA trailer or a TMATS attribute."""
    return rng.randbytes(n).translate(_LETTERS)


# --------------------------------------------------------------------------------------
# Recorders (Chapter 10 over UDP)
# --------------------------------------------------------------------------------------


def _tmats_text(names: dict[int, str]) -> str:
    lines = ["G\\PN:TELEMETRY_TRUTH;", "G\\106:17;", "G\\DSI\\N:1;", "G\\DSI-1:REC-A;",
             "R-1\\ID:REC-A;", f"R-1\\N:{len(names)};"]
    for n, (channel, name) in enumerate(sorted(names.items()), 1):
        lines += [f"R-1\\TK1-{n}:{channel};", f"R-1\\DSI-{n}:{name};", f"R-1\\CDT-{n}:PCMIN;"]
    return "\r\n".join(lines + ["COMMENT:generated;"]) + "\r\n"


def _recorder_a(out: _Streams, rng: random.Random, n: int, t0: int) -> None:
    """Format 1 full-packet datagrams (several channels each) and TMATS datagrams; channel 0
    numbers its TMATS and recording-event packets in one series (STREAMS.md §2)."""
    flow = (REC_A, GRP_A)
    udp_key = out.declare((*flow, "CH10-UDP", (1, 0, 0, 0)), 24, "fmt 1")
    types = [(0x0003, 0x09), (0x0005, 0x19), (0x0006, 0x11), (0x0000, 0x01), (0x0000, 0x02)]
    ch_keys = {(c, t): out.declare((*flow, "CH10", (c, t, 0, 0)), 8,
                                   f"ch 0x{c:04x} type 0x{t:02x}") for c, t in types}
    tmats_at = {0: TMATS_NAMES_1, n // 3: TMATS_NAMES_1, (2 * n) // 3: TMATS_NAMES_2}
    # an even datagram (channel 5 follows channel 3) whose last packet is cut short
    cut_at = next(j for j in range(n // 2, n, 2) if j not in tmats_at)
    udp_start = 0xFFFFFF - n // 2
    ch_start = {0x0003: 240, 0x0005: 250, 0x0006: 100, 0x0000: 254}
    ch_count = dict.fromkeys(ch_start, 0)  # one sequence counter per channel ID
    datagrams = []  # nominal datagram j -> (payload, messages)
    for j in range(n):
        if j in tmats_at:
            plan = [(0x0000, 0x01, {})]
        else:
            plan = [(0x0003, 0x09, {})]
            if j % 2 == 0:
                plan.append((0x0005, 0x19, {"flags": 0x20} if j % 13 == 4 else
                             {"bad_checksum": True} if j % 17 == 9 else {}))
            if j % 7 == 3:
                plan.append((0x0003, 0x09, {"flags": 0x10} if j % 3 == 0 else {}))
            if j % 10 == 5:
                plan.append((0x0006, 0x11, {"secondary_time_ns": t0 + j * MS}))
            if j % 9 == 4:
                plan.append((0x0000, 0x02, {}))  # recording event: channel 0's counter
        packets, msgs = b"", []
        for channel, dtype, opts in plan:
            idx = ch_count[channel]
            ch_count[channel] += 1
            seq = (ch_start[channel] + idx) % 256
            if dtype == 0x01:
                text = _tmats_text(tmats_at[j])
                body = struct.pack("<I", 0x0C) + text.encode("latin-1")
                msgs.append(_Msg(ch_keys[channel, dtype], idx, seq, tmats=text, channel=channel))
            else:
                body = struct.pack("<I", j) + _letters(rng, rng.choice((20, 64, 122)))
                flags = opts.get("flags", 0)
                msgs.append(_Msg(ch_keys[channel, dtype], idx, seq, error=bool(flags & 0x30)))
            packets += ch10_packet(dtype, channel, seq, body, rtc=j * 10_000, **opts)
        payload = ch10_transfer(1, packets, udp_seq=(udp_start + j) % 2**24)
        if j == cut_at:
            payload = payload[:-8]  # the last packet runs past the datagram: still a message
        msgs.insert(0, _Msg(udp_key, j, (udp_start + j) % 2**24))
        datagrams.append((payload, msgs))
    order = impaired_order(n, rng, protected=frozenset(tmats_at) | {cut_at})
    for k, (j, ts) in enumerate(zip(order, _slot_times(rng, len(order), t0, 4 * MS),
                                    strict=True)):
        payload, msgs = datagrams[j]
        out.add(ts, (0, k), udp_frame(REC_A, GRP_A, 6679, 6679, payload),
                [_copy(m) for m in msgs])


def _copy(m: _Msg) -> _Msg:
    return _Msg(**{**m.__dict__})


def _f2_segment(seq: int, packet: bytes, offset: int, size: int, channel: int) -> bytes:
    """Format 2 segment of packet bytes [offset, offset + size): the packet size and the
    segment offset fields both count 32-bit words (STREAMS.md §1.2)."""
    words = offset // 4
    return (seq.to_bytes(3, "big") + bytes([0x12, (words >> 16) & 0xFF])
            + (len(packet) // 4).to_bytes(3, "big")
            + struct.pack(">HH", words & 0xFFFF, channel) + packet[offset:offset + size])


def _recorder_b(out: _Streams, rng: random.Random, n: int, t0: int) -> None:
    """Format 2: PCM packets in 3 segments, and a full-packet 1553 datagram every 4th."""
    flow = (REC_B, GRP_B)
    udp_key = out.declare((*flow, "CH10-UDP", (2, 0, 0, 0)), 24, "fmt 2")
    pcm = out.declare((*flow, "CH10", (0x0007, 0x09, 0, 0)), 8, "ch 0x0007 type 0x09")
    bus = out.declare((*flow, "CH10", (0x0008, 0x19, 0, 0)), 8, "ch 0x0008 type 0x19")
    udp_start = 0xFFFFFF - n // 8
    datagrams = []
    p = b_count = u = 0  # u: UDP message number (per Chapter 10 packet, not per datagram)
    while len(datagrams) < n:
        seq7 = (200 + p) % 256
        useq = (udp_start + u) % 2**24
        packet = ch10_packet(0x09, 0x0007, seq7, struct.pack("<I", p) + _letters(rng, 1996))
        for offset in (0, 700, 1400):
            if offset == 0:
                msgs = [_Msg(udp_key, u, useq, segment="first"), _Msg(pcm, p, seq7)]
            else:
                msgs = [_Msg(udp_key, -1, useq, segment="continuation")]
            datagrams.append((_f2_segment(useq, packet, offset, 700, 0x0007), msgs))
        p += 1
        u += 1
        if p % 4 == 0:
            useq = (udp_start + u) % 2**24
            seq8 = (128 + b_count) % 256
            full = ch10_packet(0x19, 0x0008, seq8, struct.pack("<I", u) + _letters(rng, 36))
            datagrams.append((ch10_transfer(2, full, udp_seq=useq),
                              [_Msg(udp_key, u, useq), _Msg(bus, b_count, seq8)]))
            b_count += 1
            u += 1
    order = impaired_order(len(datagrams), rng)
    for k, (j, ts) in enumerate(zip(order, _slot_times(rng, len(order), t0 + 300 * US, 3 * MS),
                                    strict=True)):
        payload, msgs = datagrams[j]
        out.add(ts, (1, k), udp_frame(REC_B, GRP_B, 51001, 51001, payload),
                [_copy(m) for m in msgs])


def _recorder_c(out: _Streams, rng: random.Random, n: int, t0: int) -> None:
    """Format 1 segmented video packets: first segment + 2 continuations each."""
    flow = (REC_C, GRP_C)
    udp_key = out.declare((*flow, "CH10-UDP", (1, 0, 0, 0)), 24, "fmt 1")
    video = out.declare((*flow, "CH10", (0x0009, 0x40, 0, 0)), 8, "ch 0x0009 type 0x40")
    udp_start = 0xFFFFFF - n // 6
    datagrams = []
    p = 0
    while len(datagrams) < n:
        seq9 = (230 + p) % 256
        useq = (udp_start + p) % 2**24  # one UDP message number per packet
        body = struct.pack("<I", p) + _letters(rng, 1200)
        for offset, size in ((0, 500), (500, 500), (1000, 228)):
            if offset == 0:
                msgs = [_Msg(udp_key, p, useq, segment="first"), _Msg(video, p, seq9)]
            else:
                msgs = [_Msg(udp_key, -1, useq, segment="continuation")]
            payload = ch10_udp(1, 0x40, 0x0009, seq9, body, segmented=True,
                               segment_offset=offset, segment_size=size, udp_seq=useq)
            datagrams.append((payload, msgs))
        p += 1
    order = impaired_order(len(datagrams), rng)
    for k, (j, ts) in enumerate(zip(order, _slot_times(rng, len(order), t0 + 700 * US, 5 * MS),
                                    strict=True)):
        payload, msgs = datagrams[j]
        out.add(ts, (2, k), udp_frame(REC_C, GRP_C, 6680, 6680, payload),
                [_copy(m) for m in msgs])


def _decoy(out: _Streams, rng: random.Random, n: int, t0: int) -> None:
    """UDP datagrams passing the Format 1 continuation test on a flow without Chapter 10."""
    for k, ts in enumerate(_slot_times(rng, max(3, n // 10), t0 + 900 * US, 37 * MS)):
        payload = b"\x11" + k.to_bytes(3, "little") + bytes(4) + struct.pack("<I", 64 + k) \
            + _letters(rng, 48)
        out.add(ts, (3, k), udp_frame(DECOY_SRC, DECOY_DST, 7000, 7000, payload), [])


# --------------------------------------------------------------------------------------
# PTP
# --------------------------------------------------------------------------------------


def _ptp_key(out: _Streams, flow: tuple, domain: int, mt: int, clock: bytes) -> tuple:
    ids = (domain, mt, _int64(clock), 1)
    return out.declare((*flow, "PTP", ids), 16,
                       f"domain {domain} {PTP_NAMES[mt]} {clock.hex()}-1")


def _announce(seq: int, domain: int, clock: bytes, gm: bytes, ts: int) -> bytes:
    msg = ptp(0xB, domain=domain, seq=seq, clock_identity=clock, origin_ns=ts)
    return msg[:53] + gm + msg[61:]


def _ptp_udp(out: _Streams, rng: random.Random, n: int, t0: int) -> None:
    """Two-step Sync + Follow_Up (domain 0) with missing Follow_Ups and lone repeated
    Syncs, Announce every 8th Sync slot with grandmaster GM_1 -> GM_2 -> GM_1."""
    flow = (GM_IP, PTP_GRP)
    sync = _ptp_key(out, flow, 0, 0x0, CLOCK_UDP)
    fup = _ptp_key(out, flow, 0, 0x8, CLOCK_UDP)
    ann = _ptp_key(out, flow, 0, 0xB, CLOCK_UDP)
    start = 0xFFFF - n // 2
    no_follow_up = {i for i in range(5, n - 5) if rng.random() < 0.04}
    order = impaired_order(n, rng)
    lone = {k for k in range(3, len(order) - 3) if rng.random() < 0.02}
    n_ann = max(20, n // 8)
    ann_order = impaired_order(n_ann, rng, rate=0.08)
    ann_gm = [GM_1 if a < n_ann // 2 or a >= (4 * n_ann) // 5 else GM_2 for a in range(n_ann)]
    ann_start = 0xFFFF - n_ann // 3
    times = _slot_times(rng, len(order), t0 + 100 * US, 8 * MS)
    for k, (i, ts) in enumerate(zip(order, times, strict=True)):
        seq = (start + i) % 2**16
        m = ptp(0x0, domain=0, seq=seq, clock_identity=CLOCK_UDP, origin_ns=ts)
        out.add(ts, (4, k, 0), udp_frame(GM_IP, PTP_GRP, 319, 319, m),
                [_Msg(sync, i, seq, two_step=True)])
        if k in lone:
            out.add(ts + 10 * US, (4, k, 1), udp_frame(GM_IP, PTP_GRP, 319, 319, m),
                    [_Msg(sync, i, seq, two_step=True)])
        if i not in no_follow_up:
            m = ptp(0x8, domain=0, seq=seq, clock_identity=CLOCK_UDP, origin_ns=ts)
            out.add(ts + 40 * US, (4, k, 2), udp_frame(GM_IP, PTP_GRP, 320, 320, m),
                    [_Msg(fup, i, seq)])
    ann_times = _slot_times(rng, len(ann_order), t0 + 4 * MS, 64 * MS)
    for k, (a, ts) in enumerate(zip(ann_order, ann_times, strict=True)):
        seq = (ann_start + a) % 2**16
        m = _announce(seq, 0, CLOCK_UDP, ann_gm[a], ts)
        out.add(ts, (4, k, 3), udp_frame(GM_IP, PTP_GRP, 320, 320, m),
                [_Msg(ann, a, seq, grandmaster=ann_gm[a].hex())])


def _ptp_l2(out: _Streams, rng: random.Random, n: int, t0: int) -> None:
    """One-step Syncs (no Follow_Up needed) and Announce every 4th slot, domain 3, L2."""
    flow = (PTP_L2_SRC, PTP_L2_DST)
    sync = _ptp_key(out, flow, 3, 0x0, CLOCK_L2)
    ann = _ptp_key(out, flow, 3, 0xB, CLOCK_L2)
    start = 0xFFFF - n // 4
    order = impaired_order(n, rng)
    times = _slot_times(rng, len(order), t0 + 200 * US, 6 * MS)
    for k, (i, ts) in enumerate(zip(order, times, strict=True)):
        seq = (start + i) % 2**16
        m = ptp(0x0, domain=3, seq=seq, clock_identity=CLOCK_L2, flags=0, origin_ns=ts)
        out.add(ts, (5, k, 0), ether(PTP_L2_DST, PTP_L2_SRC, ETH_PTP, m), [_Msg(sync, i, seq)])
    for a in range(len(order) // 4):
        ts = times[4 * a] + 50 * US
        seq = (7 + a) % 2**16
        m = _announce(seq, 3, CLOCK_L2, CLOCK_L2, ts)
        out.add(ts, (5, 4 * a, 1), ether(PTP_L2_DST, PTP_L2_SRC, ETH_PTP, m),
                [_Msg(ann, a, seq, grandmaster=CLOCK_L2.hex())])


# --------------------------------------------------------------------------------------
# IENA and iNET-X
# --------------------------------------------------------------------------------------


def _iena(out: _Streams, rng: random.Random, n: int, t0: int) -> None:
    flow = (DAU_IENA, GRP_IENA)
    for r, (key, (flags_type, _map_type, _name)) in enumerate(IENA_KEYS.items()):
        skey = out.declare((*flow, "IENA", (key, 0, 0, 0)), 16, f"key 0x{key:04x}")
        start = (0xFFFF - n // 3 + 97 * r) % 2**16
        order = impaired_order(n, rng)
        period = (2, 3, 5, 4, 7)[r] * MS
        for k, (i, ts) in enumerate(zip(order, _slot_times(rng, len(order),
                                                           t0 + (400 + 50 * r) * US, period),
                                        strict=True)):
            seq = (start + i) % 2**16
            n2 = 0x40 if key == 0x001A and n // 2 <= i < n // 2 + 5 else 0
            if flags_type is None:
                payload = iena(key, "P", seq, 8, key_status=0, n2=n2, time_us=i * 1000)
                status = 0
            else:
                payload = iena(key, flags_type, seq, 6, n2=n2, time_us=i * 1000)
                status = payload[10]
            out.add(ts, (6, r, k), udp_frame(DAU_IENA, GRP_IENA, 50000, 50000, payload),
                    [_Msg(skey, i, seq, status=(status << 8) | n2,
                          iena_type=flags_type or "Unknown")])


def _inetx(out: _Streams, rng: random.Random, n: int, t0: int) -> None:
    flow = (DAU_INETX, GRP_INETX)
    for r, sid in enumerate((0xCA, 0xCB)):
        skey = out.declare((*flow, "INETX", (sid, 0, 0, 0)), 32, f"stream 0x{sid:08x}")
        start = 2**32 - n // 2 - 5 * r
        order = impaired_order(n, rng)
        for k, (i, ts) in enumerate(zip(order, _slot_times(rng, len(order),
                                                           t0 + (600 + 30 * r) * US,
                                                           (5 + r) * MS), strict=True)):
            seq = (start + i) % 2**32
            pif = (1 << 31 if i % 37 == 5 else 0) | (1 << 26 if i % 53 == 7 else 0) \
                | (3 << 27 if i % 11 == 2 else 0)  # lost count alone is no error
            payload = inetx(sid, seq, _letters(rng, 64), ptp_ns=ts, pif=pif)
            out.add(ts, (7, r, k), udp_frame(DAU_INETX, GRP_INETX, 6000, 6000, payload),
                    [_Msg(skey, i, seq, error=bool(pif & (1 << 31 | 1 << 26)))])


# --------------------------------------------------------------------------------------
# Truth
# --------------------------------------------------------------------------------------


def _accounting(msgs: list[_Msg]) -> tuple:
    """(expected, lost, duplicated, out_of_order, [(gap, stream of the message after it)],
    raw numbers) from the nominal indices of a counter's messages in capture order: forward
    jumps against the highest index so far. Segment continuations carry no number of their
    own and are left out."""
    msgs = [m for m in msgs if m.segment != "continuation"]
    high_msg = msgs[0]
    duplicated = late = 0
    gaps = []
    for m in msgs[1:]:
        if m.idx > high_msg.idx:
            if m.idx > high_msg.idx + 1:
                gaps.append((SeqGap(high_msg.frame, m.frame, high_msg.seq, m.seq,
                                    m.idx - high_msg.idx - 1), m.stream))
            high_msg = m
        elif m.idx == high_msg.idx:
            duplicated += 1
        else:
            late += 1
    idxs = [m.idx for m in msgs]
    expected = max(idxs) - min(idxs) + 1
    return (expected, max(0, expected - (len(msgs) - duplicated)), duplicated, late, gaps,
            tuple(m.seq for m in msgs))


def _counter(key: tuple) -> tuple:
    src, dst, protocol, ids = key
    return (src, dst, "CH10", ids[0]) if protocol == "CH10" else key


def _unpaired(syncs: list[_Msg], follow_ups: list[_Msg]) -> int:
    count = 0
    for n, s in enumerate(syncs):
        end = syncs[n + 1].frame if n + 1 < len(syncs) else float("inf")
        if s.two_step and not any(f.seq == s.seq and s.frame < f.frame < end
                                  for f in follow_ups):
            count += 1
    return count


def _changes(items: list, value: Callable) -> list:
    """Items whose value differs from the previous item's (the first always)."""
    out, last = [], object()
    for item in items:
        if value(item) != last:
            out.append(item)
            last = value(item)
    return out


def telemetry_capture(path: str | os.PathLike[str], seed: int, n_messages: int = 200, *,
                      start_ns: int = START_NS, nanosecond: bool = False) -> Truth:
    """Write the telemetry capture to a classic pcap and return its ground truth.

    ``n_messages`` is each stream's nominal length (datagrams for the recorders); the
    capture holds about 13 frames per nominal message. ``start_ns`` must be a multiple of
    1000 (µs pcap unless ``nanosecond``).
    """
    if n_messages < 40:
        raise ValueError(f"n_messages must be at least 40, got {n_messages}")
    if start_ns % US:
        raise ValueError("start_ns must be a multiple of 1000 (µs timestamps)")
    master = random.Random(seed)
    out = _Streams()
    for build in (_recorder_a, _recorder_b, _recorder_c, _decoy, _ptp_udp, _ptp_l2, _iena,
                  _inetx):
        build(out, random.Random(master.getrandbits(64)), n_messages, start_ns)

    out.frames.sort(key=lambda f: (f.ts, f.order))
    by_stream: dict[tuple, list[_Msg]] = {}
    for number, fr in enumerate(out.frames, 1):
        fr.frame = number
        for pos, m in enumerate(fr.msgs):
            m.frame, m.pos = number, pos
            by_stream.setdefault(m.stream, []).append(m)
    # sequence counters: each stream its own, Chapter 10 one per (flow, channel ID)
    counters: dict[tuple, list[_Msg]] = {}
    for key, msgs in by_stream.items():
        counters.setdefault(_counter(key), []).extend(msgs)
    accounting = {c: _accounting(sorted(msgs, key=lambda m: (m.frame, m.pos)))
                  for c, msgs in counters.items()}
    written = write_pcap(path, ((f.ts, f.data) for f in out.frames), nanosecond=nanosecond)

    # TMATS (§4): per flow the first text and every change; names from the last one
    tmats_msgs = [m for fr in out.frames for m in fr.msgs if m.tmats is not None]
    tmats = tuple((m.stream[0], m.stream[1], m.frame, m.channel, change, m.tmats)
                  for change, m in enumerate(_changes(tmats_msgs, lambda m: m.tmats)))
    names_of = {_tmats_text(names): names for names in (TMATS_NAMES_1, TMATS_NAMES_2)}
    last_names = names_of[tmats[-1][5]]
    # PTP grandmasters (§5): per domain the first Announce and every change
    gm_rows = []
    all_announces = [m for fr in out.frames for m in fr.msgs if m.grandmaster]
    for domain in sorted({m.stream[3][0] for m in all_announces}):
        announces = [m for m in all_announces if m.stream[3][0] == domain]
        for change, m in enumerate(_changes(announces, lambda m: m.grandmaster)):
            gm_rows.append((domain, m.grandmaster, m.stream[0], m.stream[1], m.frame, change))
    gm_rows.sort(key=lambda r: r[4])

    streams = []
    for key, msgs in by_stream.items():
        src, dst, protocol, ids = key
        bits, text = out.info[key]
        expected, lost, dup, late, counter_gaps, seqs = accounting[_counter(key)]
        gaps = tuple(g for g, after in counter_gaps if after == key)
        extra: dict = {}
        if protocol == "IENA":
            flags_type, map_type, name = IENA_KEYS[ids[0]]
            extra = {"status_changes": sum(1 for a, b in zip(msgs, msgs[1:], strict=False)
                                           if a.status != b.status),
                     "status_first": msgs[0].status, "status_last": msgs[-1].status,
                     "iena_type": flags_type or "Unknown",
                     "iena_type_mapped": map_type or flags_type or "Unknown"}
        elif protocol == "PTP" and ids[1] == 0:
            follow_ups = by_stream.get((src, dst, "PTP", (ids[0], 8, ids[2], ids[3])), [])
            extra = {"unpaired_syncs": _unpaired(msgs, follow_ups)}
        elif protocol == "CH10" and src == REC_A:
            extra = {"tmats_name": last_names.get(ids[0], "")}
        streams.append(StreamTruth(
            src, dst, protocol, ids, text, bits, tuple(m.frame for m in msgs), seqs, expected,
            lost, dup, late, gaps, len(counter_gaps), sum(g.missing for g, _ in counter_gaps),
            errors=sum(m.error for m in msgs),
            segments=sum(m.segment is not None for m in msgs), **extra))
    keys = {k: (t, name) for k, (_f, t, name) in IENA_KEYS.items() if t is not None}
    return Truth(os.fspath(path), seed, written, tuple(streams), tuple(gm_rows), tmats, keys,
                 ((DECOY_SRC, DECOY_DST),))
