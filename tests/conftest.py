"""Shared test fixtures: where the real captures live, and store comparison helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"


def real_captures(include_corrupt: bool = False) -> list[Path]:
    files = sorted(p for p in CAPTURES.glob("*.pcap*") if p.suffix in (".pcap", ".pcapng"))
    return [p for p in files if include_corrupt or not p.name.startswith("corrupt_")]


def assert_tables_equal(a: dict, b: dict, where: str = "") -> None:
    """Column-by-column equality of two {table: {column: array}} dicts (NaN == NaN)."""
    assert set(a) == set(b), where
    for table in a:
        assert set(a[table]) == set(b[table]), f"{where} {table} columns"
        for col in a[table]:
            x, y = np.asarray(a[table][col]), np.asarray(b[table][col])
            assert len(x) == len(y), f"{where} {table}.{col}: {len(x)} rows vs {len(y)}"
            if x.dtype.kind == "f" or y.dtype.kind == "f":
                ok = np.array_equal(x.astype(float), y.astype(float), equal_nan=True)
            else:
                ok = [str(v) for v in x] == [str(v) for v in y] if x.dtype.kind in "OTU" \
                    else np.array_equal(x, y)
            if not ok:
                bad = next((i for i in range(len(x)) if str(x[i]) != str(y[i])), None)
                raise AssertionError(f"{where} {table}.{col} differs at row {bad}: "
                                     f"{x[bad] if bad is not None else ''} vs "
                                     f"{y[bad] if bad is not None else ''}")
