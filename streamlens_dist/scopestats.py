"""Vectorised per-scope statistics of one chunk (the columnar counterpart of `add_iat`).

Input: for the chunk's classified frames in frame order, a scope id, frame number, timestamp
and size. Output per scope, as columns (scopetable.py): the statistics of `partial.add_iat` and
the kept largest in-chunk IATs. Timestamps must satisfy |ts| <= 2^61 so that every IAT and
the int64 work below cannot overflow; callers fall back to the per-frame path otherwise.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .scopetable import COLS, TS_LIMIT, ScopeTable, Tops, q_limbs  # noqa: F401 - TS_LIMIT: part of this API

_SAFE_SQ = 1 << 63
_LIMB = 21  # |iat| <= 2^62 splits into three 21-bit limbs
_LIMB_MASK = (1 << _LIMB) - 1
MAX_LIMB_TERMS = 1 << 21  # per scope: keeps every limb-product sum below 2^63
# Pass 1 keeps a scope's IATs above its chunk-local mean + KEEP_ABOVE_STD * std, and every
# IAT of a scope with at most KEEP_ALL_UP_TO of them in the chunk, so that pass 2 can answer
# from them instead of re-reading the chunk. n IATs lie at most (n - 1) / sqrt(n) std above
# their own mean, and a few samples' mean strays far from the flow's. With a 2-std cut alone,
# Poisson traffic of 2,000 flows re-read 34 of 35 chunks at 1 MiB; keeping every IAT of up
# to 8 too, still 43 of 43 at 4 MiB, and 20,000 flows 3 of 3 at 64 MiB; with these values
# none (benchmarks/README.md "Capture shapes"), for ~5 % more pass-1 time at 200 flows.
KEEP_ABOVE_STD = 1.0
KEEP_ALL_UP_TO = 16


def _load_compiled():  # noqa: ANN202 - a module or None
    try:
        return importlib.import_module(f"{__package__}._scopes")
    except ImportError:  # built without a C compiler: the numpy path below
        return None


_scopes = _load_compiled()
HAVE_COMPILED: bool = _scopes is not None


def _sum_squares(iat: np.ndarray, starts: np.ndarray) -> list[int]:
    """Exact per-segment sums of squares (segments start at `starts`) with int64 work only:
    |x| = a*2^42 + b*2^21 + c, so x^2 = a^2*2^84 + ab*2^64 + (2ac + b^2)*2^42 + bc*2^22 + c^2,
    and each limb product is < 2^42."""
    ax = np.abs(iat)
    c = ax & _LIMB_MASK
    b = (ax >> _LIMB) & _LIMB_MASK
    a = ax >> (2 * _LIMB)
    sums = [np.add.reduceat(x * y, starts).tolist() for x, y in
            ((a, a), (a, b), (a, c), (b, b), (b, c), (c, c))]
    return [(aa << 84) + (ab << 64) + ((2 * ac + bb) << 42) + (bc << 22) + cc
            for aa, ab, ac, bb, bc, cc in zip(*sums, strict=True)]


@dataclass
class ScopeStats:
    """Per-scope rows of a chunk as columns (scopetable.COLS, the limbs of Q, the kept IATs);
    `ids[r]` is row r's scope id. The list views (`stats`, `tops`, `hints`) are the
    per-frame form of partial.py, for comparisons."""

    id_array: np.ndarray
    cols: dict[str, np.ndarray]
    q: tuple[np.ndarray, np.ndarray, np.ndarray]
    kept: Tops

    def table(self, kb: np.ndarray, text: Callable[[bytes], Any]) -> ScopeTable:
        """The chunk's ScopeTable with `kb[r]` the byte key of row r (flowkeys.py)."""
        return ScopeTable(kb, self.cols, self.q, self.kept, text)

    @property
    def ids(self) -> list[int]:
        return self.id_array.tolist()

    @property
    def hints(self) -> list[int]:
        return self.cols["hints"].tolist()

    @property
    def stats(self) -> list[list]:
        t = ScopeTable(np.zeros(len(self.id_array), "S1"), self.cols, self.q)
        return [t.stats(r) for r in range(len(t))]

    @property
    def tops(self) -> list[list]:
        k, n = self.kept, self.cols["n"].tolist()
        out: list[list] = [[[], None if kept else d, m] for d, kept, m in
                           zip(k.dropped.tolist(), k.all_kept.tolist(), n, strict=True)]
        for r, x, f, t in zip(k.row.tolist(), k.iat.tolist(), k.frame.tolist(), k.ts.tolist(),
                              strict=True):
            out[r][0].append((x, f, t))
        return out


def scope_stats(scope: np.ndarray, frame: np.ndarray, ts: np.ndarray, size: np.ndarray,
                hints: np.ndarray, force_numpy: bool = False) -> ScopeStats:
    """Stats of every scope (ids: non-negative int64) of a chunk's frames, in frame order.

    The compiled and numpy paths give identical stats; their kept IATs may differ by the
    float rounding of the cut, which is only a filter (the largest left out is exact)."""
    if _scopes is None or force_numpy or len(scope) == 0:
        return _numpy_stats(scope, frame, ts, size, hints)
    return _compiled_stats(scope, frame, ts, size, hints)


def _compiled_stats(scope: np.ndarray, frame: np.ndarray, ts: np.ndarray, size: np.ndarray,
                    hints: np.ndarray) -> ScopeStats:
    n = len(scope)
    scope = np.ascontiguousarray(scope, dtype=np.int64)
    nscopes = int(scope.max()) + 1
    if nscopes > 4 * n + 4096:  # sparse ids (many flows x frame types): compact them first
        ids, scope = np.unique(scope, return_inverse=True)
        nscopes = len(ids)
    else:
        ids = None
    out = np.empty((n, _scopes.OUT_COLS), np.int64)
    q = np.empty((n, 3), np.uint64)
    kept = np.empty((n, 4), np.int64)
    rows, nkept = _scopes.scope_stats(
        scope, np.ascontiguousarray(frame, np.int64), np.ascontiguousarray(ts, np.int64),
        np.ascontiguousarray(size, np.int64), np.ascontiguousarray(hints, np.int32), nscopes,
        KEEP_ABOVE_STD, KEEP_ALL_UP_TO, np.empty(nscopes, np.int64), out, q,
        np.empty(n, np.float64), kept)
    (sid, frames, nbytes, ff, fns, lf, lns, m, lo, hi, left_out, all_kept, bits,
     n_kept) = (c.copy() for c in out[:rows].T)
    if ids is not None:
        sid = ids[sid]
    has = m > 0
    cols = {"frames": frames, "bytes": nbytes, "first_frame": ff, "first_ns": fns,
            "last_frame": lf, "last_ns": lns, "n": m, "min": np.where(has, lo, 0),
            "max": np.where(has, hi, 0), "hints": bits}
    limbs = tuple(q[:rows, j].copy() for j in range(3))
    tops = Tops(kept[:nkept, 0].copy(), kept[:nkept, 1].copy(),
                kept[:nkept, 2].copy(), kept[:nkept, 3].copy(), np.where(all_kept != 0, 0, left_out),
                all_kept != 0)
    return ScopeStats(sid, cols, limbs, tops)


def _numpy_stats(scope: np.ndarray, frame: np.ndarray, ts: np.ndarray, size: np.ndarray,
                 hints: np.ndarray) -> ScopeStats:
    n = len(scope)
    if n == 0:
        z = np.zeros(0, np.int64)
        return ScopeStats(z, dict.fromkeys(COLS, z), q_limbs([]), Tops.empty(0))
    # small integer keys take numpy's radix sort
    key = scope.astype(np.uint16) if int(scope.max()) < 1 << 16 else scope
    order = np.argsort(key, kind="stable")
    g, fr, t = scope[order], frame[order], ts[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], n]
    counts = ends - starts
    nbytes = np.add.reduceat(size[order], starts)

    same = g[1:] == g[:-1]  # position p+1 continues the scope of position p
    iat = (t[1:] - t[:-1])[same]
    iat_frame, iat_ts = fr[1:][same], t[1:][same]
    n_iat = counts - 1
    istarts = np.r_[0, np.cumsum(n_iat)[:-1]]
    has = n_iat > 0
    mins = np.zeros(len(starts), np.int64)
    maxs = np.zeros(len(starts), np.int64)
    sq: list[int] = [0] * len(starts)
    if has.any():
        mins[has] = np.minimum.reduceat(iat, istarts[has])
        maxs[has] = np.maximum.reduceat(iat, istarts[has])
        big = max(int(-mins.min()), int(maxs.max()))
        if big * big * int(n_iat.max()) < _SAFE_SQ:  # plain int64 sums cannot overflow
            exact = np.add.reduceat(iat * iat, istarts[has]).tolist()
        else:
            exact = _sum_squares(iat, istarts[has])
        for k, q in zip(np.flatnonzero(has).tolist(), exact, strict=True):
            sq[k] = q

    # Largest IATs per scope, without sorting: keep those above the scope's chunk-local
    # mean + KEEP_ABOVE_STD std (float: only a cut, at most half the IATs by Cantelli's
    # inequality; all of them up to KEEP_ALL_UP_TO IATs) and
    # record the largest one left out, which keeps the pass-2 test exact whatever the cut.
    cut = np.full(len(starts), np.inf)
    if has.any():
        fi = iat.astype(np.float64)
        m_f = n_iat[has].astype(np.float64)
        mean = np.add.reduceat(fi, istarts[has]) / m_f
        var = np.maximum(np.add.reduceat(fi * fi, istarts[has]) / m_f - mean * mean, 0.0)
        cut[has] = mean + KEEP_ABOVE_STD * np.sqrt(var)
        cut[has & (n_iat <= KEEP_ALL_UP_TO)] = -np.inf
    keep = iat > np.repeat(cut, n_iat)
    kept = np.flatnonzero(keep)
    left_out = np.zeros(len(starts), np.int64)
    all_kept = np.ones(len(starts), dtype=bool)
    if has.any():
        rest = np.where(keep, np.iinfo(np.int64).min, iat)
        left_out[has] = np.maximum.reduceat(rest, istarts[has])
        all_kept[has] = np.logical_and.reduceat(keep, istarts[has])
    big_rows = np.flatnonzero(n_iat >= MAX_LIMB_TERMS).tolist()
    for k in big_rows:  # too many terms for the limb sums: plain Python ints
        i0 = int(istarts[k])
        sq[k] = sum(x * x for x in iat[i0:i0 + int(n_iat[k])].tolist())
    cols = {"frames": counts.astype(np.int64), "bytes": nbytes.astype(np.int64),
            "first_frame": fr[starts], "first_ns": t[starts], "last_frame": fr[ends - 1],
            "last_ns": t[ends - 1], "n": n_iat.astype(np.int64), "min": mins, "max": maxs,
            "hints": np.bitwise_or.reduceat(hints[order], starts).astype(np.int64)}
    iat_row = np.repeat(np.arange(len(starts), dtype=np.int64), n_iat)
    tops = Tops(iat_row[kept], iat[kept], iat_frame[kept], iat_ts[kept],
                np.where(all_kept, 0, left_out), all_kept)
    return ScopeStats(g[starts], cols, q_limbs(sq), tops)
