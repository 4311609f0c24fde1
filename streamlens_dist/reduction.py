"""The in-order fold of chunk partials, on the client: the merged partial, and for each chunk
what its outlier pass needs of the chunks before it (partial.Before).

The serial pipeline and the Dask one both run it: chunks are added in chunk order as their
pass 1 ends. The merge is the ordered tree of `combine_all`: a stack holds the roots of
complete subtrees of 2^k chunks (at most log2(n) partials, each scope's rows combined O(log n)
times). Those roots also cover exactly the chunks before the next one, so its `Before` (the
last timestamp of each of its scopes before it) is looked up in them, newest first: no table
of every flow is copied per chunk, and pass 2 needs no other task and no message of all
flows. A chunk's `Before` is 8 bytes and a flag per flow and frame type of that chunk.
"""

from __future__ import annotations

import numpy as np

from .partial import LAST_NS, Before, Partial, StreamKey, combine
from .scopetable import ScopeTable
from .wire import before_to_bytes


def _lasts(t: ScopeTable, roots: list[ScopeTable]) -> tuple[np.ndarray, np.ndarray]:
    """The last timestamp of each row's scope in the newest of `roots` that has it."""
    last, has = np.zeros(len(t), np.int64), np.zeros(len(t), bool)
    todo = np.argsort(t.hashes) if roots else np.zeros(0, np.int64)  # sorted once, not per root
    for root in reversed(roots):
        if not len(todo):
            break
        r = root.keyidx.rows_of(t.kb[todo], t.hashes[todo], presorted=True)
        hit = r >= 0
        last[todo[hit]] = root.cols["last_ns"][r[hit]]
        has[todo[hit]] = True
        todo = todo[~hit]
    return last, has


class Reducer:
    def __init__(self) -> None:
        self._stack: list[tuple[Partial, int]] = []
        self._streams: dict[StreamKey, int] = {}  # last timestamp of every stream so far
        self.before: list[bytes] = []  # per chunk added, its Before as wire bytes

    def add(self, part: Partial) -> None:
        """The next chunk's partial (chunk order: `part.lo` is one past the last one's)."""
        roots = [node for node, _ in self._stack]
        flows, flows_has = _lasts(part.flow_table(), [r.flow_table() for r in roots])
        types, types_has = _lasts(part.type_table(), [r.type_table() for r in roots])
        streams = {k: self._streams[k] for k in part.streams if k in self._streams}
        self.before.append(before_to_bytes(Before(flows, flows_has, types, types_has, streams)))
        self._streams.update((k, st[LAST_NS]) for k, st in part.streams.items())
        node, size = part, 1
        while self._stack and self._stack[-1][1] == size:
            left, _ = self._stack.pop()
            node, size = combine(left, node), 2 * size
        self._stack.append((node, size))

    def merged(self) -> Partial:
        # the roots shrink left to right: folding from the right merges the largest once
        merged = Partial.empty()
        for node, _ in reversed(self._stack):
            merged = combine(node, merged)
        return merged
