"""Shared test fixtures: where the real captures live, and store comparison helpers."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

CAPTURES = Path(__file__).resolve().parent / "captures"

# Fuzz tests count the examples they really ran (hypothesis may stop early or skip some) and
# the terminal summary reports them. STREAMLENS_FUZZ_EXAMPLES=N runs every fuzz test with N
# examples instead of its CI default: the longer campaign of README "Damaged input".
FUZZ_EXAMPLES: Counter[str] = Counter()


def fuzz_examples(default: int) -> int:
    return int(os.environ.get("STREAMLENS_FUZZ_EXAMPLES") or default)


def count_example(name: str) -> None:
    FUZZ_EXAMPLES[name] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if FUZZ_EXAMPLES:
        total = sum(FUZZ_EXAMPLES.values())
        terminalreporter.write_sep("-", f"fuzz examples run: {total}")
        for name, n in sorted(FUZZ_EXAMPLES.items()):
            terminalreporter.write_line(f"{n:8d}  {name}")


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


def strict_json(text: str) -> object:
    """JSON as a strict parser (JavaScript's JSON.parse, jq) reads it: NaN, Infinity and
    -Infinity are not JSON, so they fail here instead of passing unnoticed."""
    import json

    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)
