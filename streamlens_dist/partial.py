"""Partial statistics: the monoid that makes results independent of chunking (STYLE §7).

A `Partial` covers a contiguous run of chunks. Per flow and per (flow, frame type) it holds
`Stats`: frames, bytes, first/last frame and timestamp, and over the IATs *inside* the run:
count n, sum S, sum of squares Q (exact), min and max. `combine(a, b)` with `a` before `b`
adds the one IAT that spans the seam (b.first_ns - a.last_ns) per scope. Combining is
associative but not commutative: reductions keep chunk order.

Flows and frame types are held as columns (scopetable.ScopeTable), which is how chunks,
the wire and combine carry them. The per-frame form below (`new_stats`, `add_iat`, `keep_top`:
a dict of stats lists per scope) is the definition they are tested against; a Partial built
that way is turned into tables by `flow_table` / `type_table`.

The outlier pass needs each seam IAT again, at the chunk where it ends: the client's fold
(reduction.py) gives each chunk its `Before`, the seam IATs of its own scopes. `Prefix` (the
last timestamp per scope of everything before a chunk) and `before` are its keyed
definition, which the tests hold the fold to.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from . import scopetable, seqstate, series
from .dissect.names import hint_bits
from .flowkeys import type_text
from .gcpause import without_gc
from .scopetable import ScopeTable, ScopeValues
from .series import HIST_VALUES, SERIES_VALUES, Binned
from .settings import DEFAULT_BIN_NS

FlowKey = tuple[str, str, str]  # (src, dst, kind)
TypeKey = tuple[FlowKey, str]  # (flow, frame type)
# (flow, protocol, id1, id2, id3, id4): a protocol stream inside a flow (docs/STREAMS.md)
StreamKey = tuple[FlowKey, str, int, int, int, int]
SyncKey = tuple[FlowKey, int, int, int]  # PTP (flow, domain, clock identity, port)
MAX_UNDECODABLE_LISTED = 20
# Per scope, a chunk's partial keeps its largest in-chunk IATs (at least TOP_BASE, growing
# by one per TOP_PER in-chunk IATs, so that the usual rate of 3-sigma tails fits) and the
# largest IAT it dropped, so the outlier pass can usually answer without re-reading the chunk.
TOP_BASE, TOP_PER = 8, 64

# Stats are plain lists for speed on the per-frame hot path; index names:
FRAMES, BYTES, FIRST_FRAME, FIRST_NS, LAST_FRAME, LAST_NS, N, S, Q, MIN, MAX = range(11)


def new_stats(frame: int, ts: int, size: int) -> list:
    return [1, size, frame, ts, frame, ts, 0, 0, 0, None, None]


def add_iat(st: list, frame: int, ts: int, size: int) -> int:
    """Append a frame to a scope's stats; return its IAT."""
    iat = ts - st[LAST_NS]
    st[FRAMES] += 1
    st[BYTES] += size
    st[LAST_FRAME] = frame
    st[LAST_NS] = ts
    st[N] += 1
    st[S] += iat
    st[Q] += iat * iat
    if st[MIN] is None or iat < st[MIN]:
        st[MIN] = iat
    if st[MAX] is None or iat > st[MAX]:
        st[MAX] = iat
    return iat


def keep_top(tops: dict, key: object, iat: int, frame: int, ts: int) -> None:
    """Track a scope's largest in-chunk IATs as [min-heap of (iat, frame, ts), largest IAT
    dropped or None, IAT count]. Every IAT of the scope that is >= x is in the heap whenever
    the largest dropped IAT is below x."""
    top = tops.get(key)
    if top is None:
        tops[key] = [[(iat, frame, ts)], None, 1]
        return
    heap = top[0]
    top[2] += 1
    if len(heap) < TOP_BASE + top[2] // TOP_PER:
        heapq.heappush(heap, (iat, frame, ts))
        return
    if iat > heap[0][0]:
        iat = heapq.heapreplace(heap, (iat, frame, ts))[0]
    if top[1] is None or iat > top[1]:
        top[1] = iat


def merge_stats(a: list, b: list) -> tuple[list, int]:
    """Stats of a followed by b, and the seam IAT that joins them."""
    iat = b[FIRST_NS] - a[LAST_NS]
    lo = hi = iat  # MIN and MAX are None exactly when the side has no IAT
    for side in (a, b):
        x = side[MIN]
        if x is not None:
            if x < lo:
                lo = x
            if side[MAX] > hi:
                hi = side[MAX]
    return [a[FRAMES] + b[FRAMES], a[BYTES] + b[BYTES], a[FIRST_FRAME], a[FIRST_NS],
            b[LAST_FRAME], b[LAST_NS], a[N] + b[N] + 1, a[S] + b[S] + iat,
            a[Q] + b[Q] + iat * iat, lo, hi], iat


@dataclass
class Partial:
    """Statistics of chunks lo..hi (inclusive) of one capture."""

    lo: int = -1
    hi: int = -1
    frames: int = 0
    untimed: int = 0
    undecodable: int = 0
    undecodable_first: list[int] = field(default_factory=list)
    first_ns: int | None = None
    last_ns: int | None = None
    # ScopeTables, or (built frame by frame) dicts key -> stats list with `hints` and tops
    flows: ScopeTable | dict[FlowKey, list] = field(default_factory=dict)
    hints: dict[FlowKey, set[str]] = field(default_factory=dict)
    types: ScopeTable | dict[TypeKey, list] = field(default_factory=dict)
    # (flow, malformed-payload name) -> [frames, first frame]: payloads that were broken
    # but still classified, or that fell down the ladder (names in dissect/names.py)
    malformed: dict[tuple[FlowKey, str], list[int]] = field(default_factory=dict)
    # Protocol streams (docs/STREAMS.md): IAT stats over messages, and the state of
    # seqstate.py: sequence runs, counters, PTP pairing, grandmaster and TMATS changes
    streams: dict[StreamKey, list] = field(default_factory=dict)
    seq: dict[StreamKey, list] = field(default_factory=dict)
    counters: dict[StreamKey, list] = field(default_factory=dict)
    sync: dict[SyncKey, list] = field(default_factory=dict)
    # domain -> [[grandmaster, flow, frame, ts], ...]; flow -> [[frame, ts, channel, text]]
    grandmasters: dict[int, list] = field(default_factory=dict)
    tmats: dict[FlowKey, list] = field(default_factory=dict)
    # Only in one-chunk partials (combine drops them): the largest in-chunk IATs per scope
    # (of flows and types: in their ScopeTables, or here in the per-frame form).
    flow_tops: dict[FlowKey, list] = field(default_factory=dict)
    type_tops: dict[TypeKey, list] = field(default_factory=dict)
    stream_tops: dict[StreamKey, list] = field(default_factory=dict)
    # Time-binned series and IAT histograms per flow and per (flow, frame type)
    # (docs/SERIES.md): scope i is the i-th key of `flows` / `types`
    bin_ns: int = DEFAULT_BIN_NS
    flow_series: Binned = field(default_factory=lambda: Binned.empty(SERIES_VALUES))
    type_series: Binned = field(default_factory=lambda: Binned.empty(SERIES_VALUES))
    flow_hist: Binned = field(default_factory=lambda: Binned.empty(HIST_VALUES))
    type_hist: Binned = field(default_factory=lambda: Binned.empty(HIST_VALUES))
    # Diagnostics only (worker seconds per sub-phase); never part of any result.
    profile: dict[str, float] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Partial:
        return cls()

    def is_empty(self) -> bool:
        return self.lo < 0

    def flow_table(self) -> ScopeTable:
        if isinstance(self.flows, ScopeTable):
            return self.flows
        return ScopeTable.from_stats(
            self.flows, {k: hint_bits(tuple(v)) for k, v in self.hints.items()},
            self.flow_tops)

    def type_table(self) -> ScopeTable:
        if isinstance(self.types, ScopeTable):
            return self.types
        return ScopeTable.from_stats(self.types, None, self.type_tops, types=True)


def _fold_scopes(out: dict, b: dict) -> None:
    # Stats lists are never modified once a chunk's partial is built (merge_stats makes new
    # ones), so `out` may share them with the partials folded into it.
    for k, sb in b.items():
        sa = out.get(k)
        out[k] = sb if sa is None else merge_stats(sa, sb)[0]


def _fold_with(out: dict, b: dict, merge) -> None:  # noqa: ANN001 - a two-argument merge
    for k, vb in b.items():
        va = out.get(k)
        out[k] = vb if va is None else merge(va, vb)


def owned_rest(a: Partial) -> Partial:
    """`a` without its flows, frame types, series, histograms and tops, its dicts copied: a
    partial that `fold_rest` may fold later partials into (`a` is not modified)."""
    return Partial(
        lo=a.lo, hi=a.hi, frames=a.frames, untimed=a.untimed, undecodable=a.undecodable,
        undecodable_first=list(a.undecodable_first), first_ns=a.first_ns, last_ns=a.last_ns,
        malformed={k: list(v) for k, v in a.malformed.items()}, streams=dict(a.streams),
        seq=dict(a.seq), counters=dict(a.counters), sync=dict(a.sync),
        grandmasters=dict(a.grandmasters), tmats=dict(a.tmats), bin_ns=a.bin_ns,
        profile=dict(a.profile))


def fold_rest(out: Partial, b: Partial) -> None:
    """Folds all of `b` but its flows, frame types, series and histograms into `out` (made
    by `owned_rest` or `Partial.empty()`), in place: what `combine` does with those fields."""
    if out.is_empty():
        out.lo, out.bin_ns = b.lo, b.bin_ns
    elif b.lo != out.hi + 1:
        raise ValueError(f"partials must be combined in chunk order: {out.lo}..{out.hi} then "
                         f"{b.lo}..{b.hi}")
    elif out.bin_ns != b.bin_ns:
        raise ValueError(f"partials of different series bins: {out.bin_ns} and {b.bin_ns} ns")
    out.hi = b.hi
    out.frames += b.frames
    out.untimed += b.untimed
    out.undecodable += b.undecodable
    room = MAX_UNDECODABLE_LISTED - len(out.undecodable_first)
    out.undecodable_first += b.undecodable_first[:max(room, 0)]
    if out.first_ns is None:
        out.first_ns = b.first_ns
    if b.last_ns is not None:
        out.last_ns = b.last_ns
    for k, (count, first) in b.malformed.items():
        if k in out.malformed:
            out.malformed[k][0] += count  # the earlier first frame stays
        else:
            out.malformed[k] = [count, first]
    for k, v in b.profile.items():
        out.profile[k] = out.profile.get(k, 0.0) + v
    _fold_scopes(out.streams, b.streams)
    _fold_with(out.seq, b.seq, seqstate.merge_seq)
    _fold_with(out.counters, b.counters, seqstate.merge_counters)
    _fold_with(out.sync, b.sync, seqstate.merge_sync)
    _fold_with(out.grandmasters, b.grandmasters, lambda x, y: seqstate.merge_changes(x, y, 0))
    _fold_with(out.tmats, b.tmats, lambda x, y: seqstate.merge_changes(x, y, 3))


def binned_rows(b: ScopeTable, joined: scopetable.Joined, b_series: Binned, b_hist: Binned,
                bin_ns: int) -> tuple[list[Binned], list[Binned]]:
    """The rows that table `b`'s scopes add to the series and histograms they were joined to
    (renumbered by `joined`, which also gives the seam IATs): ([series], [histograms])."""
    index, old = joined.index, joined.old
    seam_ser, seam_hist = series.seam_rows(index[old], b.cols["first_ns"][old], joined.seam,
                                           bin_ns)
    return ([series.renumber(b_series, index, False), seam_ser],
            [series.renumber(b_hist, index, False), seam_hist])


@without_gc
def combine(a: Partial, b: Partial) -> Partial:
    """The partial of `a` followed by `b` (neither is modified)."""
    if a.is_empty():
        return b
    if b.is_empty():
        return a
    out = owned_rest(a)
    fold_rest(out, b)
    fb, tb = b.flow_table(), b.type_table()
    out.flows, fj = scopetable.combine(a.flow_table(), fb)
    out.types, tj = scopetable.combine(a.type_table(), tb)
    for table, joined, names in ((fb, fj, ("flow_series", "flow_hist")),
                                 (tb, tj, ("type_series", "type_hist"))):
        ser, hist = (getattr(b, n) for n in names)
        rows = binned_rows(table, joined, ser, hist, a.bin_ns)
        for name, values, (right, seam) in zip(names, (SERIES_VALUES, HIST_VALUES), rows,
                                               strict=True):
            setattr(out, name, series.join(getattr(a, name), right, seam, values))
    return out


def referenced_flows(p: Partial) -> list[FlowKey]:
    """The flows that `p`'s protocol streams, sequence state, TMATS, grandmasters and
    malformed counts refer to (each once)."""
    keys = {k[0] for k in p.streams} | {k[0] for k in p.seq} | {k[0] for k in p.sync}
    keys |= set(p.tmats) | {k for k, _name in p.malformed}
    keys |= {row[1] for rows in p.grandmasters.values() for row in rows}
    return list(keys)


def outlier_view(p: Partial) -> Partial:
    """What the outlier pass reads of a chunk's partial: keys, IAT counts and maxima, first
    frames and timestamps, kept IATs, protocol streams. The series and histograms are left
    out and the other statistics of flows and frame types zeroed (constant columns take a
    few bytes on the wire): what the serial path keeps of each chunk until pass 2."""
    def view(t: ScopeTable) -> ScopeTable:
        cols = dict(t.cols)
        for c in ("frames", "bytes", "last_frame", "last_ns", "min", "hints"):
            cols[c] = np.zeros(len(t), np.int64)
        zero = np.zeros(len(t), np.uint64)
        return ScopeTable(t.kb, cols, (zero, zero, zero), t.tops, t.text)
    return dataclasses.replace(
        p, flows=view(p.flow_table()), types=view(p.type_table()), hints={}, flow_tops={},
        type_tops={}, flow_series=Binned.empty(SERIES_VALUES),
        type_series=Binned.empty(SERIES_VALUES), flow_hist=Binned.empty(HIST_VALUES),
        type_hist=Binned.empty(HIST_VALUES))


def combine_all(parts: Iterable[Partial]) -> Partial:
    """The partials in order, combined as an ordered pairwise tree grown as they come (the
    oracle that the client's in-place fold, reduction.Reducer, is tested against): a stack
    holds the roots of complete subtrees of 2^k partials, so at most log2(n) partials are
    held, and each scope's rows are combined O(log n) times, never once per partial after
    them."""
    stack: list[tuple[Partial, int]] = []
    for node in parts:
        size = 1
        while stack and stack[-1][1] == size:
            left, _ = stack.pop()
            node, size = combine(left, node), 2 * size
        stack.append((node, size))
    # the roots shrink left to right: folding from the right merges the largest one once
    merged = Partial.empty()
    for node, _ in reversed(stack):
        merged = combine(node, merged)
    return merged


@dataclass
class Prefix:
    """Last timestamp per scope over all chunks before some chunk: the keyed definition of
    what `Before` holds for one chunk (`before`), which the tests hold reduction.py to."""

    flows: ScopeValues = field(default_factory=ScopeValues)
    types: ScopeValues = field(default_factory=lambda: ScopeValues(text=type_text))
    streams: dict[StreamKey, int] = field(default_factory=dict)


@without_gc
def advance(prefix: Prefix, part: Partial) -> Prefix:
    """The prefix after `part` (which directly follows the chunks `prefix` covers)."""
    streams = dict(prefix.streams)
    streams.update((k, st[LAST_NS]) for k, st in part.streams.items())
    return Prefix(prefix.flows.advance(part.flow_table()),
                  prefix.types.advance(part.type_table()), streams)


@dataclass
class Before:
    """What the outlier pass of one chunk needs of the chunks before it: for each row of the
    chunk's flow and type tables whose scope came before (`*_has`), the IAT from that scope's
    last frame before the chunk to its first frame in it (`flows`/`types`, aligned with the
    rows, 0 where not `*_has`; dtype object where one passes int64); and the last timestamp
    of each of its protocol streams that came before."""

    flows: np.ndarray
    flows_has: np.ndarray
    types: np.ndarray
    types_has: np.ndarray
    streams: dict[StreamKey, int]

    @classmethod
    def nothing(cls, part: Partial) -> Before:
        """A chunk with nothing before it."""
        nf, nt = len(part.flow_table()), len(part.type_table())
        return cls(np.zeros(nf, np.int64), np.zeros(nf, bool), np.zeros(nt, np.int64),
                   np.zeros(nt, bool), {})


def aligned_seams(rows: int, has: np.ndarray, seam: np.ndarray) -> np.ndarray:
    """The seam IATs of the rows marked `has` (in row order) spread over all `rows`, 0 at the
    others."""
    out = np.zeros(rows, object if seam.dtype == object else np.int64)
    out[has] = seam
    return out


def before(prefix: Prefix, part: Partial) -> Before:
    """What `part`'s outlier pass needs of the chunks `prefix` covers (the chunks before it)."""
    def seams(values: ScopeValues, t: ScopeTable) -> tuple[np.ndarray, np.ndarray]:
        r = values.keyidx.rows_of(t.kb, t.hashes)
        has = r >= 0
        iat = scopetable.seam_iats(values.values, r[has], t.cols["first_ns"][has])
        return aligned_seams(len(t), has, iat), has
    flows, flows_has = seams(prefix.flows, part.flow_table())
    types, types_has = seams(prefix.types, part.type_table())
    return Before(flows, flows_has, types, types_has,
                  {k: prefix.streams[k] for k in part.streams if k in prefix.streams})


def table_seams(seam: np.ndarray, has: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of a chunk's table whose scope came before, the IAT that ends at each one's
    first frame), from its `Before` columns."""
    rows = np.flatnonzero(has)
    return rows, seam[rows]


def seam_iats(prefix: Prefix, part: Partial) -> tuple[list, list, list]:
    """The IATs that end at the first frame (message) of each scope of `part`:
    ([(flow key, frame, ts, iat)], [(type key, ...)], [(stream key, ...)])."""
    b = before(prefix, part)

    def listed(last: np.ndarray, has: np.ndarray, t: ScopeTable) -> list:
        rows, iat = table_seams(last, has)
        return list(zip([t.key_list[r] for r in rows.tolist()],
                        t.cols["first_frame"][rows].tolist(), t.cols["first_ns"][rows].tolist(),
                        iat.tolist(), strict=True))
    return (listed(b.flows, b.flows_has, part.flow_table()),
            listed(b.types, b.types_has, part.type_table()),
            stream_seams(b.streams, part.streams))


def stream_seams(last: dict[StreamKey, int], streams: dict[StreamKey, list]) -> list:
    """[(stream key, frame, ts, iat)] of the IATs that end at each stream's first message."""
    return [(k, st[FIRST_FRAME], st[FIRST_NS], st[FIRST_NS] - last[k])
            for k, st in streams.items() if k in last]
