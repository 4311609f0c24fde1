"""Shared pieces of the benchmarks: the Workload, size parsing, and measured subprocesses.

Every timed or memory-measured piece of work runs in a fresh Python subprocess
(``benchmarks/tasks.py``) so that one measurement cannot warm or bloat another. The child
times its own work (after its imports) and prints one ``RESULT {json}`` line; the parent
samples the resident memory of the child's whole process tree (the child, a tshark it pipes
from, Dask nannies and workers) every few milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
TASKS = HERE / "tasks.py"
MiB = 1 << 20


@dataclass(frozen=True)
class Workload:
    """What a benchmark run measures; every benchmark takes one (the smoke test uses tiny ones).

    ``capture`` replaces the generated capture by an existing file (pcap or pcapng);
    ``frames``/``flows``/``seed`` describe the generated one (see ``generate.py``).
    """

    frames: int = 500_000
    flows: int = 200
    seed: int = 1
    workers: tuple[int, ...] = (1, 2)
    chunk_sizes: tuple[str, ...] = ("4MiB", "16MiB", "64MiB")
    capture: str | None = None
    baselines: tuple[str, ...] = ("dpkt", "tshark")
    serial: bool = True  # also time analyze(serial=True): the in-process, per-worker rate
    repeat: int = 1  # best of N (time); memory is the largest peak seen
    cache_dir: str | None = None  # where generated captures are kept between runs


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": MiB, "mib": MiB,
          "g": 1 << 30, "gib": 1 << 30, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


def parse_size(text: str | int) -> int:
    """'64MiB' -> 67108864 (binary K/M/G and KiB/MiB/GiB, decimal KB/MB/GB, plain bytes)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 4MiB, 512KiB, 1GiB or bytes)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def cache_dir(w: Workload) -> Path:
    d = Path(w.cache_dir or os.environ.get("STREAMLENS_BENCH_CACHE")
             or Path(tempfile.gettempdir()) / "streamlens-bench")
    d.mkdir(parents=True, exist_ok=True)
    return d


# --------------------------------------------------------------------------- memory sampling


def _anon_kib(pid: int) -> int | None:
    """RssAnon of a process (Linux), i.e. resident memory that is not mapped file pages."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class TreeSampler:
    """Samples the summed RSS (and anonymous RSS) of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.02, limit_bytes: int | None = None) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.limit = limit_bytes
        self.peak_rss = 0
        self.peak_anon = 0
        self.peak_proc = 0  # largest single process
        self.exceeded = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        rss = anon = 0
        for p in procs:
            try:
                r = p.memory_info().rss
            except psutil.Error:
                continue
            a = _anon_kib(p.pid)
            rss += r
            anon += r if a is None else a * 1024
            self.peak_proc = max(self.peak_proc, r)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_anon = max(self.peak_anon, anon)
        if self.limit and rss > self.limit and not self.exceeded:
            self.exceeded = True
            for p in reversed(procs):
                with contextlib.suppress(psutil.Error):
                    p.kill()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


@dataclass
class Measured:
    """One task run in a fresh subprocess: what it reported plus the sampled memory."""

    task: str
    result: dict[str, Any]
    peak_rss: int  # bytes, summed over the process tree
    peak_anon: int
    peak_proc: int
    exceeded: bool = False
    runs: list[float] = field(default_factory=list)
    work: list[float] = field(default_factory=list)  # work_seconds of each run

    @property
    def seconds(self) -> float:
        return float(self.result["seconds"])


class TaskFailed(RuntimeError):
    pass


def run_task(task: str, args: dict[str, Any], *, limit_bytes: int | None = None,
             timeout: float | None = None, env: dict[str, str] | None = None) -> Measured:
    """Run ``tasks.py TASK ARGS`` in a fresh interpreter while sampling its tree's memory."""
    cmd = [sys.executable, str(TASKS), task, json.dumps(args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    with TreeSampler(proc.pid, limit_bytes=limit_bytes) as sampler:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in psutil.Process(proc.pid).children(recursive=True):
                p.kill()
            proc.kill()
            out, err = proc.communicate()
            raise TaskFailed(f"{task}: no result after {timeout} s") from None
    if sampler.exceeded:
        return Measured(task, {"seconds": float("nan")}, sampler.peak_rss, sampler.peak_anon,
                        sampler.peak_proc, exceeded=True)
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise TaskFailed(f"{task} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(lines[-1][len("RESULT "):])
    return Measured(task, result, sampler.peak_rss, sampler.peak_anon, sampler.peak_proc)


def best_of(repeat: int, task: str, args: dict[str, Any], **kw: Any) -> Measured:
    """Best (shortest) of ``repeat`` runs; memory peaks are the largest of all runs."""
    return best([run_task(task, args, **kw) for _ in range(max(1, repeat))])


def interleaved(repeat: int, task: str, variants: list[dict[str, Any]], **kw: Any
                ) -> list[Measured]:
    """``best`` of ``repeat`` runs of each variant, run in rounds (one run of each variant
    per round), so that a machine that speeds up or slows down over the minutes affects
    every variant alike; ``Measured.runs`` keeps each round's time in round order."""
    runs: list[list[Measured]] = [[] for _ in variants]
    for _ in range(max(1, repeat)):
        for got, args in zip(runs, variants, strict=True):
            got.append(run_task(task, args, **kw))
    return [best(r) for r in runs]


def best(runs: list[Measured]) -> Measured:
    out = min(runs, key=lambda m: m.seconds)
    out.peak_rss = max(m.peak_rss for m in runs)
    out.peak_anon = max(m.peak_anon for m in runs)
    out.peak_proc = max(m.peak_proc for m in runs)
    out.runs = [m.seconds for m in runs]
    out.work = [work_seconds(m.result) for m in runs]
    return out


def work_seconds(result: dict[str, Any]) -> float:
    """A run's seconds without a local cluster's start-up and shut-down (a long-lived cluster
    has neither)."""
    phases = result.get("phases") or {}
    return float(result["seconds"]) - float(phases.get("cluster_start", 0.0)) \
        - float(phases.get("cluster_stop", 0.0))


# --------------------------------------------------------------------------- formatting


def table(headers: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    """A plain aligned text table, or a GitHub markdown table."""
    if markdown:
        out = ["| " + " | ".join(headers) + " |",
               "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    fmt = [f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths)]
    lines = ["  ".join(f.format(h) for f, h in zip(fmt, headers, strict=True))]
    lines += ["  ".join(f.format(c) for f, c in zip(fmt, r, strict=True)) for r in rows]
    return "\n".join(lines)


def mib(n: float) -> str:
    return f"{n / MiB:,.0f}"


def machine() -> str:
    """One line describing where the numbers were measured."""
    import platform

    mem = psutil.virtual_memory().total / (1 << 30)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{psutil.cpu_count(logical=True)} CPUs, {mem:.0f} GiB RAM, "
            f"Python {platform.python_version()}, load average {load}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}")


def engine_version() -> str:
    """Which engine is measured: its directory, version and git commit (dirty or not)."""
    import streamlens_dist

    where = Path(streamlens_dist.__file__).resolve().parent
    desc = f"streamlens_dist {streamlens_dist.__version__} from {where}"
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return desc + " (not a git checkout)"
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return desc
    n = len(dirty.splitlines())
    return desc + f", commit {head.stdout.strip()}" + (f" + {n} uncommitted changes" if n else "")

