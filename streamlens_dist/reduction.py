"""The in-order fold of chunk partials, on the client: the merged partial, and for each chunk
what its outlier pass needs of the chunks before it (partial.Before).

The serial pipeline and the Dask one both run it: chunks are added in chunk order as their
pass 1 ends. The merge is the ordered tree of `combine_all` (each scope's rows combined
O(log n) times); the last timestamp of every scope so far (`Prefix`, columns of the flows seen)
gives each chunk its `Before` at once, so pass 2 needs no other task and no message of all
flows: a chunk's `Before` is 8 bytes and a flag per flow and frame type of that chunk.
"""

from __future__ import annotations

from .partial import Partial, Prefix, advance, before, combine
from .wire import before_to_bytes


class Reducer:
    def __init__(self) -> None:
        self._stack: list[tuple[Partial, int]] = []
        self._prefix = Prefix()
        self.before: list[bytes] = []  # per chunk added, its Before as wire bytes

    def add(self, part: Partial) -> None:
        """The next chunk's partial (chunk order: `part.lo` is one past the last one's)."""
        self.before.append(before_to_bytes(before(self._prefix, part)))
        self._prefix = advance(self._prefix, part)
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
