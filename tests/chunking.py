"""Arbitrary chunkings of a capture for property tests: any partition of its frames."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from streamlens_dist.capture.split import CapturePlan, ChunkSpec, plan_capture
from streamlens_dist.engine import run_serial
from streamlens_dist.results import Tables, build_tables
from streamlens_dist.settings import Settings
from streamlens_dist.store import LAYOUT


def regroup(plan: CapturePlan, cuts: list[int]) -> CapturePlan:
    """Merge one-frame chunks into chunks that end after the given frame counts; a chunk never
    spans two files (the splitter never makes one that does)."""
    singles = plan.chunks
    bounds = sorted({c for c in cuts if 0 < c < len(singles)} | {0, len(singles)})
    chunks: list[ChunkSpec] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        run = list(singles[a:b])
        while run:
            same = [c for c in run if c.path == run[0].path]
            first, last = same[0], same[-1]
            chunks.append(dataclasses.replace(first, index=len(chunks), end=last.end,
                                              frames=sum(c.frames for c in same)))
            run = run[len(same):]
    return dataclasses.replace(plan, chunks=tuple(chunks))


def one_frame_plan(paths: list) -> CapturePlan:
    return plan_capture(paths, 1)


def tables_for(plan: CapturePlan, sigma: str = "3", bin_ns: int = 10**9) -> Tables:
    merged, outliers = run_serial(plan, Settings(sigma=sigma, bin_ns=bin_ns))
    return build_tables(merged, Fraction(sigma), outliers)


def as_dict(t: Tables) -> dict:
    return {name: getattr(t, name) for name in LAYOUT}
