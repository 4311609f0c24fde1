"""Large flight-test captures for the benchmarks, with the ground truth of their injected gaps.

    python benchmarks/generate.py OUT.pcap --frames 2000000 --flows 200 [--seed 1] [--pcapng]

The capture is the ``streamlens_dist.synth`` flight-test scenario (Chapter 10 formats 1-3
with TMATS, PTP over UDP and Layer 2, IENA P/D/N/M/Q, iNET-X, background DNS/NTP/HTTP/SSH/
ARP/ICMP/IGMP/DHCP/IPv6/fragments, VLAN and QinQ tags; about ``BASE_FLOWS`` flows) merged by
timestamp with a *fleet* of extra periodic streams, one flow each, from more data acquisition
units and recorders (IENA-D/N, iNET-X with and without VLAN, Chapter 10 PCM and MIL-STD-1553)
until the capture has about ``--flows`` flows. Fleet streams skip 3-8 periods now and then,
like the scenario's own gap-eligible streams.

Everything is streamed (one frame at a time into a buffered writer), so the size of the
capture costs no memory. The ground truth (every injected gap: stream, frame number, IAT,
flow and frame type, plus frames per stream) goes to ``OUT.truth.json`` unless ``--truth``
names another file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import json
import os
import random
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

from streamlens_dist.synth import (
    DEFAULT_START_NS,
    Interface,
    ch10_udp,
    flight_test_events,
    iena,
    inetx,
    stream_infos,
    udp_frame,
    write_pcap,
    write_pcapng,
)

GENERATOR_VERSION = 1  # part of cached capture names: bump when the output changes
# Flows of the synth scenario alone once all its streams have sent (captures of >= ~100k
# frames; shorter ones lack some rare background flows). Fleet streams add one flow each.
BASE_FLOWS = 66
MS = 1_000_000
TAI_OFFSET_NS = 37 * 10**9
# (protocol, frame type the engine reports) cycled over the fleet; periods cycled separately
FLEET_KINDS = (("iena-d", "IENA-D"), ("inetx", "INETX"), ("ch10-pcm", "CH10-Data"),
               ("iena-n", "IENA-N"), ("inetx-vlan", "INETX"), ("ch10-1553", "CH10-Data"))
FLEET_PERIODS_MS = (20, 50, 100, 200, 10)


@dataclass(frozen=True)
class FleetStream:
    """One extra periodic stream: a flow of its own."""

    name: str
    protocol: str
    src: str
    dst: str
    kind: str
    frame_type: str
    period_ns: int
    index: int


@dataclass
class Truth:
    """What :func:`generate` wrote (also saved as JSON next to the capture)."""

    path: str
    frames: int
    bytes: int
    seed: int
    flows_requested: int
    flows_expected: int  # BASE_FLOWS + fleet streams
    first_ns: int
    last_ns: int
    gaps: list[dict] = field(default_factory=list)
    stream_frames: dict[str, int] = field(default_factory=dict)
    fleet: list[dict] = field(default_factory=list)
    version: int = GENERATOR_VERSION
    seconds: float = 0.0

    def gap_frames(self) -> list[int]:
        return [g["frame"] for g in self.gaps]

    def save(self, path: str | os.PathLike[str]) -> None:
        tmp = f"{path}.part"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Truth:
        with open(path) as f:
            return cls(**json.load(f))


def truth_path(capture: str | os.PathLike[str]) -> str:
    return f"{os.fspath(capture)}.truth.json"


def fleet_streams(n: int) -> list[FleetStream]:
    """``n`` extra streams; DAUs on 192.168.30+.x, multicast groups 235.2+.x.y, all distinct."""
    out = []
    for i in range(n):
        protocol, ftype = FLEET_KINDS[i % len(FLEET_KINDS)]
        src = f"192.168.{30 + i // 200}.{10 + i % 200}"
        dst = f"235.{2 + i // 60000}.{i // 250 % 240}.{1 + i % 250}"
        period = FLEET_PERIODS_MS[i % len(FLEET_PERIODS_MS)] * MS
        out.append(FleetStream(f"fleet-{i:04d}-{protocol}", protocol, src, dst, "ip4", ftype,
                               period, i))
    return out


def _builder(fs: FleetStream, blob: bytes, start_ns: int, year0_ns: int
             ) -> Callable[[int, int], bytes]:
    """frame(k, ts) of a fleet stream."""
    i, src, dst = fs.index, fs.src, fs.dst
    port = 50000 + i % 1000
    channel = 1 + i % 200

    def data(k: int, n: int) -> bytes:
        off = (k * 37 + i * 11) % 2048
        return blob[off:off + n]

    def rtc(t: int) -> int:
        return (t - start_ns) // 100 + 0x1_0000_0000

    if fs.protocol in ("iena-d", "iena-n"):
        ptype = fs.protocol[-1].upper()
        n_params, words = (24, 2) if ptype == "D" else (40, 1)
        key = 0x100 + i % 0xFE00

        def build(k: int, t: int) -> bytes:
            p = iena(key, ptype, k, n_params, words=words, time_us=(t - year0_ns) // 1000)
            return udp_frame(src, dst, 50000, port, p, ident=k & 0xFFFF)
    elif fs.protocol in ("inetx", "inetx-vlan"):
        vlans = [(0x8100, 100 + i % 100)] if fs.protocol == "inetx-vlan" else []
        size = 64 if vlans else 128

        def build(k: int, t: int) -> bytes:
            p = inetx(0x1000 + i, k, data(k, size), ptp_ns=t + TAI_OFFSET_NS)
            return udp_frame(src, dst, 6000 + i % 1000, 6000 + i % 1000, p, vlans=vlans)
    elif fs.protocol == "ch10-pcm":

        def build(k: int, t: int) -> bytes:
            body = struct.pack("<I", 0) + data(k, 256)
            return udp_frame(src, dst, 8010, 8010, ch10_udp(1, 0x09, channel, k, body, rtc=rtc(t)),
                             ident=k & 0xFFFF)
    elif fs.protocol == "ch10-1553":

        def build(k: int, t: int) -> bytes:
            body = struct.pack("<I", 4) + data(k, 4 * 46)
            p = ch10_udp(3, 0x19, channel, k, body, secondary_header=True,
                         time_ns=t + TAI_OFFSET_NS, rtc=rtc(t))
            return udp_frame(src, dst, 8011, 8011, p)
    else:  # pragma: no cover - FLEET_KINDS is closed
        raise ValueError(fs.protocol)
    return build


def _fleet_events(order: int, fs: FleetStream, build: Callable[[int, int], bytes],
                  rng: random.Random, start_ns: int, res: int, jitter_ns: int,
                  gap_rate: float, gap_periods: tuple[int, int]
                  ) -> Iterator[tuple[int, int, int, str, bytes, int]]:
    """(ts, order, k, stream, frame, missed) of one periodic stream, strictly increasing ts."""
    period = fs.period_ns
    t0 = start_ns + rng.randrange(period)
    last, k, missed = start_ns - res, 0, 0
    while True:
        t = t0 + k * period + round(rng.gauss(0.0, jitter_ns))
        ts = max(t - t % res, last + res)
        yield ts, order, k, fs.name, build(k, ts), missed
        last, missed = ts, 0
        k += 1
        if rng.random() < gap_rate:
            missed = rng.randint(*gap_periods)
            k += missed


def capture_events(frames: int, flows: int = 200, seed: int = 0, *,
                   start_ns: int = DEFAULT_START_NS, resolution_ns: int = 1000,
                   jitter_ns: int = 20_000, gap_rate: float = 0.002,
                   gap_periods: tuple[int, int] = (3, 8)
                   ) -> Iterator[tuple[int, str, bytes, int]]:
    """The first ``frames`` frames as ``(ts_ns, stream, frame, missed)``, in time order."""
    fleet = fleet_streams(max(0, flows - BASE_FLOWS))
    master = random.Random(f"fleet-{seed}")
    blob = master.randbytes(4096)
    year0 = dt.datetime(dt.datetime.fromtimestamp(start_ns // 10**9, dt.UTC).year, 1, 1,
                        tzinfo=dt.UTC)
    year0_ns = int(year0.timestamp()) * 10**9
    base = ((ev.ts_ns, 0, n, ev.stream, ev.frame, ev.missed) for n, ev in enumerate(
        flight_test_events(frames, seed, start_ns=start_ns, resolution_ns=resolution_ns,
                           jitter_ns=jitter_ns, gap_rate=gap_rate, gap_periods=gap_periods)))
    gens = [_fleet_events(i + 1, fs, _builder(fs, blob, start_ns, year0_ns),
                          random.Random(master.getrandbits(64)), start_ns, resolution_ns,
                          jitter_ns, gap_rate, gap_periods)
            for i, fs in enumerate(fleet)]
    for ts, _order, _k, stream, frame, missed in islice(heapq.merge(base, *gens), frames):
        yield ts, stream, frame, missed


def generate(path: str | os.PathLike[str], frames: int, flows: int = 200, seed: int = 0, *,
             pcapng: bool = False, truth: str | os.PathLike[str] | None = None,
             **opts: object) -> Truth:
    """Write the capture (atomically) and its ground truth; return the truth.

    ``opts`` go to :func:`capture_events` (resolution, jitter, gap rate and length).
    """
    t0 = time.perf_counter()
    path = os.fspath(path)
    fleet = fleet_streams(max(0, flows - BASE_FLOWS))
    info = {s.name: (s.src, s.dst, s.frame_types[0]) for s in stream_infos(seed)}
    info.update({f.name: (f.src, f.dst, f.frame_type) for f in fleet})
    counts: dict[str, int] = {}
    last_seen: dict[str, tuple[int, int]] = {}
    gaps: list[dict] = []
    span: list[int] = []  # [first_ns, last_ns]

    def records() -> Iterator[tuple[int, bytes]]:
        for number, (ts, stream, frame, missed) in enumerate(
                capture_events(frames, flows, seed, **opts), 1):  # type: ignore[arg-type]
            counts[stream] = counts.get(stream, 0) + 1
            if missed:
                prev_frame, prev_ts = last_seen[stream]
                src, dst, ftype = info[stream]
                gaps.append({"stream": stream, "frame": number, "prev_frame": prev_frame,
                             "gap_ns": ts - prev_ts, "missed": missed, "src": src, "dst": dst,
                             "frame_type": ftype})
            last_seen[stream] = (number, ts)
            if not span:
                span[:] = [ts, ts]
            span[1] = ts
            yield ts, frame

    part = f"{path}.part"
    if pcapng:
        written = write_pcapng(part, ((ts, 0, f) for ts, f in records()), [Interface()])
    else:
        written = write_pcap(part, records())
    os.replace(part, path)
    t = Truth(path, written, os.path.getsize(path), seed, flows, BASE_FLOWS + len(fleet),
              *(span or [0, 0]), gaps, counts,
              [asdict(f) for f in fleet], seconds=time.perf_counter() - t0)
    t.save(truth or truth_path(path))
    return t


def cached_capture(frames: int, flows: int, seed: int, directory: str | os.PathLike[str],
                   log: Callable[[str], object] = print) -> Truth:
    """A generated capture from ``directory``, written first if it is not there yet."""
    path = Path(directory) / f"fti-{frames}f-{flows}fl-s{seed}-v{GENERATOR_VERSION}.pcap"
    tp = truth_path(path)
    if path.exists() and os.path.exists(tp):
        return Truth.load(tp)
    log(f"generating {frames:,} frames, ~{flows} flows -> {path} ...")
    t = generate(path, frames, flows, seed)
    log(f"  {t.bytes / 1e6:,.1f} MB in {t.seconds:.1f} s")
    return t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="capture to write (.pcap, or .pcapng with --pcapng)")
    ap.add_argument("--frames", type=int, default=2_000_000)
    ap.add_argument("--flows", type=int, default=200,
                    help=f"about this many flows (at least the scenario's {BASE_FLOWS})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pcapng", action="store_true", help="write pcapng instead of pcap")
    ap.add_argument("--truth", help="ground-truth JSON (default: OUT.truth.json)")
    ap.add_argument("--gap-rate", type=float, default=0.002,
                    help="per-period probability that a gap-eligible stream starts a gap")
    a = ap.parse_args(argv)
    t = generate(a.out, a.frames, a.flows, a.seed, pcapng=a.pcapng, truth=a.truth,
                 gap_rate=a.gap_rate)
    print(f"{a.out}: {t.frames:,} frames, {t.bytes / 1e6:,.1f} MB, about {t.flows_expected} flows, "
          f"{len(t.gaps)} injected gaps, {t.seconds:.1f} s; truth in {a.truth or truth_path(a.out)}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
