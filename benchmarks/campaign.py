"""Campaign throughput: many small captures against few big ones, same total frames.

    .venv/bin/python benchmarks/campaign.py [--frames 200000] [--layouts 200x1000 4x50000]
        [--workers 2] [--serial] [--markdown]

For each layout (CAPTURESxFRAMES) a campaign of generated flight-test captures (one file
each, `streamlens_dist.synth`) is created and `run_campaign` timed twice: the first run
analyses every capture (local cluster start included, as a user sees it), the second must
find nothing to do (its time is the cost of checking identities and rebuilding the fleet
tables). Prints captures/s, packets/s and MB/s; compare layouts only within one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamlens_dist.campaign.cstore import Campaign
from streamlens_dist.campaign.manifest import CaptureEntry
from streamlens_dist.campaign.run import run_campaign
from streamlens_dist.synth import flight_test_capture


@dataclass(frozen=True)
class CampaignWorkload:
    layouts: tuple[tuple[int, int], ...] = ((200, 1000), (4, 50_000))  # (captures, frames)
    workers: int = 2
    serial: bool = False
    chunk_size: int = 4 << 20


@dataclass
class LayoutResult:
    captures: int
    frames_each: int
    bytes: int
    first_s: float
    second_s: float
    frames_seen: int
    fleet_flows: int
    extra: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.captures * self.frames_each


def run_layout(captures: int, frames_each: int, w: CampaignWorkload, tmp: Path
               ) -> LayoutResult:
    files = []
    for i in range(captures):
        p = tmp / f"cap-{captures}-{i:05d}.pcap"
        if not p.exists():
            flight_test_capture(p, frames_each, seed=1000 + i)
        files.append(p)
    store = tmp / f"campaign-{captures}x{frames_each}.zarr"
    camp = Campaign.create(store, "3", w.chunk_size)
    camp.add([CaptureEntry(f"c{i:05d}", (str(p),), f"T{i % 4}", f"F{i:05d}")
              for i, p in enumerate(files)])
    t0 = time.perf_counter()
    first = run_campaign(store, workers=w.workers, serial=w.serial)
    t1 = time.perf_counter()
    second = run_campaign(store, workers=w.workers, serial=w.serial)
    t2 = time.perf_counter()
    if first.failed or second.analysed:
        raise RuntimeError(f"unexpected: failed {first.failed}, reanalysed {second.analysed}")
    import zarr

    flows = zarr.open_group(store, mode="r")["fleet_flows"]["src"].shape[0]
    return LayoutResult(captures, frames_each, sum(p.stat().st_size for p in files),
                        t1 - t0, t2 - t1, first.frames, flows)


def run(w: CampaignWorkload, out=print, tmp: Path | None = None) -> list[LayoutResult]:  # noqa: ANN001
    with tempfile.TemporaryDirectory(prefix="streamlens-campaign-bench-") as d:
        base = tmp or Path(d)
        results = [run_layout(c, f, w, base) for c, f in w.layouts]
    return results


def table(results: list[LayoutResult], w: CampaignWorkload) -> str:
    mode = "serial" if w.serial else f"local cluster, {w.workers} workers"
    lines = [f"Campaign throughput ({mode}, chunk size {w.chunk_size >> 20} MiB, load average "
             f"{os.getloadavg()[0]:.2f}):", "",
             "| layout | frames | MB | first run s | captures/s | packets/s | MB/s "
             "| no-op rerun s | fleet flows |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.captures} x {r.frames_each:,} | {r.frames:,} | {r.bytes / 1e6:.1f} | "
            f"{r.first_s:.2f} | {r.captures / r.first_s:.1f} | {r.frames / r.first_s:,.0f} | "
            f"{r.bytes / 1e6 / r.first_s:.1f} | {r.second_s:.2f} | {r.fleet_flows} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layouts", nargs="+", default=["200x1000", "4x50000"],
                    help="CAPTURESxFRAMES per layout")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--serial", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="(the table is markdown anyway)")
    a = ap.parse_args(argv)
    layouts = tuple(tuple(int(x) for x in s.lower().split("x")) for s in a.layouts)
    w = CampaignWorkload(layouts=layouts, workers=a.workers, serial=a.serial)
    print(table(run(w), w))
    return 0


if __name__ == "__main__":
    sys.exit(main())
