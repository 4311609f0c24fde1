"""Throughput of the engine against a dpkt loop on the same generated capture, as ratios.

Run: python benchmarks/throughput.py --frames 200000 [--workers 1 2] [--chunk-size 8MiB]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass

import dpkt

import streamlens_dist
from streamlens_dist.capture.split import plan_capture
from streamlens_dist.chunktask import analyze_chunk
from streamlens_dist.settings import Settings
from streamlens_dist.synth import flight_test_capture


@dataclass(frozen=True)
class Workload:
    frames: int = 200_000
    chunk_size: str = "8MiB"
    workers: tuple[int, ...] = (1, 2)


def dpkt_loop(path: str) -> int:
    """The baseline: per-packet dpkt decode, flows keyed by address bytes, float timestamps."""
    last: dict = {}
    n = 0
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            key = (ip.src, ip.dst) if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) else (eth.src, eth.dst)
            prev = last.get(key)
            last[key] = ts
            if prev is not None:
                _ = ts - prev
            n += 1
    return n


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def run(w: Workload, out=print) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cap = os.path.join(tmp, "bench.pcap")
        flight_test_capture(cap, w.frames, seed=1)
        mb = os.path.getsize(cap) / 1e6
        rates: dict[str, float] = {}
        dt, n = timed(dpkt_loop, cap)
        rates["dpkt loop"] = n / dt
        plan = plan_capture([cap], Settings(chunk_size=w.chunk_size).chunk_size)
        settings = Settings(chunk_size=w.chunk_size)
        dt, _ = timed(lambda: [analyze_chunk(c, settings) for c in plan.chunks])
        rates["engine pass 1, serial"] = w.frames / dt
        dt, _ = timed(streamlens_dist.analyze, cap, os.path.join(tmp, "s.zarr"),
                      chunk_size=w.chunk_size, serial=True)
        rates["analyze --serial"] = w.frames / dt
        for k in w.workers:
            dt, _ = timed(streamlens_dist.analyze, cap, os.path.join(tmp, f"w{k}.zarr"),
                          chunk_size=w.chunk_size, workers=k)
            rates[f"analyze, {k} worker(s), cluster start included"] = w.frames / dt
        base = rates["dpkt loop"]
        out(f"{w.frames} frames, {mb:.1f} MB, chunk size {w.chunk_size}, {len(plan.chunks)} chunks")
        for name, r in rates.items():
            out(f"  {name:<48} {r:>12,.0f} packets/s {r * mb / w.frames:>8.1f} MB/s "
                f"{r / base:>6.2f}x dpkt loop")
        return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=Workload.frames)
    ap.add_argument("--chunk-size", default=Workload.chunk_size)
    ap.add_argument("--workers", type=int, nargs="+", default=list(Workload.workers))
    a = ap.parse_args()
    run(Workload(a.frames, a.chunk_size, tuple(a.workers)))


if __name__ == "__main__":
    main()
