"""The client's in-order fold (reduction.Reducer: growing tables folded in place, series rows
summed as they outgrow their sum) gives what the pairwise combine gives, field by field, on
real and generated captures cut anywhere; the growing table alone against the per-frame
definition, with colliding hashes and IATs beyond int64; and the series sum at every size of
its lazy buffer."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from conftest import CAPTURES
from hypothesis import given, settings
from hypothesis import strategies as st
from test_scopetable import build, frames_st, pieces

from streamlens_dist import flowkeys, scopetable, series
from streamlens_dist.capture.split import plan_capture
from streamlens_dist.chunktask import analyze_chunk
from streamlens_dist.partial import Partial, combine_all
from streamlens_dist.reduction import Reducer
from streamlens_dist.scopetable import GrowingTable
from streamlens_dist.settings import Settings
from streamlens_dist.synth import flight_test_capture
from streamlens_dist.wire import partial_from_bytes, partial_to_bytes

BINNED = {"flow_series": series.SERIES_VALUES, "type_series": series.SERIES_VALUES,
          "flow_hist": series.HIST_VALUES, "type_hist": series.HIST_VALUES}


def _fields(p: Partial) -> dict:
    """Every result-bearing field of a partial, tables as dicts, series canonical."""
    out = {}
    for f in dataclasses.fields(Partial):
        v = getattr(p, f.name)
        if f.name in ("flows", "types"):
            v = dict(v)
        elif f.name in BINNED:
            v = {c: x.tolist() for c, x in series.canonical(v, BINNED[f.name]).cols.items()}
        elif f.name in ("profile", "hints", "flow_tops", "type_tops", "stream_tops"):
            # worker seconds (diagnostics); a one-chunk partial's per-frame leftovers (the
            # tables carry the hint bits; combine drops tops)
            continue
        out[f.name] = v
    return out


def _fold(parts: list[Partial]) -> Reducer:
    r = Reducer()
    for p in parts:
        r.add(p)
    return r


@pytest.mark.parametrize("capture", ["generated", "mixed_many_protocols_vlan_ipv6.pcap",
                                     "ptpv2_udp_ipv4_multicast.pcap", "inetx_stream_ca_8hz.pcap"])
def test_fold_equals_the_pairwise_combine(tmp_path, monkeypatch, capture: str) -> None:
    path = CAPTURES / capture
    if capture == "generated":  # CH10, PTP, IENA, iNET-X streams, TMATS, grandmasters
        path = tmp_path / "ft.pcap"
        flight_test_capture(path, 5000, seed=11)
    rng = random.Random(capture)
    size = path.stat().st_size
    for chunk in (size // 3 + 1, max(4096, size // rng.randint(8, 40))):
        parts = [partial_from_bytes(analyze_chunk(c, Settings()))
                 for c in plan_capture([path], chunk).chunks]
        want = _fields(combine_all(parts))
        assert _fields(_fold(parts).merged()) == want
        # series summed while folding at every few rows, not only at the end
        monkeypatch.setattr(series, "LAZY_ROWS", 3)
        assert _fields(_fold(parts).merged()) == want
        monkeypatch.undo()


def test_fold_refuses_chunks_out_of_order() -> None:
    parts = pieces([(0, 0, 10, 60), (1, 1, 20, 60), (0, 0, 30, 60)], [1, 2])
    r = Reducer()
    r.add(parts[0])
    with pytest.raises(ValueError, match="chunk order"):
        r.add(parts[2])
    with pytest.raises(ValueError, match="empty"):
        r.add(Partial.empty())
    r.add(parts[1])
    merged = r.merged()  # the fold's end: its tables are handed over, not copied
    with pytest.raises(RuntimeError, match="fold has ended"):
        r.add(parts[2])
    assert dict(merged.flows) == dict(combine_all(parts[:2]).flows)


@given(frames_st, st.lists(st.integers(0, 200), max_size=12), st.booleans())
@settings(max_examples=120, deadline=None)
def test_growing_table_folds_like_the_definition(frames: list, cuts: list[int],
                                                 collide: bool) -> None:
    """Chunk tables folded in place: the whole's stats in first-appearance order, each added
    row's last timestamp before it, every key found; with every hash in four values too."""
    whole = build(frames, 0, 1)
    parts = pieces(frames, cuts)
    real = flowkeys.key_hash
    with pytest.MonkeyPatch.context() as mp:
        if collide:
            mp.setattr(scopetable, "key_hash", lambda kb: real(kb) % np.uint64(4))
            mp.setattr(flowkeys, "key_hash", lambda kb: real(kb) % np.uint64(4))
        g, last_seen = GrowingTable(), {}
        for p in parts:
            t = partial_from_bytes(partial_to_bytes(p)).flow_table()
            joined = g.add(t)
            keys = list(t)
            assert [keys[r] for r in np.flatnonzero(joined.old).tolist()] == \
                [k for k in keys if k in last_seen]
            assert joined.seam.tolist() == [t[k][3] - last_seen[k] for k in keys
                                            if k in last_seen]
            last_seen.update((k, t[k][5]) for k in keys)
        table = g.table()
        assert list(table) == list(whole.flows)
        assert dict(table) == dict(whole.flows)
        assert g.rows_of(table).tolist() == list(range(len(table)))
        g.add(table)  # the copy it gave is not changed by folding on
        assert dict(table) == dict(whole.flows)


def test_growing_table_keeps_room_and_finds_every_key() -> None:
    """Hundreds of chunks of new and old keys, through many doublings of the columns and the
    hash table: rows by first appearance, every key found, no other."""
    rng = np.random.default_rng(7)
    g, seen = GrowingTable(), []
    for c in range(300):
        ids = np.unique(rng.integers(0, 40 * (c + 1), 50))
        flows = {(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", "10.0.0.1", "ip4"):
                 [1, 60, c, c, c, c, 0, 0, 0, None, None] for i in ids.tolist()}
        t = scopetable.ScopeTable.from_stats(flows)
        joined = g.add(t)
        new = [k for k, old in zip(flows, joined.old.tolist(), strict=True) if not old]
        seen += new
        assert joined.index[~joined.old].tolist() == list(range(len(seen) - len(new),
                                                                 len(seen)))
        assert len(g) == len(seen)
    table = g.table()
    assert list(table) == seen
    assert g.rows_of(table).tolist() == list(range(len(seen)))
    others = scopetable.ScopeTable.from_stats(
        {(f"10.9.{i // 256}.{i % 256}", "10.0.0.1", "ip4"): [1, 60, 0, 0, 0, 0, 0, 0, 0, None, None]
         for i in range(500)})
    assert (g.rows_of(others) == -1).all()


@given(st.lists(st.lists(st.tuples(st.integers(0, 30), st.integers(-3, 3),
                                    st.integers(0, 5)), max_size=20), max_size=12),
       st.sampled_from([0, 1, 5, 1 << 18]))
@settings(max_examples=80, deadline=None)
def test_summed_rows_equal_one_merge(tables: list, lazy_rows: int) -> None:
    binned = [series.Binned({"scope": np.array([r[0] for r in t], np.int64),
                             "bin": np.array([r[1] for r in t], np.int64),
                             "count": np.array([r[2] for r in t], np.int64)})
              for t in tables]
    saved, series.LAZY_ROWS = series.LAZY_ROWS, lazy_rows
    try:
        s = series.Summed(series.HIST_VALUES)
        for b in binned:
            s.add([b])
        got = s.result()
    finally:
        series.LAZY_ROWS = saved
    want = series.merge(binned, series.HIST_VALUES)
    assert {c: v.tolist() for c, v in got.cols.items()} == \
        {c: v.tolist() for c, v in want.cols.items()}
