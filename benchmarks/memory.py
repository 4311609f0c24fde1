"""Memory: per-worker peak relative to the chunk size, and the reducer at many flows x chunks.

    python benchmarks/memory.py chunks [--frames 500000 --flows 200 | --capture FILE]
                                       [--chunk-sizes 4MiB 16MiB 64MiB] [--modes serial worker]
    python benchmarks/memory.py reducer [--flows 10000] [--chunks 1000] [--types-per-flow 1]
                                        [--inputs streamed materialized] [--limit-gib 12]

``chunks``: for each chunk size, a fresh interpreter imports the engine, notes its RSS, runs
the engine's chunk processing on the capture and reports (peak RSS - RSS after imports) as
a multiple of the chunk size. Mode ``serial`` is ``analyze(serial=True)`` (one chunk at a time
in that process); mode ``worker`` samples the one worker process of a local cluster that
``analyze(client=...)`` runs on, from a baseline taken after the worker imported the engine.
Both RSS and anonymous RSS are given: the splitter maps the capture to scan record headers,
and in serial mode those clean page-cache pages count in RSS.

``reducer``: builds synthetic chunk partials (``flows`` flows, each with ``types-per-flow``
frame-type scopes, in every one of ``chunks`` chunks) and merges them in chunk order with the
engine's merge (``streamlens_dist.partial``), in a fresh interpreter, reporting time and peak
RSS against the 2 GiB goal. ``materialized`` builds every input first and calls
``combine_all`` (what the serial path does); ``streamed`` builds inputs one at a time and
folds them with the client's fold (``streamlens_dist.reduction``: the same ordered pairwise
tree, plus each chunk's Before, held until pass 2), so only the reduction's own state is
resident. A run whose RSS passes ``--limit-gib`` is stopped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common import (
    Measured,
    MiB,
    TaskFailed,
    Workload,
    cache_dir,
    machine,
    mib,
    parse_size,
    run_task,
    table,
)
from generate import cached_capture

GOAL_BYTES = 2 << 30


@dataclass(frozen=True)
class ReducerWorkload:
    flows: int = 10_000
    chunks: int = 1_000
    types_per_flow: int = 1  # frame-type scopes per flow (the engine keeps both levels)
    iats_per_chunk: int = 2  # IATs of each scope inside each chunk
    inputs: tuple[str, ...] = ("streamed",)
    limit_gib: float = 12.0


@dataclass
class MemoryReport:
    lines: list[str] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def chunk_memory(w: Workload, modes: tuple[str, ...] = ("serial", "worker"),
                 out: Callable[[str], object] = print, markdown: bool = False,
                 log: Callable[[str], object] | None = None) -> MemoryReport:
    """Peak RSS of the chunk processing per chunk size, relative to the chunk size."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    capture = w.capture or cached_capture(w.frames, w.flows, w.seed, cache_dir(w), log).path
    rep = MemoryReport()
    rows = []
    for mode in modes:
        for chunk in w.chunk_sizes:
            log(f"  chunk memory, {mode}, chunk {chunk} ...")
            try:
                m = run_task("chunk_memory", {"capture": capture, "chunk_size": chunk,
                                              "mode": mode})
            except TaskFailed as exc:
                rep.errors.append(f"chunk memory {mode} {chunk}: {exc}")
                continue
            r = m.result
            size = parse_size(chunk)
            d_rss, d_anon = r["peak_rss"] - r["base_rss"], r["peak_anon"] - r["base_anon"]
            rep.results.append({"mode": mode, "chunk": chunk, "chunk_bytes": size, **r,
                                "rss_over_chunk": d_rss / size, "anon_over_chunk": d_anon / size})
            rows.append([mode, chunk, str(r.get("chunks", "-")), mib(r["base_rss"]),
                         mib(r["peak_rss"]), f"{d_rss / MiB:,.1f}", f"{d_rss / size:.2f}x",
                         f"{d_anon / MiB:,.1f}", f"{d_anon / size:.2f}x"])
    rep.lines = [f"capture: {capture}; {machine()}", "",
                 table(["mode", "chunk", "chunks", "RSS after imports MiB", "peak RSS MiB",
                        "peak - base MiB", "x chunk", "anon peak - base MiB", "anon x chunk"],
                       rows, markdown)]
    rep.lines += [f"FAILED: {e}" for e in rep.errors]
    out("\n".join(rep.lines))
    return rep


def reducer(w: ReducerWorkload, out: Callable[[str], object] = print, markdown: bool = False,
            log: Callable[[str], object] | None = None) -> MemoryReport:
    """Merge synthetic partials for w.flows x w.chunks; time and peak RSS per input mode."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    rep = MemoryReport()
    rows = []
    limit = int(w.limit_gib * (1 << 30))
    for inputs in w.inputs:
        log(f"  reducer, {w.flows:,} flows x {w.chunks:,} chunks, {inputs} inputs ...")
        try:
            m: Measured = run_task("reducer", {"flows": w.flows, "chunks": w.chunks,
                                               "types_per_flow": w.types_per_flow,
                                               "iats_per_chunk": w.iats_per_chunk,
                                               "inputs": inputs}, limit_bytes=limit)
        except TaskFailed as exc:
            rep.errors.append(f"reducer {inputs}: {exc}")
            continue
        r = m.result
        scopes = w.flows * (1 + w.types_per_flow)
        if m.exceeded:
            rep.results.append({"inputs": inputs, "exceeded_bytes": limit})
            rows.append([inputs, f"{w.flows:,}", f"{w.chunks:,}", f"{scopes:,}", "-", "-", "-",
                         "-", f"> {mib(limit)}", "-", "no (stopped)"])
            continue
        peak = max(r["peak_rss_self"], m.peak_rss)
        rep.results.append({"inputs": inputs, **r, "peak_rss": peak, "goal_met": peak < GOAL_BYTES,
                            **{k: getattr(w, k) for k in ("flows", "chunks", "types_per_flow",
                                                          "iats_per_chunk")}})
        rows.append([inputs, f"{w.flows:,}", f"{w.chunks:,}", f"{scopes:,}",
                     "-" if r.get("before_bytes") is None else mib(r["before_bytes"]),
                     f"{r['build_s']:.1f}", f"{r['merge_s']:.1f}",
                     "-" if r.get("rss_inputs") is None else mib(r["rss_inputs"]),
                     mib(peak), mib(r["rss_result"]), "yes" if peak < GOAL_BYTES else "no"])
    rep.lines = [table(["inputs", "flows", "chunks", "scopes", "Befores held MiB",
                        "build s", "merge s", "RSS inputs MiB", "peak RSS MiB",
                        "RSS after merge MiB", "< 2 GiB"], rows, markdown)]
    rep.lines += [f"FAILED: {e}" for e in rep.errors]
    out("\n".join(rep.lines))
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    d, r = Workload(), ReducerWorkload()
    c = sub.add_parser("chunks", help="per-worker peak RSS relative to the chunk size")
    c.add_argument("--frames", type=int, default=d.frames)
    c.add_argument("--flows", type=int, default=d.flows)
    c.add_argument("--seed", type=int, default=d.seed)
    c.add_argument("--capture")
    c.add_argument("--chunk-sizes", nargs="+", default=list(d.chunk_sizes))
    c.add_argument("--modes", nargs="+", default=["serial", "worker"],
                   choices=["serial", "worker"])
    c.add_argument("--cache-dir")
    c.add_argument("--markdown", action="store_true")
    g = sub.add_parser("reducer", help="merge synthetic partials: flows x chunks")
    g.add_argument("--flows", type=int, default=r.flows)
    g.add_argument("--chunks", type=int, default=r.chunks)
    g.add_argument("--types-per-flow", type=int, default=r.types_per_flow)
    g.add_argument("--iats-per-chunk", type=int, default=r.iats_per_chunk)
    g.add_argument("--inputs", nargs="+", default=list(r.inputs),
                   choices=["streamed", "materialized"])
    g.add_argument("--limit-gib", type=float, default=r.limit_gib,
                   help="stop a run whose RSS passes this")
    g.add_argument("--markdown", action="store_true")
    a = ap.parse_args(argv)
    if a.what == "chunks":
        rep = chunk_memory(Workload(frames=a.frames, flows=a.flows, seed=a.seed,
                                    capture=a.capture, chunk_sizes=tuple(a.chunk_sizes),
                                    cache_dir=a.cache_dir), tuple(a.modes), markdown=a.markdown)
    else:
        rep = reducer(ReducerWorkload(a.flows, a.chunks, a.types_per_flow, a.iats_per_chunk,
                                      tuple(a.inputs), a.limit_gib), markdown=a.markdown)
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
