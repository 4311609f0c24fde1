"""The benchmark runs (untimed) so that it cannot rot; timing is on demand only."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import throughput  # noqa: E402


def test_benchmark_smoke() -> None:
    lines: list[str] = []
    rates = throughput.run(throughput.Workload(frames=2000, chunk_size="64KiB", workers=(1,)),
                           out=lines.append)
    assert set(rates) >= {"dpkt loop", "engine pass 1, serial", "analyze --serial"}
    assert all(r > 0 for r in rates.values())
    assert lines[0].startswith("2000 frames")
