"""The exact outlier rule of CONTRACT.md §6, as one integer threshold per scope.

x is an outlier iff n*x - S > 0 and (n*x - S)^2 (n-1) > k^2 n (nQ - S^2), k = p/q. The left
side grows with x, so the smallest passing integer x_min is found once per scope with integer
square roots, and every IAT is then compared as `iat >= x_min`, in int64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np


def threshold(n: int, s: int, q: int, k: Fraction) -> int | None:
    """Smallest integer IAT that is an outlier in a scope with (n, S, Q), or None (n < 2)."""
    if n < 2:
        return None
    p, d = k.numerator, k.denominator
    rhs = p * p * n * (n * q - s * s)  # with y = n*x - S: need y^2 * (n-1) * d^2 > rhs
    m = (n - 1) * d * d
    y = math.isqrt(rhs // m) if rhs > 0 else 0
    while y * y * m <= rhs:
        y += 1
    while y > 1 and (y - 1) * (y - 1) * m > rhs:
        y -= 1
    y = max(y, 1)  # n*x - S > 0
    return -((-(s + y)) // n)  # ceil((S + y) / n)


def is_outlier(x: int, n: int, s: int, q: int, k: Fraction) -> bool:
    """The rule written literally; the tests hold `threshold` to it."""
    if n < 2:
        return False
    y = n * x - s
    return y > 0 and y * y * (n - 1) * k.denominator ** 2 > k.numerator ** 2 * n * (n * q - s * s)


def mean_std(n: int, s: int, q: int) -> tuple[float, float]:
    """float64 mean and sample std: the exact integer ratio divided once, then the root."""
    mean = s / n if n else math.nan  # int/int true division is correctly rounded
    std = math.sqrt((n * q - s * s) / (n * (n - 1))) if n >= 2 else math.nan
    return mean, std


def deviation(x: int, mean: float, std: float) -> float:
    """(x - mean) / std in float64; +inf when std is 0 (cannot happen for an outlier unless
    the scope's variance is exactly zero, where no IAT exceeds the mean)."""
    if std == 0:
        return math.inf
    return (float(x) - mean) / std


def deviations(rows: np.ndarray | list[int], iats: np.ndarray | list[int],
               scopes: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """`deviation` of many outliers at once: IAT iats[i] in the scope with (n, S, Q) =
    scopes[rows[i]]; each scope's mean and std computed once (mean_std), the rest in float64
    exactly as `deviation` does it."""
    rows = np.asarray(rows, dtype=np.int64)
    used = np.unique(rows)
    ms = np.array([mean_std(*scopes[r]) for r in used.tolist()], dtype=np.float64
                  ).reshape(-1, 2)
    at = np.searchsorted(used, rows)
    mean, std = ms[at, 0], ms[at, 1]
    # int64 -> float64 rounds to nearest, ties to even: what float(int) does
    x = np.asarray(iats, dtype=np.int64).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (x - mean) / std
    out[std == 0] = math.inf
    return out


def outlier_columns(rows: np.ndarray, scopes: list[tuple[int, int, int]], row_col: str
                    ) -> dict[str, np.ndarray]:
    """An outlier table's columns from its rows, in order: an int64 array of (scope row,
    frame, ts, iat) rows; and the (n, S, Q) of each scope row."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return {row_col: rows[:, 0].copy(), "frame": rows[:, 1].copy(), "ts_ns": rows[:, 2].copy(),
            "iat_ns": rows[:, 3].copy(), "deviation": deviations(rows[:, 0], rows[:, 3], scopes)}
