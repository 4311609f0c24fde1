"""The in-order fold of chunk partials, on the client: the merged partial, and for each chunk
what its outlier pass needs of the chunks before it (partial.Before).

The serial pipeline and the Dask one both run it: chunks are added in chunk order as their
pass 1 ends. Flows and frame types are folded into growing tables in place
(scopetable.GrowingTable), so a chunk costs about its own rows, not the table's; looking a
chunk's scopes up there gives both where its rows go and the IAT that joins each to the
chunks before, which is its `Before` (on the wire 4 bytes, where they fit, per flow and
frame type of that chunk that came before, and a bit per row): pass 2
needs no other task and no message of all flows. Series and histogram rows, renumbered to
the merged table's rows, are summed only when the unsummed ones outgrow the summed ones
(series.Summed), not at every chunk.
"""

from __future__ import annotations

import numpy as np

from .flowkeys import type_text
from .partial import LAST_NS, Before, Partial, aligned_seams, binned_rows, fold_rest
from .scopetable import GrowingTable, Joined
from .series import HIST_VALUES, SERIES_VALUES, Summed
from .wire import before_to_bytes


def _seams(joined: Joined) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the added table, the IAT that joins its scope to the chunks before it, and
    whether it has one."""
    return aligned_seams(len(joined.index), joined.old, joined.seam), joined.old


class Reducer:
    """The fold of one capture's chunk partials, added in chunk order (module docstring)."""

    def __init__(self) -> None:
        self._flows, self._types = GrowingTable(), GrowingTable(type_text)
        self._rest = Partial.empty()  # the other fields, folded in place
        self._binned = {"flow_series": Summed(SERIES_VALUES), "flow_hist": Summed(HIST_VALUES),
                        "type_series": Summed(SERIES_VALUES), "type_hist": Summed(HIST_VALUES)}
        self.before: list[bytes] = []  # per chunk added, its Before as wire bytes
        self._ended = False

    def add(self, part: Partial) -> None:
        """The next chunk's partial (chunk order: `part.lo` is one past the last one's)."""
        if part.is_empty():
            raise ValueError("an empty partial covers no chunk")
        if self._ended:
            raise RuntimeError("a chunk was added after merged(): the fold has ended")
        streams = self._rest.streams
        last_streams = {k: streams[k][LAST_NS] for k in part.streams if k in streams}
        fold_rest(self._rest, part)  # first: it checks the chunk order
        fb, tb = part.flow_table(), part.type_table()
        fj, tj = self._flows.add(fb), self._types.add(tb)
        self.before.append(before_to_bytes(Before(*_seams(fj), *_seams(tj), last_streams)))
        for table, joined, names in ((fb, fj, ("flow_series", "flow_hist")),
                                     (tb, tj, ("type_series", "type_hist"))):
            ser, hist = binned_rows(table, joined, getattr(part, names[0]),
                                    getattr(part, names[1]), part.bin_ns)
            self._binned[names[0]].add(ser)
            self._binned[names[1]].add(hist)

    def merged(self) -> Partial:
        """The partial of every chunk added (the fold's end: nothing can be added after)."""
        if self._rest.is_empty():
            return Partial.empty()
        self._ended = True
        out = self._rest  # handed over: nothing is folded into it any more
        out.flows, out.types = self._flows.table(last=True), self._types.table(last=True)
        for name, rows in self._binned.items():
            setattr(out, name, rows.result())
        return out
