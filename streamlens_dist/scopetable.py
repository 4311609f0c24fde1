"""Per-scope statistics of a partial as columns (flows, and (flow, frame type) scopes).

Row i holds the scope of byte key `kb[i]` (flowkeys.py); rows are in order of first appearance
(a chunk's in frame order, a combined table's: the left side's rows, then the right side's new
ones in its order), which is also the scope numbering of the partial's series. Columns, int64
unless a hostile capture's timestamps push an IAT out of int64 (then `min`/`max` hold Python
ints, dtype object): frames, bytes, first/last frame and ns, `n` (IATs inside), `min`/`max`
IAT (0 when n == 0), the OR of the frames' hint bits, and the exact sum of squared IATs as
three uint64 limbs q0 + q1*2^64 + q2*2^128 (iat^2 < 2^128 and n < 2^63 keep it below 2^192).
The sum of IATs is last_ns - first_ns: it telescopes, so it is never stored.

A one-chunk table also keeps its largest in-chunk IATs (`Tops`, the pass-2 shortcut of
partial.py); a combined table has none. `combine` has no Python per scope: keys are matched
by numpy's sorted search, so its cost grows with the rows it is given at numpy's speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .flowkeys import (
    GrowingIndex,
    KeyIndex,
    TextKeys,
    flow_bytes,
    flow_text,
    key_array,
    key_hash,
    type_bytes,
    type_text,
)

TS_LIMIT = 1 << 61  # |ts| below this: every difference of two timestamps fits int64 squares
COLS = ("frames", "bytes", "first_frame", "first_ns", "last_frame", "last_ns", "n", "min",
        "max", "hints")
LIMBS = ("q0", "q1", "q2")
_M64 = (1 << 64) - 1
_M32 = np.uint64(0xFFFFFFFF)


@dataclass
class Tops:
    """Largest in-chunk IATs of a one-chunk table: every IAT of row r that is >= x is kept
    (`row == r`) whenever `all_kept[r]` or `dropped[r] < x` (the largest IAT left out)."""

    row: np.ndarray
    iat: np.ndarray
    frame: np.ndarray
    ts: np.ndarray
    dropped: np.ndarray
    all_kept: np.ndarray

    @classmethod
    def empty(cls, rows: int) -> Tops:
        z = np.zeros(0, np.int64)
        return cls(z, z, z, z, np.zeros(rows, np.int64), np.ones(rows, bool))


def q_limbs(q: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Python ints (0 <= q < 2^192) as three uint64 limb columns."""
    return (np.array([x & _M64 for x in q], np.uint64),
            np.array([(x >> 64) & _M64 for x in q], np.uint64),
            np.array([x >> 128 for x in q], np.uint64))


def q_ints(q0: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> list[int]:
    return [(c << 128) | (b << 64) | a for a, b, c in
            zip(q0.tolist(), q1.tolist(), q2.tolist(), strict=True)]


def add_limbs(a: tuple, b: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact sum of two limb triples (uint64 arithmetic wraps; carries recovered)."""
    s0 = a[0] + b[0]
    c0 = (s0 < a[0]).astype(np.uint64)
    t1 = a[1] + b[1]
    c1 = (t1 < a[1]).astype(np.uint64)
    s1 = t1 + c0
    c1 += (s1 < t1).astype(np.uint64)
    return s0, s1, a[2] + b[2] + c1


def square_limbs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x^2 as limbs, for int64 x with |x| < 2^62, or Python ints (dtype object)."""
    if x.dtype == object:
        return q_limbs([v * v for v in x.tolist()])
    u = np.abs(x).astype(np.uint64)
    h, lo = u >> np.uint64(32), u & _M32
    hh, hl, ll = h * h, h * lo, lo * lo  # x^2 = hh*2^64 + hl*2^33 + ll; h < 2^30
    mid = hl << np.uint64(33)
    s0 = ll + mid
    carry = (s0 < ll).astype(np.uint64)
    return s0, hh + (hl >> np.uint64(31)) + carry, np.zeros(len(x), np.uint64)


def _wide(*arrays: np.ndarray) -> bool:
    """Whether any value is outside +-TS_LIMIT (differences might not fit int64)."""
    for a in arrays:
        if len(a) and (a.dtype == object or int(a.max()) > TS_LIMIT or int(a.min()) < -TS_LIMIT):
            return True
    return False


class ScopeTable(Mapping):
    """Columns of per-scope statistics, keyed by byte keys (flowkeys.py; `text` makes a row's
    text key); as a Mapping, text key -> the stats list of partial.py (the per-frame form),
    made on demand."""

    def __init__(self, kb: np.ndarray, cols: dict[str, np.ndarray],
                 q: tuple[np.ndarray, np.ndarray, np.ndarray], tops: Tops | None = None,
                 text: Callable[[bytes], Any] = flow_text,
                 keyidx: KeyIndex | None = None) -> None:
        self.kb, self.cols, self.q, self.tops, self.text = kb, cols, q, tops, text
        self._keyidx = keyidx
        self._hashes: np.ndarray | None = None if keyidx is None else keyidx.h
        self._keys: TextKeys | None = None
        self._index: dict | None = None

    @classmethod
    def from_stats(cls, stats: Mapping, hints: Mapping | None = None,
                   tops: Mapping | None = None, types: bool = False) -> ScopeTable:
        """From the per-frame form: text key -> stats list (partial.new_stats), key -> hint
        bits, key -> [[(iat, frame, ts), ...], dropped or None, count] (partial.keep_top);
        `types`: keys are (flow, frame type) keys."""
        if isinstance(stats, ScopeTable):
            return stats
        keys = list(stats)
        rows = list(stats.values())
        cols = {c: _column([st[i] for st in rows]) for c, i in
                (("frames", 0), ("bytes", 1), ("first_frame", 2), ("first_ns", 3),
                 ("last_frame", 4), ("last_ns", 5), ("n", 6))}
        cols["min"] = _column([st[9] if st[6] else 0 for st in rows])
        cols["max"] = _column([st[10] if st[6] else 0 for st in rows])
        cols["hints"] = np.array([(hints or {}).get(k, 0) for k in keys], np.int64)
        t = None
        if tops:
            row, iat, frame, ts, dropped, kept = [], [], [], [], [], []
            for r, k in enumerate(keys):
                heap, drop, _count = tops.get(k, ([], None, 0))
                for x, f, when in sorted(heap, key=lambda e: (e[1], e[0])):
                    row.append(r)
                    iat.append(x)
                    frame.append(f)
                    ts.append(when)
                dropped.append(0 if drop is None else drop)
                kept.append(drop is None)
            t = Tops(np.array(row, np.int64), _column(iat), np.array(frame, np.int64),
                     np.array(ts, np.int64), _column(dropped), np.array(kept, bool))
        kb = key_array([(type_bytes if types else flow_bytes)(k) for k in keys])
        return cls(kb, cols, q_limbs([st[8] for st in rows]), t,
                   type_text if types else flow_text)

    # --- keys ------------------------------------------------------------------------
    @property
    def key_list(self) -> TextKeys:
        """The text keys by row (made when first read)."""
        if self._keys is None:
            self._keys = TextKeys(self.kb, self.text)
        return self._keys

    @property
    def hashes(self) -> np.ndarray:
        if self._hashes is None:
            self._hashes = key_hash(self.kb)
        return self._hashes

    @property
    def keyidx(self) -> KeyIndex:
        if self._keyidx is None:
            self._keyidx = KeyIndex(self.kb, self.hashes)
        return self._keyidx

    def rows_of(self, t: ScopeTable) -> np.ndarray:
        """The row here of each row of table `t`, -1 where this table has none."""
        return self.keyidx.rows_of(t.kb, t.hashes)

    # --- the Mapping view --------------------------------------------------------------
    @property
    def index(self) -> dict:
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.key_list)}
        return self._index

    def __len__(self) -> int:
        return len(self.kb)

    def __iter__(self) -> Iterator:
        return iter(self.key_list)

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def __getitem__(self, key: object) -> list:
        return self.stats(self.index[key])

    def stats(self, r: int) -> list:
        c = self.cols
        v = [c[name][r].item() if hasattr(c[name][r], "item") else c[name][r] for name in COLS]
        frames, nbytes, ff, fns, lf, lns, n, lo, hi, _hints = v
        q = q_ints(*(x[r:r + 1] for x in self.q))[0]
        return [frames, nbytes, ff, fns, lf, lns, n, lns - fns, q, lo if n else None,
                hi if n else None]

    def hint_bits(self) -> dict:
        return dict(zip(self.key_list, self.cols["hints"].tolist(), strict=True))

    def sum_iat(self) -> np.ndarray:
        """S per row (last_ns - first_ns), Python ints where int64 could overflow."""
        first, last = self.cols["first_ns"], self.cols["last_ns"]
        if _wide(first, last):
            return last.astype(object) - first.astype(object)
        return last - first


def _column(values: list) -> np.ndarray:
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:  # an IAT of a hostile capture's timestamps: exact Python ints
        return np.array(values, dtype=object)


@dataclass
class Joined:
    """How `combine` placed the right side's rows: `index[j]` is right row j's merged row;
    `old` marks the rows the left side also has, each joined by one seam IAT `seam` (in
    row order of the right side's old rows), which ends at the right row's first frame."""

    index: np.ndarray
    old: np.ndarray
    seam: np.ndarray


def seam_iats(a_last: np.ndarray, a_rows: np.ndarray, b_first: np.ndarray) -> np.ndarray:
    """b_first - a_last[a_rows], exact: Python ints where int64 could overflow."""
    last = a_last[a_rows]
    if _wide(last, b_first):
        return b_first.astype(object) - last.astype(object)
    return b_first - last


def combine(a: ScopeTable, b: ScopeTable) -> tuple[ScopeTable, Joined]:
    """The table of `a` followed by `b` (neither modified), and where b's rows went."""
    g = GrowingTable.of(a)
    joined = g.add(b)
    return g.table(last=True), joined


class ScopeValues(Mapping):
    """One integer per scope, keyed by byte keys: the last timestamp of each scope before some
    chunk (the prefix of the outlier pass, partial.Prefix), or each scope's outlier
    threshold. As a Mapping: text key -> int."""

    def __init__(self, kb: np.ndarray | None = None, values: np.ndarray | None = None,
                 text: Callable[[bytes], Any] = flow_text, keyidx: KeyIndex | None = None
                 ) -> None:
        self.kb = np.zeros(0, "S1") if kb is None else kb
        self.values = np.zeros(0, np.int64) if values is None else values
        self.text, self._keyidx = text, keyidx

    @classmethod
    def of(cls, values: Mapping, types: bool = False) -> ScopeValues:
        """From text key -> int (`types`: (flow, frame type) keys)."""
        if isinstance(values, ScopeValues):
            return values
        kb = key_array([(type_bytes if types else flow_bytes)(k) for k in values])
        return cls(kb, np.array(list(values.values()), np.int64),
                   type_text if types else flow_text)

    @property
    def keyidx(self) -> KeyIndex:
        if self._keyidx is None:
            self._keyidx = KeyIndex(self.kb)
        return self._keyidx

    def __len__(self) -> int:
        return len(self.kb)

    def __iter__(self) -> Iterator:
        return iter(TextKeys(self.kb, self.text))

    def __getitem__(self, key: object) -> int:
        kb = (type_bytes if self.text is type_text else flow_bytes)(key)
        r = int(self.keyidx.rows_of(key_array([kb]))[0])
        if r < 0:
            raise KeyError(key)
        return int(self.values[r])

    def at(self, t: ScopeTable, missing: int) -> np.ndarray:
        """The value of each row of `t`, `missing` where there is none."""
        r = self.keyidx.rows_of(t.kb, t.hashes)
        return np.where(r >= 0, self.values[np.maximum(r, 0)] if len(self) else missing,
                        missing).astype(np.int64)

    def advance(self, t: ScopeTable) -> ScopeValues:
        """Last timestamps followed by the chunks of table `t` (self is not modified)."""
        pos = self.keyidx.rows_of(t.kb, t.hashes)
        new = pos < 0
        last = np.concatenate([self.values, t.cols["last_ns"][new]])
        last[pos[~new]] = t.cols["last_ns"][~new]
        if not new.any():
            return ScopeValues(self.kb, last, t.text, self._keyidx)
        index = self.keyidx.extended(t.kb[new], t.hashes[new])
        return ScopeValues(index.kb, last, t.text, index)


class GrowingTable:
    """A ScopeTable that the tables after it are folded into in place (`add`: what `combine`
    computes, for the rows of the added table only). Columns keep spare room and keys are
    found by a growing hash table (flowkeys.GrowingIndex): folding chunk after chunk costs
    about the rows of the chunks, never the rows of the table per chunk. Rows are in order of
    first appearance, as `combine` places them."""

    def __init__(self, text: Callable[[bytes], Any] = flow_text) -> None:
        self.text, self.n = text, 0
        self.cols = {c: np.zeros(0, np.int64) for c in COLS}
        self.q = tuple(np.zeros(0, np.uint64) for _ in LIMBS)
        self._index = GrowingIndex()
        self._done = False  # the columns were given away (table(last=True))

    @classmethod
    def of(cls, t: ScopeTable) -> GrowingTable:
        """A growing copy of `t` (which is not modified)."""
        g = cls(t.text)
        g.n = len(t)
        g.cols = {c: np.array(t.cols[c]) for c in COLS}
        g.q = tuple(np.array(x) for x in t.q)
        g._index.add(t.kb, t.hashes)
        return g

    def __len__(self) -> int:
        return self.n

    def rows_of(self, t: ScopeTable) -> np.ndarray:
        """The row here of each row of `t`, -1 where this table has none."""
        return self._index.rows_of(t.kb, t.hashes)

    def add(self, b: ScopeTable) -> Joined:
        """Folds `b` (the scopes that come after this table's) in; where its rows went."""
        if self._done:
            raise RuntimeError("a growing table was added to after its last table()")
        pos = self.rows_of(b)
        old = pos >= 0
        new = np.flatnonzero(~old)
        n0, n_new = self.n, len(new)
        pos[new] = np.arange(n0, n0 + n_new)
        ra, rb = pos[old], np.flatnonzero(old)
        c, bc = self.cols, b.cols
        seam = seam_iats(c["last_ns"], ra, bc["first_ns"][rb])
        if len(ra):
            an, bn = c["n"][ra], bc["n"][rb]
            lo, hi = seam, seam
            for side, r, has in ((c, ra, an > 0), (bc, rb, bn > 0)):
                lo = np.where(has, np.minimum(lo, side["min"][r]), lo)
                hi = np.where(has, np.maximum(hi, side["max"][r]), hi)
            qs = add_limbs(add_limbs(tuple(x[ra] for x in self.q), tuple(x[rb] for x in b.q)),
                           square_limbs(seam))
            self._put("frames", ra, c["frames"][ra] + bc["frames"][rb])
            self._put("bytes", ra, c["bytes"][ra] + bc["bytes"][rb])
            self._put("last_frame", ra, bc["last_frame"][rb])
            self._put("last_ns", ra, bc["last_ns"][rb])
            self._put("hints", ra, c["hints"][ra] | bc["hints"][rb])
            self._put("n", ra, an + bn + 1)
            self._put("min", ra, lo)
            self._put("max", ra, hi)
            for x, v in zip(self.q, qs, strict=True):
                x[ra] = v
        if n_new:
            self._reserve(n0 + n_new)
            at = slice(n0, n0 + n_new)
            for name in COLS:
                self._put(name, at, bc[name][new])
            for x, y in zip(self.q, b.q, strict=True):
                x[at] = y[new]
            self.n += n_new
            self._index.add(b.kb[new], b.hashes[new])
        return Joined(pos, old, seam)

    def table(self, last: bool = False) -> ScopeTable:
        """The table so far, as a copy (later `add`s do not change it); `last`: the columns
        themselves, without a copy, and no `add` after it."""
        kb, h = self._index.kb, self._index.h
        idx = KeyIndex(kb, h) if last else KeyIndex(kb.copy(), h.copy())
        cols = {k: v[:self.n] if last else v[:self.n].copy() for k, v in self.cols.items()}
        q = tuple(x[:self.n] if last else x[:self.n].copy() for x in self.q)
        if last:
            self._done = True
        return ScopeTable(idx.kb, cols, q, None, self.text, idx)

    def _put(self, name: str, rows: np.ndarray | slice, values: np.ndarray) -> None:
        if values.dtype == object and self.cols[name].dtype != object:
            self.cols[name] = self.cols[name].astype(object)  # an IAT beyond int64
        self.cols[name][rows] = values

    def _reserve(self, rows: int) -> None:
        room = len(self.q[0])
        if rows <= room:
            return
        room = max(rows, 2 * room, 1024)

        def grown(v: np.ndarray) -> np.ndarray:
            out = np.zeros(room, v.dtype)
            out[:self.n] = v[:self.n]
            return out
        self.cols = {k: grown(v) for k, v in self.cols.items()}
        self.q = tuple(grown(x) for x in self.q)
