"""Time-binned IAT series and log-bin IAT histograms per scope (docs/SERIES.md).

Both are sums over frames, so they are kept as sparse, columnar `Binned` tables of
(scope, bin) rows and merged by adding rows with the same key. A scope is an index into the
partial's scope dict (flows or types), in that dict's order; `combine` renumbers the right
side's scopes and adds the one IAT per scope that spans the seam (`seam_rows`); rows of the
same key are summed lazily (`join`, `canonical`).

Series bin of a frame: floor(ts / W) (epoch aligned, negative times floor down). Its IAT
(from the scope's previous frame) belongs to the bin of the frame where it ends. Histogram
bin of an IAT: how many of the 91 integer edges are <= it (0 = below 1 us, 91 = >= 1000 s).

Sums of squares are exact: value = hi * 2^62 + lo with 0 <= lo < 2^62, both int64, or LOST
in both where a bin's would reach Q_LIMIT = 2^124 ns^2 (decades-long IATs). A bin's IAT sum
is exact too, or, where it would pass the int64 range (IATs of a century ending in one bin
again and again: only hostile times, which go back and forth), SUM_LOST in both square
columns and INT64_MIN as the sum: that bin's mean and std are unknown, its count, min and max
stay exact. Both markers are sticky under merging. The vectorised path needs |iat| < 2^62
(always true for |ts| <= 2^61, scopestats.TS_LIMIT); wider chunks take `python_series`, which
does the same with Python ints.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from .scopestats import _scopes  # the compiled module (None without a C compiler)

HIST_BINS = 92


def _edge(k: int) -> int:
    """ceil(1000 * 10^(k/10)) ns, exactly: the least e with e^10 >= 10^(30 + k)."""
    target = 10 ** (30 + k)
    lo, hi = 1, 10 ** (4 + k // 10)
    while lo < hi:
        mid = (lo + hi) // 2
        if mid ** 10 >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


EDGES: tuple[int, ...] = tuple(_edge(k) for k in range(91))
_EDGES = np.array(EDGES, dtype=np.int64)
LO_BITS = 62
LO_MASK = (1 << LO_BITS) - 1
# A bin's sum of squares is kept below 2^124 ns^2 (hi < 2^62, so that a few rows add in
# int64); beyond it (IATs of decades, only in captures whose times jump wildly) the bin holds
# LOST in both columns: its std is unknown, everything else stays exact.
Q_LIMIT = 1 << 124
LOST = -1
SUM_LOST = -2
_M31 = (1 << 31) - 1
_I64_MAX, _I64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min

# value columns and how rows with the same key merge
SERIES_VALUES = ("frames", "bytes", "n", "s", "mn", "mx", "qh", "ql")
HIST_VALUES = ("count",)


def hist_bin(iat: int) -> int:
    """The histogram bin of one IAT (Python ints: the per-frame paths)."""
    return bisect.bisect_right(EDGES, iat)


@dataclass
class Binned:
    """(scope, bin) rows, every column an int64 array of equal length. A key may hold several
    rows, in any order (what `join` leaves); `canonical` sorts them by (scope, bin) and sums
    rows of the same key into one (what `merge` and the chunk passes return)."""

    cols: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.cols["scope"])

    @classmethod
    def empty(cls, values: tuple[str, ...]) -> Binned:
        return cls({c: np.zeros(0, np.int64) for c in ("scope", "bin", *values)})

    def to_wire(self) -> list[bytes]:
        """Little-endian int64 bytes per column (msgpack bin: no per-value encoding)."""
        return [np.ascontiguousarray(v, "<i8").tobytes() for v in self.cols.values()]

    @classmethod
    def from_wire(cls, names: tuple[str, ...], blobs: list) -> Binned:
        cols = ("scope", "bin", *names)
        if len(blobs) != len(cols) or not all(isinstance(b, bytes) for b in blobs):
            raise ValueError(f"binned table needs {len(cols)} byte columns")
        arrays = [np.frombuffer(b, "<i8").astype(np.int64) for b in blobs]
        if len({len(a) for a in arrays}) != 1:
            raise ValueError("binned table columns of different lengths")
        return cls(dict(zip(cols, arrays, strict=True)))

    @classmethod
    def from_lists(cls, names: tuple[str, ...], lists: list) -> Binned:
        if len(lists) != len(names) + 2:
            raise ValueError(f"binned table needs {len(names) + 2} columns, got {len(lists)}")
        return cls({c: np.array(v, dtype=np.int64) for c, v in
                    zip(("scope", "bin", *names), lists, strict=True)})


def _norm_q(qh: np.ndarray, l1: np.ndarray, l0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) of hi * 2^62 + l1 * 2^31 + l0, for 0 <= l1, l0 < 2^62."""
    mid = ((l1 & _M31) << 31) + (l0 & LO_MASK)  # < 2^63
    return qh + (l1 >> 31) + (mid >> LO_BITS), mid & LO_MASK


def _square_parts(iat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """iat^2 = hi * 2^62 + l1 * 2^31 + l0 with every part small enough to sum 2^31 of them
    in int64: |iat| = a*2^31 + c gives a^2*2^62 + 2ac*2^31 + c^2."""
    x = np.abs(iat)
    a, c = x >> 31, x & _M31
    m = 2 * a * c  # < 2^63
    c2 = c * c  # < 2^62
    return a * a + (m >> 31), (m & _M31) + (c2 >> 31), c2 & _M31


def _reduce(keys: tuple[np.ndarray, np.ndarray], vals: dict[str, np.ndarray],
            q: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> Binned:
    """Group rows (already sorted by key) with equal (scope, bin) and combine them."""
    scope, b = keys
    if not len(scope):
        return Binned({"scope": scope, "bin": b, **{c: v[:0] for c, v in vals.items()},
                       **({"qh": scope[:0], "ql": scope[:0]} if q else {})})
    starts = np.flatnonzero(np.r_[True, (scope[1:] != scope[:-1]) | (b[1:] != b[:-1])])
    out = {"scope": scope[starts], "bin": b[starts]}
    sum_lost = None
    for c, v in vals.items():
        if c == "mn":
            out[c] = np.minimum.reduceat(v, starts)
        elif c == "mx":
            out[c] = np.maximum.reduceat(v, starts)
        elif c == "s":
            out[c], sum_lost = _reduce_sums(v, starts, q[0] == SUM_LOST if q else None)
        else:
            out[c] = np.add.reduceat(v, starts)
    if q is not None:
        out["qh"], out["ql"] = _reduce_squares(q, starts)
        if sum_lost is not None:
            out["qh"][sum_lost], out["ql"][sum_lost] = SUM_LOST, SUM_LOST
    return Binned(out)


def _reduce_sums(s: np.ndarray, starts: np.ndarray, lost_in: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per group the sum of `s` and whether it is lost: an input row already lost, or a sum
    outside int64 (int64 sums are exact unless they wrap: groups whose float sum of |s| comes
    near the limit are summed again with Python ints)."""
    lost = np.zeros(len(starts), bool)
    if lost_in is not None and lost_in.any():
        lost = np.maximum.reduceat(lost_in, starts)
        s = np.where(lost_in, 0, s)
    total = np.add.reduceat(s, starts)
    near = np.flatnonzero(~lost & (np.add.reduceat(np.abs(s.astype(np.float64)), starts)
                                   >= 2.0**62))
    ends = np.r_[starts[1:], len(s)]
    for r in near.tolist():
        exact = sum(s[int(starts[r]):int(ends[r])].tolist())
        if _I64_MIN <= exact <= _I64_MAX:
            total[r] = exact
        else:
            lost[r] = True
    total[lost] = _I64_MIN
    return total, lost


def _reduce_squares(q: tuple[np.ndarray, np.ndarray, np.ndarray], starts: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) per group of the sums of hi * 2^62 + l1 * 2^31 + l0 (l1 < 2^32, l0 < 2^31;
    hi = -1: an input already past Q_LIMIT), LOST where a sum reaches Q_LIMIT."""
    hi, l1, l0 = q
    lost_in = hi < 0
    lost = np.maximum.reduceat(lost_in, starts)
    if lost_in.any():
        hi, l1, l0 = (np.where(lost_in, 0, x) for x in (hi, l1, l0))
    h = np.add.reduceat(hi, starts)  # exact unless the group's sum nears 2^63: checked next
    m1, m0 = np.add.reduceat(l1, starts), np.add.reduceat(l0, starts)
    qh, ql = _norm_q(h, m1 + (m0 >> 31), m0 & _M31)
    near = np.flatnonzero(~lost & (np.add.reduceat(hi.astype(np.float64), starts) >= 2.0**60))
    ends = np.r_[starts[1:], len(hi)]
    for r in near.tolist():  # a few huge bins (IATs of decades): exact Python ints
        a, z = int(starts[r]), int(ends[r])
        total = sum((int(x) << LO_BITS) + (int(y) << 31) + int(w)
                    for x, y, w in zip(hi[a:z], l1[a:z], l0[a:z], strict=True))
        if total >= Q_LIMIT:
            lost[r] = True
        else:
            qh[r], ql[r] = total >> LO_BITS, total & LO_MASK
    qh[lost], ql[lost] = LOST, LOST
    return qh, ql


def _sort_rows(scope: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """The permutation that sorts rows by (scope, bin), or None when they already are."""
    if len(scope) < 2:
        return None
    d = scope[1:] - scope[:-1]
    if np.all((d > 0) | ((d == 0) & (b[1:] >= b[:-1]))):
        return None
    return np.lexsort((b, scope))


def chunk_series(scope: np.ndarray, ts: np.ndarray, size: np.ndarray, bin_ns: int,
                 force_numpy: bool = False) -> tuple[Binned, Binned]:
    """(series, histograms) of one chunk's frames of some scopes (scope: dense indices
    0..k-1, in frame order). Needs |ts| <= 2^61. The compiled pass and numpy give the same
    tables."""
    if _scopes is not None and not force_numpy and len(scope):
        return _compiled_series(scope, ts, size, bin_ns)
    return _numpy_series(scope, ts, size, bin_ns)


def _compiled_series(scope: np.ndarray, ts: np.ndarray, size: np.ndarray, bin_ns: int
                     ) -> tuple[Binned, Binned]:
    n = len(scope)
    scope = np.ascontiguousarray(scope, np.int64)
    ts = np.ascontiguousarray(ts, np.int64)
    nscopes = int(scope.max()) + 1
    # rows: one per scope and bin unless a scope's times go back and forth between bins
    span = (int(ts.max()) - int(ts.min())) // bin_ns + 2
    cap = min(n, 2 * nscopes * span + 64)
    while True:
        rows = np.empty((cap, len(SERIES_VALUES) + 2), np.int64)
        hist = np.zeros(nscopes * HIST_BINS, np.int64)
        nrows = _scopes.series(scope, ts, np.ascontiguousarray(size, np.int64), nscopes,
                               bin_ns, _EDGES, np.empty(nscopes, np.int64), rows, hist)
        if nrows != -2:
            break
        cap = n
    rows = rows[:nrows]
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]  # rows were made in frame order
    cols = dict(zip(("scope", "bin", *SERIES_VALUES), rows.T, strict=True))
    ql = cols["ql"]
    table = _reduce((cols["scope"], cols["bin"]), {c: cols[c] for c in SERIES_VALUES[:6]},
                    (cols["qh"], ql >> 31, ql & _M31))
    nz = np.flatnonzero(hist)
    return table, Binned({"scope": nz // HIST_BINS, "bin": nz % HIST_BINS, "count": hist[nz]})


def _numpy_series(scope: np.ndarray, ts: np.ndarray, size: np.ndarray, bin_ns: int
                  ) -> tuple[Binned, Binned]:
    n = len(scope)
    if n == 0:
        return Binned.empty(SERIES_VALUES), Binned.empty(HIST_VALUES)
    key = scope.astype(np.uint16) if int(scope.max()) < 1 << 16 else scope  # radix sort
    order = np.argsort(key, kind="stable")
    g, t, sz = scope[order], ts[order], size[order]
    has = np.r_[False, g[1:] == g[:-1]]  # the frame ends an IAT of its scope
    iat = np.r_[0, t[1:] - t[:-1]]
    iat[~has] = 0
    b = np.floor_divide(t, bin_ns)
    perm = _sort_rows(g, b)  # only for timestamps going backwards inside a scope
    if perm is not None:
        g, t, sz, has, iat, b = g[perm], t[perm], sz[perm], has[perm], iat[perm], b[perm]
    hi, l1, l0 = _square_parts(iat)
    series = _reduce((g, b), {
        "frames": np.ones(n, np.int64), "bytes": sz.astype(np.int64), "n": has.astype(np.int64),
        "s": iat, "mn": np.where(has, iat, _I64_MAX), "mx": np.where(has, iat, _I64_MIN)},
        (hi, l1, l0))

    hg, hiat = g[has], iat[has]
    hb = np.searchsorted(_EDGES, hiat, side="right").astype(np.int64)
    nscopes = int(g[-1]) + 1  # g is sorted by scope
    if nscopes * HIST_BINS <= 4 * n + 4096:
        counts = np.bincount(hg * HIST_BINS + hb, minlength=nscopes * HIST_BINS)
        nz = np.flatnonzero(counts)
        hist = Binned({"scope": nz // HIST_BINS, "bin": nz % HIST_BINS, "count": counts[nz]})
    else:
        cells, counts = np.unique(hg * HIST_BINS + hb, return_counts=True)
        hist = Binned({"scope": cells // HIST_BINS, "bin": cells % HIST_BINS,
                       "count": counts.astype(np.int64)})
    return series, hist


def python_series(scope: list[int], ts: list[int], size: list[int], bin_ns: int
                  ) -> tuple[Binned, Binned]:
    """The same as chunk_series with Python ints (any timestamps)."""
    last: dict[int, int] = {}
    rows: dict[tuple[int, int], list[int]] = {}
    hist: dict[tuple[int, int], int] = {}
    for s, t, z in zip(scope, ts, size, strict=True):
        r = rows.setdefault((s, t // bin_ns), [0, 0, 0, 0, _I64_MAX, _I64_MIN, 0])
        r[0] += 1
        r[1] += z
        if s in last:
            x = t - last[s]
            r[2] += 1
            r[3] += x
            r[4], r[5] = min(r[4], x), max(r[5], x)
            r[6] += x * x
            hk = (s, hist_bin(x))
            hist[hk] = hist.get(hk, 0) + 1
        last[s] = t
    keys = sorted(rows)
    cols = [[k[0] for k in keys], [k[1] for k in keys]]
    cols += [[rows[k][j] for k in keys] for j in range(6)]
    sq = [_square_columns(rows[k][3], rows[k][6]) for k in keys]
    cols[5] = [_I64_MIN if h == SUM_LOST else x for x, (h, _l) in zip(cols[5], sq, strict=True)]
    cols += [[h for h, _l in sq], [lo for _h, lo in sq]]
    hkeys = sorted(hist)
    return (Binned.from_lists(SERIES_VALUES, cols),
            Binned.from_lists(HIST_VALUES, [[k[0] for k in hkeys], [k[1] for k in hkeys],
                                            [hist[k] for k in hkeys]]))


def _square_columns(s: int, q: int) -> tuple[int, int]:
    """(hi, lo) of a bin with IAT sum `s` and sum of squares `q` (Python ints), or its marker:
    SUM_LOST where `s` passes int64, LOST where `q` reaches Q_LIMIT."""
    if not _I64_MIN <= s <= _I64_MAX:
        return SUM_LOST, SUM_LOST
    return (q >> LO_BITS, q & LO_MASK) if q < Q_LIMIT else (LOST, LOST)


def seam_rows(scopes: np.ndarray, ts: np.ndarray, iats: np.ndarray, bin_ns: int
              ) -> tuple[Binned, Binned]:
    """Series and histogram rows holding only the seam IATs `iats` (one per scope, ending at
    `ts`): added to the merged tables by `merge`."""
    if len(iats) and int(np.abs(iats).max()) >= 1 << 62:  # beyond the limb squares: Python
        return _python_seam_rows(scopes.tolist(), ts.tolist(), iats.tolist(), bin_ns)
    order = np.argsort(scopes, kind="stable")  # Binned rows are sorted
    scopes, ts, iats = scopes[order], ts[order], iats[order]
    hi, l1, l0 = _square_parts(iats)
    qh, ql = _norm_q(hi, l1 + (l0 >> 31), l0 & _M31)
    zero = np.zeros(len(iats), np.int64)
    series = Binned({"scope": scopes, "bin": np.floor_divide(ts, bin_ns), "frames": zero,
                     "bytes": zero, "n": np.ones(len(iats), np.int64), "s": iats, "mn": iats,
                     "mx": iats, "qh": qh, "ql": ql})
    hist = Binned({"scope": scopes,
                   "bin": np.searchsorted(_EDGES, iats, side="right").astype(np.int64),
                   "count": np.ones(len(iats), np.int64)})
    return series, hist


def _python_seam_rows(scopes: list[int], ts: list[int], iats: list[int], bin_ns: int
                      ) -> tuple[Binned, Binned]:
    rows = sorted(zip(scopes, ts, iats, strict=True))
    scopes, ts, iats = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
    n = len(scopes)
    sq = [_square_columns(x, x * x) for x in iats]  # one IAT always fits: no SUM_LOST
    series = Binned.from_lists(SERIES_VALUES, [
        scopes, [t // bin_ns for t in ts], [0] * n, [0] * n, [1] * n, iats, iats, iats,
        [h for h, _l in sq], [lo for _h, lo in sq]])
    hist = Binned.from_lists(HIST_VALUES, [scopes, [hist_bin(x) for x in iats], [1] * n])
    return series, hist


# `join` concatenates the rows of the pieces (a key may then hold several rows) while the
# result stays below LAZY_ROWS, and merges them above: sorting and summing at every node of
# a combine tree cost more than the rest of a combine. Combined partials are never sent on,
# so lazy rows cost only memory, which LAZY_ROWS bounds; the rows are summed once, by
# `canonical`, when the tables are made. The client's fold sums its rows by `Summed`.
LAZY_ROWS = 1 << 18


def join(left: Binned, right: Binned, seam: Binned, values: tuple[str, ...]) -> Binned:
    """The sum of two tables over the same scope numbering and the seam rows between them:
    their rows side by side below LAZY_ROWS (see above), else merged."""
    parts = [p for p in (left, right, seam) if len(p)]
    if len(parts) < 2:
        return parts[0] if parts else Binned.empty(values)
    if sum(len(p) for p in parts) > LAZY_ROWS:
        return merge(parts, values)
    return Binned({c: np.concatenate([p.cols[c] for p in parts]) for c in ("scope", "bin", *values)})


def canonical(t: Binned, values: tuple[str, ...]) -> Binned:
    """`t` with its rows sorted by (scope, bin) and one row per key."""
    return merge([t], values)


def _is_canonical(t: Binned) -> bool:
    scope, b = t.cols["scope"], t.cols["bin"]
    d = scope[1:] - scope[:-1]
    return bool(np.all((d > 0) | ((d == 0) & (b[1:] > b[:-1]))))


def _key_order(scope: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The stable permutation sorting rows by (scope, bin): one int64 key when it fits (a
    radix-friendly sort of runs, ~2x a two-key lexsort), else the lexsort."""
    if len(scope):
        lo, hi, top = int(b.min()), int(b.max()), int(scope.max())
        span = hi - lo + 1
        if int(scope.min()) >= 0 and (top + 1) * span < 1 << 62:
            return np.argsort(scope * span + (b - lo), kind="stable")
    return np.lexsort((b, scope))


def merge(parts: list[Binned], values: tuple[str, ...]) -> Binned:
    """Sum of tables over the same scope numbering (series: sums, min/max, exact squares),
    canonical."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Binned.empty(values)
    if len(parts) == 1 and _is_canonical(parts[0]):
        return parts[0]
    cols = {c: np.concatenate([p.cols[c] for p in parts]) for c in ("scope", "bin", *values)}
    perm = _key_order(cols["scope"], cols["bin"])
    cols = {c: v[perm] for c, v in cols.items()}
    sc, b = cols["scope"], cols["bin"]
    if not np.any((sc[1:] == sc[:-1]) & (b[1:] == b[:-1])):
        return Binned(cols)  # every key once (pieces of different flows or bins): sorted is all
    q = None
    if "qh" in values:
        ql = cols.pop("ql")
        q = (cols.pop("qh"), ql >> 31, ql & _M31)
    return _reduce((cols.pop("scope"), cols.pop("bin")), cols, q)


def renumber(t: Binned, new_index: np.ndarray, sort: bool = True) -> Binned:
    """The table with scope i renamed new_index[i]; rows re-sorted unless `sort` is false
    (a canonical table stays canonical)."""
    if not len(t):
        return t
    cols = dict(t.cols)
    cols["scope"] = new_index[cols["scope"]]
    perm = _sort_rows(cols["scope"], cols["bin"]) if sort else None
    if perm is not None:
        cols = {c: v[perm] for c, v in cols.items()}
    return Binned(cols)


def square(hi: int, lo: int) -> int:
    """The exact sum of squares of a row."""
    return (int(hi) << LO_BITS) + int(lo)


class Summed:
    """Rows over one scope numbering, added over time (a fold's): summed when the unsummed
    rows outgrow the summed ones (and LAZY_ROWS), so each row is summed about twice whatever
    the number of additions, and at most twice the rows of the sum (or LAZY_ROWS) are held."""

    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = values
        self._sum = Binned.empty(values)
        self._rows: list[Binned] = []
        self._pending = 0

    def add(self, tables: list[Binned]) -> None:
        for t in tables:
            if len(t):
                self._rows.append(t)
                self._pending += len(t)
        if self._pending > max(LAZY_ROWS, len(self._sum)):
            self._sum = merge([self._sum, *self._rows], self.values)
            self._rows, self._pending = [], 0

    def result(self) -> Binned:
        """The sum of every row added (canonical)."""
        return merge([self._sum, *self._rows], self.values)
