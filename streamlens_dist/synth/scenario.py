"""A realistic flight-test network capture with known injected gaps.

Periodic FTI streams (Chapter 10, TMATS, PTP over UDP and Layer 2, IENA, iNET-X) and random
background traffic (DNS, NTP, HTTP/TCP, SSH, ARP, ICMP, IGMP, DHCP, IPv6, IPv4 fragments,
VLAN/QinQ tags) are merged by timestamp. Everything is deterministic for a seed and streamed,
so millions of frames cost no memory. The streams themselves are declared in ``streams.py``.
"""

from __future__ import annotations

import heapq
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from streamlens_dist.synth.streams import StreamSpec, flight_test_streams
from streamlens_dist.synth.writers import write_pcap

__all__ = [
    "DEFAULT_START_NS",
    "Event",
    "Gap",
    "GroundTruth",
    "StreamInfo",
    "flight_test_capture",
    "flight_test_events",
    "flight_test_records",
    "stream_infos",
]

DEFAULT_START_NS = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class StreamInfo:
    """One stream of the scenario: its flow, frame types and nominal period."""

    name: str
    src: str
    dst: str
    kind: str
    frame_types: tuple[str, ...]
    period_ns: int | None
    gaps: bool


@dataclass(frozen=True)
class Gap:
    """An injected gap: ``stream`` skipped ``missed`` periods between two of its frames.

    ``gap_ns`` is the IAT the analyser attributes to ``frame`` (1-based capture order) per
    (flow ``(src, dst)``, ``frame_type``). It is also the flow-level IAT unless another
    stream of the same flow sent in between (only TMATS shares the ``ch10-pcm`` flow).
    """

    stream: str
    frame: int
    prev_frame: int
    gap_ns: int
    missed: int
    src: str
    dst: str
    frame_type: str


@dataclass(frozen=True)
class GroundTruth:
    """What :func:`flight_test_capture` wrote."""

    n_frames: int
    seed: int
    first_ns: int
    last_ns: int
    gaps: tuple[Gap, ...]
    stream_frames: dict[str, int] = field(default_factory=dict)
    streams: tuple[StreamInfo, ...] = ()


@dataclass(frozen=True)
class Event:
    """One frame of the scenario with its origin (``missed`` > 0 right after a gap)."""

    ts_ns: int
    stream: str
    frame: bytes
    missed: int


def _stream_events(
    idx: int,
    spec: StreamSpec,
    rng: random.Random,
    start_ns: int,
    res: int,
    jitter_ns: int,
    gap_rate: float,
    gap_periods: tuple[int, int],
) -> Iterator[tuple[int, int, bytes, int]]:
    """(ts, stream index, frame, missed) of one stream, strictly increasing in ts."""
    period = spec.period_ns
    # Poisson streams: t is the next arrival; periodic streams: t0 is the phase origin.
    t0 = start_ns + rng.randrange(period)
    t = start_ns + int(rng.expovariate(1.0 / period))
    last, k, missed = start_ns - res, 0, 0
    while True:
        if not spec.poisson:
            t = t0 + k * period + round(rng.gauss(0.0, jitter_ns))
        for off, frame in spec.build(k, t, rng):
            ts = t + off
            ts = max(ts - ts % res, last + res)
            yield ts, idx, frame, missed
            last, missed = ts, 0
        k += 1
        if spec.poisson:
            t = max(t + int(rng.expovariate(1.0 / period)), last + res)
        elif spec.gaps and rng.random() < gap_rate:
            missed = rng.randint(*gap_periods)
            k += missed


def flight_test_events(
    n_frames: int,
    seed: int = 0,
    *,
    start_ns: int = DEFAULT_START_NS,
    resolution_ns: int = 1000,
    jitter_ns: int = 20_000,
    gap_rate: float = 0.002,
    gap_periods: tuple[int, int] = (3, 8),
) -> Iterator[Event]:
    """The scenario's first ``n_frames`` frames in time order, with their stream names.

    ``resolution_ns`` rounds every timestamp down to a multiple (1000 suits µs pcap);
    ``jitter_ns`` is the Gaussian sigma of periodic streams; each period of a gap-eligible
    stream starts a gap of ``gap_periods`` (inclusive range) skipped periods with
    probability ``gap_rate``.
    """
    if resolution_ns <= 0 or start_ns % resolution_ns:
        raise ValueError(
            f"resolution_ns must be positive and divide start_ns; got {resolution_ns}"
        )
    master = random.Random(seed)
    specs = flight_test_streams(master, start_ns)
    gens = [
        _stream_events(i, spec, random.Random(master.getrandbits(64)), start_ns,
                       resolution_ns, jitter_ns, gap_rate, gap_periods)
        for i, spec in enumerate(specs)
    ]
    names = [spec.name for spec in specs]
    # Merging on (ts, stream index) keeps the order stable for equal timestamps.
    for ts, idx, frame, missed in islice(heapq.merge(*gens), n_frames):
        yield Event(ts, names[idx], frame, missed)


def flight_test_records(n_frames: int, seed: int = 0, **opts: Any) -> Iterator[tuple[int, bytes]]:
    """``(ts_ns, frame)`` records of the scenario (options as :func:`flight_test_events`)."""
    for ev in flight_test_events(n_frames, seed, **opts):
        yield ev.ts_ns, ev.frame


def stream_infos(seed: int = 0, start_ns: int = DEFAULT_START_NS) -> tuple[StreamInfo, ...]:
    """Descriptions of the scenario's streams (independent of ``n_frames``)."""
    specs = flight_test_streams(random.Random(seed), start_ns)
    return tuple(
        StreamInfo(s.name, s.src, s.dst, s.kind, s.frame_types,
                   None if s.poisson else s.period_ns, s.gaps)
        for s in specs
    )


def flight_test_capture(
    path: str | os.PathLike[str],
    n_frames: int,
    seed: int = 0,
    *,
    nanosecond: bool = False,
    big_endian: bool = False,
    **opts: Any,
) -> GroundTruth:
    """Write the scenario to a classic pcap file and return its ground truth.

    ``opts`` go to :func:`flight_test_events`.
    """
    if not nanosecond and opts.get("resolution_ns", 1000) % 1000:
        raise ValueError("a µs pcap cannot hold ns timestamps: pass nanosecond=True or a "
                         "resolution_ns that is a multiple of 1000")
    infos = {s.name: s for s in stream_infos(seed, opts.get("start_ns", DEFAULT_START_NS))}
    counts = dict.fromkeys(infos, 0)
    last_seen: dict[str, tuple[int, int]] = {}
    gaps: list[Gap] = []
    span: dict[str, int] = {}

    def records() -> Iterator[tuple[int, bytes]]:
        for number, ev in enumerate(flight_test_events(n_frames, seed, **opts), 1):
            counts[ev.stream] += 1
            if ev.missed:
                info = infos[ev.stream]
                prev_frame, prev_ts = last_seen[ev.stream]
                gaps.append(Gap(ev.stream, number, prev_frame, ev.ts_ns - prev_ts, ev.missed,
                                info.src, info.dst, info.frame_types[0]))
            last_seen[ev.stream] = (number, ev.ts_ns)
            span.setdefault("first", ev.ts_ns)
            span["last"] = ev.ts_ns
            yield ev.ts_ns, ev.frame

    written = write_pcap(path, records(), nanosecond=nanosecond, big_endian=big_endian)
    return GroundTruth(written, seed, span.get("first", 0), span.get("last", 0), tuple(gaps),
                       counts, tuple(infos.values()))
