"""Every benchmark in one command, as the markdown results section of benchmarks/README.md.

    python benchmarks/report.py                    # print the section
    python benchmarks/report.py --update-readme    # and replace it in benchmarks/README.md

Runs, in order: the full matrix (``run.py``) on a ``--frames`` capture; the headline run on a
``--headline-frames`` capture (one chunk size, every worker count, both baselines); the
per-worker chunk memory (``memory.py chunks``) on the matrix capture; the reducer check
(``memory.py reducer``). Each section states the command that reproduces it alone.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import campaign
import memory
import run
from common import HERE, Workload, engine_version, machine

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Plan:
    matrix: Workload = Workload()
    headline: Workload | None = Workload(frames=2_000_000, chunk_sizes=("64MiB",), serial=True)
    chunk_memory: Workload = Workload(chunk_sizes=("4MiB", "16MiB", "64MiB"))
    memory_modes: tuple[str, ...] = ("serial", "worker")
    # the flows-only case of the issue, the same with one frame-type scope per flow (what the
    # engine keeps), and all inputs held first (the serial path) at a tenth of the chunks
    reducers: tuple[memory.ReducerWorkload, ...] = (
        memory.ReducerWorkload(types_per_flow=0), memory.ReducerWorkload(types_per_flow=1),
        memory.ReducerWorkload(chunks=100, inputs=("streamed", "materialized")))
    # many small captures against few big ones (issue 7); None: skip
    campaigns: campaign.CampaignWorkload | None = campaign.CampaignWorkload()


@dataclass
class Built:
    text: str
    matrix: run.Report
    headline: run.Report | None
    chunk_memory: memory.MemoryReport
    reducer: list[memory.MemoryReport] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        out = self.matrix.errors + self.chunk_memory.errors + [e for r in self.reducer for e in r.errors]
        return out + (self.headline.errors if self.headline else [])


def _run_cmd(w: Workload) -> str:
    cmd = f".venv/bin/python benchmarks/run.py --frames {w.frames} --flows {w.flows}"
    cmd += f" --workers {' '.join(map(str, w.workers))}"
    cmd += f" --chunk-sizes {' '.join(w.chunk_sizes)}"
    if not w.serial:
        cmd += " --no-serial"
    return cmd


def build(plan: Plan, log: Callable[[str], object] | None = None) -> Built:
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    parts: list[str] = [f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; engine: "
                        f"{engine_version()}.", ""]
    sink: list[str] = []

    log(f"matrix: {plan.matrix.frames:,} frames")
    m = run.run(plan.matrix, out=sink.append, markdown=True, log=log)
    parts += [f"### Throughput, {plan.matrix.frames:,} frames", "", f"    {_run_cmd(plan.matrix)}",
              "", sink.pop(), ""]
    h = None
    if plan.headline is not None:
        log(f"headline: {plan.headline.frames:,} frames")
        h = run.run(plan.headline, out=sink.append, markdown=True, log=log)
        parts += [f"### Headline, {plan.headline.frames:,} frames", "",
                  f"    {_run_cmd(plan.headline)}", "", sink.pop(), ""]
    log("chunk memory")
    mem = memory.chunk_memory(plan.chunk_memory, plan.memory_modes, out=sink.append, markdown=True,
                              log=log)
    sink.pop()
    parts += ["### Peak memory per worker relative to the chunk size", "",
              f"    .venv/bin/python benchmarks/memory.py chunks --frames {plan.chunk_memory.frames} "
              f"--flows {plan.chunk_memory.flows} --chunk-sizes {' '.join(plan.chunk_memory.chunk_sizes)} "
              f"--modes {' '.join(plan.memory_modes)}", "", *mem.lines[2:], ""]
    reds = []
    parts += ["### Reducer: merging flows x chunks partials (goal: < 2 GiB)", ""]
    for rw in plan.reducers:
        log("reducer")
        r = memory.reducer(rw, out=sink.append, markdown=True, log=log)
        sink.pop()
        reds.append(r)
        parts += [f"    .venv/bin/python benchmarks/memory.py reducer --flows {rw.flows} "
                  f"--chunks {rw.chunks} --types-per-flow {rw.types_per_flow} "
                  f"--inputs {' '.join(rw.inputs)}", "", *r.lines, ""]
    if plan.campaigns is not None:
        log("campaigns")
        cw = plan.campaigns
        layouts = " ".join(f"{c}x{f}" for c, f in cw.layouts)
        parts += ["### Campaigns: many small captures against few big ones", "",
                  f"    .venv/bin/python benchmarks/campaign.py --layouts {layouts} "
                  f"--workers {cw.workers}", "", campaign.table(campaign.run(cw), cw), ""]
    parts.append(f"(whole report: {time.perf_counter() - t0:,.0f} s)")
    return Built("\n".join(parts), m, h, mem, reds)


def update_readme(text: str, readme: Path = HERE / "README.md") -> None:
    src = readme.read_text()
    if BEGIN not in src or END not in src:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} section to replace")
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END),
                 lambda _: f"{BEGIN}\n{text}\n{END}", src, flags=re.S)
    readme.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=Plan.matrix.frames)
    ap.add_argument("--headline-frames", type=int, default=2_000_000, help="0: skip")
    ap.add_argument("--workers", type=int, nargs="+", default=list(Workload.workers))
    ap.add_argument("--reducer-flows", type=int, default=memory.ReducerWorkload.flows)
    ap.add_argument("--reducer-chunks", type=int, default=memory.ReducerWorkload.chunks)
    ap.add_argument("--update-readme", action="store_true")
    a = ap.parse_args(argv)
    w = tuple(a.workers)
    plan = Plan(
        matrix=Workload(frames=a.frames, workers=w),
        headline=(Workload(frames=a.headline_frames, chunk_sizes=("64MiB",), workers=w)
                  if a.headline_frames else None),
        chunk_memory=Workload(frames=a.frames),
        reducers=(memory.ReducerWorkload(a.reducer_flows, a.reducer_chunks, types_per_flow=0),
                  memory.ReducerWorkload(a.reducer_flows, a.reducer_chunks, types_per_flow=1),
                  memory.ReducerWorkload(a.reducer_flows, max(1, a.reducer_chunks // 10),
                                         inputs=("streamed", "materialized"))),
    )
    b = build(plan)
    print(b.text)
    if a.update_readme:
        update_readme(b.text)
    return 1 if b.errors else 0


if __name__ == "__main__":
    sys.exit(main())
