"""Read a result store back as plain {table: {column: array}} for comparisons."""

from __future__ import annotations

from pathlib import Path

from streamlens_dist.store import LAYOUT, open_store, read_table


def load_store(path: str | Path, storage: dict | None = None) -> tuple[dict, dict]:
    g = open_store(str(path), storage)
    return {t: read_table(g, t) for t in LAYOUT}, dict(g.attrs)


REFERENCE_ATTRS = ("frames", "first_ns", "last_ns", "undecodable_frames", "untimed_frames")
