"""Scale: packets/s as the number of flows grows, and the client's CPU per chunk as the number
of chunks grows (issue 20). Every run is a fresh interpreter (tasks.py `engine`); the figures
of one invocation are comparable with each other, as ratios, never across machines or days.

    .venv/bin/python benchmarks/scale.py flows [--frames 400000] [--flows 200 2000 20000 200000]
        [--shapes periodic poisson bursty scan cooked ptp-random] [--chunk-size 1MiB]
        [--timeout 900]
        [--limit 4GiB] [--markdown]
    .venv/bin/python benchmarks/scale.py shapes [--frames 400000] [--flows 200]
        [--shapes cooked cooked2 rawip null vlan qinq ptp-random] [--chunk-size 4MiB]
        [--repeat 3] [--markdown]
    .venv/bin/python benchmarks/scale.py rereads [--frames 400000] [--flows 200 2000 20000]
        [--shapes periodic poisson bursty] [--chunk-size 1MiB] [--markdown]
    .venv/bin/python benchmarks/scale.py chunks [--frames 1000000] [--flows 200]
        [--chunk-sizes 64MiB 16MiB 4MiB 1MiB 512KiB] [--workers 2] [--markdown]

`flows`: serial runs (one process: the whole work is client CPU) over captures of the same
frame count and 200 ... N flows, in six shapes of traffic, each as packets/s and as a ratio to
the 200-flow run of its shape, with the time of the merge and outlier phases and the peak RSS
of the process tree. A run that passes --timeout or --limit is reported as such.
`chunks`: one capture analysed on a local cluster at chunk sizes that give 8 ... 1,000 chunks:
the client's CPU (client, scheduler, store writer: Summary.phases["client_cpu"]) per chunk,
and how many chunks per second one client could feed at that cost.

The captures (`scale_capture`) are written with numpy, a few seconds for millions of frames:
one Ethernet/IPv4/UDP frame template, a flow per source address, timestamps by shape:
- periodic: flows send in turn (each flow periodic, 5% jitter); 0.1% of frames are dropped,
  so each drop shows as one long IAT in its flow (the outliers of flight-test streams);
- poisson: each frame from a random flow, exponential gaps between frames;
- bursty: bursts of 64 frames 1 us apart from random flows, exponential gaps between bursts;
- scan: one source sweeping the destination addresses in turn (an address scan: each
  (src, dst) pair sends frames/flows times);
- cooked: poisson's traffic as a Linux cooked capture (SLL, link type 113);
- ptp-random: poisson's traffic with random 32-byte payloads to UDP port 319 (PTP event);
- cooked2, rawip, null, vlan, qinq: poisson's traffic as SLL2 (276), raw IP (101), NULL (0,
  little-endian AF_INET), behind an 802.1Q tag, behind 802.1ad + 802.1Q tags.
`shapes`: serial packets/s of 100 % captures of each shape (default 200 flows) as a ratio to
Ethernet/IPv4/UDP (poisson) in the same run, best of --repeat interleaved runs, with the
frames that took the per-frame path (issue 21).
`rereads`: pass 1's time per chunk beside what re-reading a chunk costs in pass 2 when pass 1
keeps no IAT (every chunk with a candidate scope re-read), and how many are re-read as it is.
Cached by their parameters in $STREAMLENS_BENCH_CACHE (default $TMPDIR/streamlens-bench).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from common import (
    TaskFailed,
    Workload,
    cache_dir,
    engine_version,
    machine,
    mib,
    parse_size,
    run_task,
    table,
)

SHAPES = ("periodic", "poisson", "bursty", "scan", "cooked", "ptp-random")
# poisson's traffic behind other link layers (the `shapes` table, issue 21)
LINK_SHAPES = ("cooked2", "rawip", "null", "vlan", "qinq")
SLL = 113  # Linux cooked capture
START_US = 1_700_000_000 * 10**6


def _template() -> np.ndarray:
    from streamlens_dist.synth import udp_frame

    return np.frombuffer(udp_frame("10.0.0.1", "239.1.0.1", 5000, 6000, bytes(32)), np.uint8)


def scale_capture(path: Path, frames: int, flows: int, shape: str, seed: int = 1) -> None:
    """A pcap of `frames` frames over `flows` flows in `shape` (module docstring)."""
    rng = np.random.default_rng(seed)
    tmpl = _template()
    if shape == "periodic":
        flow = np.arange(frames, dtype=np.int64) % flows
        period_us = max(1, 1000 // max(1, flows // 1000 + 1))  # between frames of the capture
        t = np.arange(frames, dtype=np.int64) * period_us
        t += rng.integers(0, max(1, period_us // 20) + 1, frames)  # 5% jitter
        keep = rng.random(frames) >= 0.001
        flow, t = flow[keep], t[keep]
    elif shape in ("poisson", "cooked", "ptp-random", *LINK_SHAPES):
        flow = rng.integers(0, flows, frames)
        t = np.cumsum(rng.exponential(100.0, frames).astype(np.int64) + 1)
    elif shape == "bursty":
        flow = rng.integers(0, flows, frames)
        burst = np.arange(frames) // 64
        idle = np.cumsum(rng.exponential(5000.0, burst[-1] + 1).astype(np.int64))
        t = idle[burst] + np.arange(frames) % 64
    elif shape == "scan":
        flow = np.arange(frames, dtype=np.int64) % flows
        t = np.arange(frames, dtype=np.int64)
    else:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}")
    n = len(flow)
    link, linktype = 14, 1  # Ethernet
    if shape == "cooked":  # the IP packet behind a 16-byte SLL header (outgoing, ARPHRD_ETHER)
        sll = np.zeros(16, np.uint8)
        sll[1], sll[3], sll[5], sll[6:12], sll[14] = 4, 1, 6, tmpl[6:12], 8
        tmpl, link, linktype = np.concatenate([sll, tmpl[14:]]), 16, SLL
    elif shape in LINK_SHAPES:
        tmpl, link, linktype = _relinked(tmpl, shape)
    if shape == "ptp-random":
        tmpl = tmpl.copy()
        tmpl[14 + 22:14 + 24] = (319 >> 8, 319 & 0xFF)  # UDP destination port
        tmpl[14 + 26:14 + 28] = 0  # no UDP checksum
    rec = np.zeros((n, 16 + len(tmpl)), np.uint8)
    rec[:, 16:] = tmpl
    if shape == "ptp-random":
        rec[:, 16 + 14 + 28:] = rng.integers(0, 256, (n, len(tmpl) - 42), dtype=np.uint8)
    # the flow's address: the source (a fleet of senders), or for a scan the destination
    addr = (10 << 24) + 1 + flow if shape != "scan" else (11 << 24) + flow
    at = 16 + link + (16 if shape == "scan" else 12)  # IPv4 dst or src, after the link header
    for k in range(4):
        rec[:, at + k] = (addr >> (24 - 8 * k)) & 0xFF
    ts_us = START_US + t
    hdr = rec[:, :16].view("<u4")
    hdr[:, 0], hdr[:, 1] = ts_us // 10**6, ts_us % 10**6
    hdr[:, 2] = hdr[:, 3] = len(tmpl)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        f.write(np.array([0xA1B2C3D4, 0x00040002, 0, 0, 65535, linktype], "<u4").tobytes()[:24])
        f.write(rec.tobytes())
    tmp.replace(path)


def _relinked(tmpl: np.ndarray, shape: str) -> tuple[np.ndarray, int, int]:
    """An Ethernet/IPv4 frame template behind another link layer: (template, bytes before
    the IP header, pcap link type)."""
    ip = tmpl[14:]
    if shape == "cooked2":  # SLL2: protocol, reserved, ifindex, ARPHRD_ETHER, outgoing, MAC
        head = np.array([8, 0, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, *tmpl[6:12], 0, 0], np.uint8)
        return np.concatenate([head, ip]), 20, 276
    if shape == "rawip":
        return ip.copy(), 0, 101
    if shape == "null":  # AF_INET in the capturing host's (little-endian) order
        return np.concatenate([np.array([2, 0, 0, 0], np.uint8), ip]), 4, 0
    tags = [0x81, 0x00, 0x00, 0x05] if shape == "vlan" else \
        [0x88, 0xA8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x05]  # 802.1ad outer, 802.1Q inner
    head = np.concatenate([tmpl[:12], np.array(tags, np.uint8), tmpl[12:14]])
    return np.concatenate([head, ip]), len(head), 1


def capture(frames: int, flows: int, shape: str, where: Path) -> Path:
    path = where / f"scale-{shape}-{frames}-{flows}.pcap"
    if not path.exists():
        scale_capture(path, frames, flows, shape)
    return path


def flows_table(frames: int, flow_counts: list[int], shapes: list[str], chunk_size: str,
                timeout: float, limit: int, where: Path, log=print) -> list[list[str]]:  # noqa: ANN001
    rows = []
    for shape in shapes:
        base = None
        for n in flow_counts:
            path = capture(frames, n, shape, where)
            try:
                m = run_task("engine", {"capture": str(path), "chunk_size": chunk_size,
                                        "serial": True}, limit_bytes=limit, timeout=timeout)
            except TaskFailed as exc:
                log(f"{shape} {n} flows: {exc}")
                rows.append([shape, f"{n:,}", "-", f"> {timeout:.0f} s", "", "", "", ""])
                continue
            if m.exceeded:
                rows.append([shape, f"{n:,}", "-", f"> {limit >> 30} GiB", "", "", "",
                             mib(m.peak_rss)])
                continue
            r = m.result
            rate = r["frames"] / r["seconds"]
            base = base or (rate if n == flow_counts[0] else None)
            ph = r["phases"]
            rows.append([shape, f"{r['flows']:,}", f"{r['chunks']:,}", f"{rate:,.0f}",
                         f"{rate / base:.2f}" if base else "-",
                         f"{ph.get('merge', 0):.2f}", f"{ph.get('outliers', 0):.2f}",
                         mib(m.peak_rss)])
            log(" | ".join(rows[-1]))
    return rows


FLOW_HEADERS = ["shape", "flows", "chunks", "packets/s", "x 200-flow rate", "merge s",
                "outliers s", "peak RSS MiB"]


def chunks_table(frames: int, flows: int, sizes: list[str], workers: int, where: Path,
                 log=print) -> list[list[str]]:  # noqa: ANN001
    path = capture(frames, flows, "periodic", where)
    rows = []
    for size in sizes:
        m = run_task("engine", {"capture": str(path), "chunk_size": size, "workers": workers})
        r = m.result
        cpu, chunks = float(r["phases"].get("client_cpu", math.nan)), int(r["chunks"])
        rows.append([size, f"{chunks:,}", f"{r['seconds']:.2f}", f"{cpu:.2f}",
                     f"{1000 * cpu / chunks:.2f}", f"{chunks / cpu:,.0f}"])
        log(" | ".join(rows[-1]))
    return rows


CHUNK_HEADERS = ["chunk size", "chunks", "wall s", "client CPU s", "client CPU ms/chunk",
                 "chunks/s one client feeds"]


def shapes_table(frames: int, flows: int, shapes: list[str], chunk_size: str, repeat: int,
                 where: Path, log=print) -> list[list[str]]:  # noqa: ANN001
    """Serial packets/s of captures made 100 % of each shape, as a ratio to Ethernet/IPv4/UDP
    (poisson) measured in the same run, interleaved so that the machine's drift hits both; the
    best of `repeat` runs of each."""
    best: dict[str, tuple[float, dict]] = {}
    for _ in range(repeat):
        for shape in ("poisson", *[x for x in shapes if x != "poisson"]):
            m = run_task("engine", {"capture": str(capture(frames, flows, shape, where)),
                                    "chunk_size": chunk_size, "serial": True})
            r = m.result
            rate = r["frames"] / r["seconds"]
            if shape not in best or rate > best[shape][0]:
                best[shape] = (rate, r)
    rows = []
    base = best["poisson"][0]
    for shape, (rate, r) in best.items():
        worker = r["phases"].get("worker_seconds", {})
        slow, reread = worker.get("slow_path_frames"), worker.get("chunks_reread")
        rows.append([shape, f"{rate:,.0f}", f"{rate / base:.2f}", f"{base / rate:.2f}",
                     "-" if slow is None else f"{int(slow):,}",
                     "-" if reread is None else f"{int(reread)} of {r['chunks']}",
                     f"{r['phases'].get('outliers', 0):.2f}"])
        log(" | ".join(rows[-1]))
    return rows


SHAPE_HEADERS = ["shape", "packets/s", "x Ethernet rate", "per-frame cost x Ethernet",
                 "frames per frame", "chunks re-read", "outliers s"]


def reread_table(frames: int, flows: list[int], shapes: list[str], chunk_size: str,
                 where: Path, log=print) -> list[list[str]]:  # noqa: ANN001
    """What a re-read costs against pass 1: each capture analysed serially as it is, and with
    pass 1 keeping no IAT (every chunk with a candidate scope is re-read)."""
    rows = []
    for shape in shapes:
        for n in flows:
            path = str(capture(frames, n, shape, where))
            got = []
            for force in (False, True):
                r = run_task("engine", {"capture": path, "chunk_size": chunk_size,
                                        "serial": True, "force_reread": force}).result
                w = r["phases"].get("worker_seconds", {})
                got.append((r["phases"]["dissect"] / r["chunks"], int(w["chunks_reread"]),
                            w["outlier_pass"], r["chunks"]))
            (pass1, kept, base_s, chunks), (_, forced, forced_s, _) = got
            if forced == kept:  # no chunk holds a candidate even so: nothing to price
                rows.append([shape, f"{n:,}", f"{chunks:,}", f"{kept} of {chunks}",
                             f"{1000 * pass1:.1f}", "-", "-"])
                continue
            # pass 2's added time over the chunks that forcing made re-read
            per = max(forced_s - base_s, 0.0) / (forced - kept)
            rows.append([shape, f"{n:,}", f"{chunks:,}", f"{kept} of {chunks}",
                         f"{1000 * pass1:.1f}", f"{1000 * per:.1f} ({forced - kept})",
                         f"{per / pass1:.2f}"])
            log(" | ".join(rows[-1]))
    return rows


REREAD_HEADERS = ["shape", "flows", "chunks", "re-read as it is", "pass 1 ms/chunk",
                  "re-read ms/chunk (chunks)", "re-read x pass 1"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    f = sub.add_parser("flows", help="packets/s as the number of flows grows (serial)")
    f.add_argument("--frames", type=int, default=400_000)
    f.add_argument("--flows", type=int, nargs="+", default=[200, 2000, 20_000, 200_000])
    f.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    f.add_argument("--chunk-size", default="1MiB")
    f.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    f.add_argument("--limit", default="4GiB", help="peak RSS of a run's process tree")
    c = sub.add_parser("chunks", help="client CPU per chunk as the chunk count grows")
    c.add_argument("--frames", type=int, default=1_000_000)
    c.add_argument("--flows", type=int, default=200)
    c.add_argument("--chunk-sizes", nargs="+", default=["64MiB", "16MiB", "4MiB", "1MiB",
                                                         "512KiB"])
    c.add_argument("--workers", type=int, default=2)
    sh = sub.add_parser("shapes", help="packets/s per capture shape against Ethernet (serial)")
    sh.add_argument("--frames", type=int, default=400_000)
    sh.add_argument("--flows", type=int, default=200)
    sh.add_argument("--shapes", nargs="+", default=["cooked", *LINK_SHAPES, "ptp-random"],
                    choices=[*SHAPES, *LINK_SHAPES])
    sh.add_argument("--chunk-size", default="4MiB")
    sh.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    rr = sub.add_parser("rereads", help="what a re-read costs against pass 1 (serial)")
    rr.add_argument("--frames", type=int, default=400_000)
    rr.add_argument("--flows", type=int, nargs="+", default=[200, 2000, 20_000])
    rr.add_argument("--shapes", nargs="+", default=["periodic", "poisson", "bursty"],
                    choices=[*SHAPES, *LINK_SHAPES])
    rr.add_argument("--chunk-size", default="1MiB")
    for p in (f, c, sh, rr):
        p.add_argument("--cache-dir", help="where generated captures are kept")
        p.add_argument("--markdown", action="store_true")
    a = ap.parse_args(argv)
    where = cache_dir(Workload(cache_dir=a.cache_dir))
    print(machine(), file=sys.stderr)
    print(engine_version(), file=sys.stderr)
    if a.what == "flows":
        rows = flows_table(a.frames, a.flows, a.shapes, a.chunk_size, a.timeout,
                           parse_size(a.limit), where, log=lambda s: print(s, file=sys.stderr))
        print(table(FLOW_HEADERS, rows, a.markdown))
    elif a.what == "rereads":
        rows = reread_table(a.frames, a.flows, a.shapes, a.chunk_size, where,
                            log=lambda s: print(s, file=sys.stderr))
        print(table(REREAD_HEADERS, rows, a.markdown))
    elif a.what == "shapes":
        rows = shapes_table(a.frames, a.flows, a.shapes, a.chunk_size, a.repeat, where,
                            log=lambda s: print(s, file=sys.stderr))
        print(table(SHAPE_HEADERS, rows, a.markdown))
    else:
        rows = chunks_table(a.frames, a.flows, a.chunk_sizes, a.workers, where,
                            log=lambda s: print(s, file=sys.stderr))
        print(table(CHUNK_HEADERS, rows, a.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
