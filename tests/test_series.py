"""The IAT series and histograms (docs/SERIES.md) at the level of their parts: histogram
edges, the vectorised chunk pass against the Python one, merging pieces cut anywhere (with
negative times, backwards timestamps and sums of squares far above 2^63), and the per-frame
path of captures whose times pass 2^61 ns, against the single-process reference."""

from __future__ import annotations

import random

import numpy as np
import pytest
from chunking import as_dict, one_frame_plan, regroup, tables_for
from conftest import assert_tables_equal
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import HIST_EDGES, reference_analyze

from streamlens_dist import series
from streamlens_dist.partial import Partial, add_iat, combine_all, new_stats
from streamlens_dist.settings import Settings
from streamlens_dist.store import LAYOUT
from streamlens_dist.synth import random_records, write_pcap


def test_edges_are_the_exact_integer_ceilings() -> None:
    assert list(series.EDGES) == HIST_EDGES
    assert series.EDGES[0] == 1000 and series.EDGES[10] == 10_000 and series.EDGES[90] == 10**12
    assert series.EDGES[1] == 1259  # 1000 * 10^0.1 = 1258.925...
    for k, e in enumerate(series.EDGES):
        assert series.hist_bin(e) == k + 1  # an IAT on an edge is in the bin above it
        assert series.hist_bin(e - 1) == k
    assert series.hist_bin(-5) == 0 and series.hist_bin(10**15) == series.HIST_BINS - 1


def _table(t: series.Binned) -> dict:
    return {c: v.tolist() for c, v in t.cols.items()}


frames_strategy = st.lists(
    st.tuples(st.integers(0, 4), st.integers(-(1 << 61), 1 << 61), st.integers(0, 9000)),
    min_size=0, max_size=60)


def _near(draw_list: list, spread: int) -> list:
    """Mostly close timestamps (same bins, small IATs) with some far ones."""
    out, t = [], 0
    for s, far, z in draw_list:
        t = far if far % 7 == 0 else t + far % spread - spread // 4
        t = max(-(1 << 61), min(1 << 61, t))
        out.append((s, t, z))
    return out


@settings(max_examples=300, deadline=None)
@given(raw=frames_strategy, spread=st.sampled_from([10, 5000, 3 * 10**9, 10**15]),
       bin_ns=st.sampled_from([1, 1000, 10**9, 10**12]))
def test_compiled_and_numpy_chunk_equal_python(raw, spread, bin_ns) -> None:
    rows = _near(raw, spread)
    # scope numbers by first appearance, as the partials number their dict keys
    order: dict[int, int] = {}
    scope = [order.setdefault(s, len(order)) for s, _, _ in rows]
    ts = [t for _, t, _ in rows]
    size = [z for _, _, z in rows]
    args = (np.array(scope, np.int64), np.array(ts, np.int64), np.array(size, np.int64), bin_ns)
    fast = series.chunk_series(*args)
    numpy_ = series.chunk_series(*args, force_numpy=True)
    slow = series.python_series(scope, ts, size, bin_ns)
    for a, b, c in zip(fast, numpy_, slow, strict=True):
        assert _table(a) == _table(b) == _table(c)
    # the store's hi/lo is the exact sum of squares
    sq: dict[tuple[int, int], int] = {}
    last: dict[int, int] = {}
    for s, t in zip(scope, ts, strict=True):
        if s in last:
            key = (s, t // bin_ns)
            sq[key] = sq.get(key, 0) + (t - last[s]) ** 2
        last[s] = t
    c = fast[0].cols
    for s, b, hi, lo in zip(c["scope"], c["bin"], c["qh"], c["ql"], strict=True):
        assert series.square(hi, lo) == sq.get((int(s), int(b)), 0)
        assert 0 <= lo < 1 << 62


def _partial(index: int, rows: list, bin_ns: int) -> Partial:
    p = Partial(lo=index, hi=index, frames=len(rows), bin_ns=bin_ns)
    for frame, (s, t, z) in rows:
        if s in p.flows:
            add_iat(p.flows[s], frame, t, z)
        else:
            p.flows[s] = new_stats(frame, t, z)
    pos = {k: i for i, k in enumerate(p.flows)}
    p.flow_series, p.flow_hist = series.chunk_series(
        np.array([pos[s] for _, (s, _, _) in rows], np.int64),
        np.array([t for _, (_, t, _) in rows], np.int64),
        np.array([z for _, (_, _, z) in rows], np.int64), bin_ns)
    return p


@settings(max_examples=300, deadline=None)
@given(raw=frames_strategy, spread=st.sampled_from([10, 5000, 3 * 10**9, 10**15]),
       bin_ns=st.sampled_from([1, 1000, 10**9]), cuts=st.lists(st.integers(0, 60), max_size=8))
def test_merged_pieces_equal_the_whole(raw, spread, bin_ns, cuts) -> None:
    rows = list(enumerate(_near(raw, spread)))
    bounds = sorted({0, len(rows), *(c for c in cuts if c <= len(rows))})
    parts = [_partial(i, rows[a:b], bin_ns) for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))]
    whole = _partial(0, rows, bin_ns)
    # combines join rows lazily below LAZY_ROWS and merge them above: both must agree
    for lazy_rows in (series.LAZY_ROWS, 0, 7):
        saved, series.LAZY_ROWS = series.LAZY_ROWS, lazy_rows
        try:
            merged = combine_all(parts)
        finally:
            series.LAZY_ROWS = saved
        assert list(merged.flows) == list(whole.flows)
        assert _table(series.canonical(merged.flow_series, series.SERIES_VALUES)) == \
            _table(whole.flow_series)
        assert _table(series.canonical(merged.flow_hist, series.HIST_VALUES)) == \
            _table(whole.flow_hist)
    assert _table(series.canonical(whole.flow_series, series.SERIES_VALUES)) == \
        _table(whole.flow_series)  # a chunk's tables are canonical already


def test_times_beyond_2_61_take_the_per_frame_path(tmp_path) -> None:
    """pcap seconds after 2043 pass 2^61 ns: chunks there use Python ints for everything."""
    rng = random.Random(5)
    base = (1 << 61) + 10**15
    records = [(base + ts % 10**13, f) for ts, f in random_records(rng, 150)]
    path = tmp_path / "late.pcap"
    write_pcap(path, records)
    singles = one_frame_plan([path])
    ref = reference_analyze([path], bin_ns=10**6)
    assert len(ref["flow_series"]["flow"]) > 5
    whole = as_dict(tables_for(regroup(singles, []), bin_ns=10**6))
    assert_tables_equal(whole, {t: ref[t] for t in LAYOUT})
    cut = as_dict(tables_for(regroup(singles, [7, 40, 41, 90]), bin_ns=10**6))
    assert_tables_equal(cut, whole)


def test_times_swinging_between_centuries_equal_the_reference(tmp_path) -> None:
    """pcap seconds alternating between 1970 and 2106 within flows (issue 19's reproducer
    made the per-frame path's series overflow): every table, for every chunking, equals the
    reference, whose bins mark the sums beyond int64 the same way."""
    rng = random.Random(9)
    frames = [f for _ts, f in random_records(rng, 16)]
    records = [((5 if i % 2 else 0xFFFFFFFF) * 10**9 + i * 1000, f)
               for i, f in enumerate(frames)]
    path = tmp_path / "swing.pcap"
    write_pcap(path, records)
    singles = one_frame_plan([path])
    ref = reference_analyze([path], bin_ns=10**9)
    assert series.SUM_LOST in ref["flow_series"]["iat_sumsq_hi"]
    for cuts in ([], [3, 4, 11], list(range(1, 16, 2))):
        got = as_dict(tables_for(regroup(singles, cuts), bin_ns=10**9))
        assert_tables_equal(got, {t: ref[t] for t in LAYOUT}, where=str(cuts))


@pytest.mark.parametrize("text,ns", [("1s", 10**9), ("250ms", 250 * 10**6), ("5min", 300 * 10**9),
                                     ("1000", 1000), (7, 7), ("2us", 2000)])
def test_bin_widths(text, ns) -> None:
    assert Settings(bin_ns=text).bin_ns == ns


@pytest.mark.parametrize("bad", ["0s", "-1s", "1 fortnight", "", "1.5s", 0, "700000h"])
def test_bad_bin_widths(bad) -> None:
    from streamlens_dist.errors import SettingsError

    with pytest.raises(SettingsError, match="time bin"):
        Settings(bin_ns=bad)


def test_times_back_and_forth_between_bins() -> None:
    """A scope whose frames alternate between two bins needs a row per frame in the compiled
    pass (more than its first guess of rows): same tables as Python's."""
    ts = [(i % 2) * 1000 + i for i in range(300)]
    scope = [i % 3 // 2 for i in range(300)]
    size = list(range(300))
    for force in (False, True):
        fast = series.chunk_series(np.array(scope), np.array(ts), np.array(size), 1000,
                                   force_numpy=force)
        slow = series.python_series(scope, ts, size, 1000)
        assert [_table(t) for t in fast] == [_table(t) for t in slow]
    assert len(slow[0]) == 4  # 2 scopes x 2 bins


def test_compiled_pass_is_used() -> None:
    """The compiled pass is built (CI builds it; numpy is only the fallback)."""
    assert series._scopes is not None and hasattr(series._scopes, "series")


def test_seam_rows_vectorised_and_python_agree() -> None:
    """Seam IATs up to 2^63 - 1 (times within +-2^62): the limb squares below 2^62, Python
    ints above (where squares pass 2^124: LOST); rows sorted by scope whatever the order."""
    scopes = np.array([4, 1, 3], np.int64)
    ts = np.array([-(10**9) - 1, 5 * 10**9, 7], np.int64)
    for iats in ([3, 10**12, -(1 << 61)], [(1 << 62) + 5, 2, (1 << 63) - 1]):
        ser, hist = series.seam_rows(scopes, ts, np.array(iats, np.int64), 10**9)
        ref_ser, ref_hist = series._python_seam_rows(scopes.tolist(), ts.tolist(), iats, 10**9)
        assert _table(ser) == _table(ref_ser) and _table(hist) == _table(ref_hist)
        assert ser.cols["scope"].tolist() == [1, 3, 4]
        assert ser.cols["bin"].tolist() == [5, 0, -2]
        want = [x * x if x * x < series.Q_LIMIT else None for x in (iats[1], iats[2], iats[0])]
        got = [series.square(h, lo) if h != series.LOST else None
               for h, lo in zip(ser.cols["qh"], ser.cols["ql"], strict=True)]
        assert got == want


def test_sums_of_squares_past_2_124_are_marked_lost() -> None:
    """Times that jump by a century within one scope (damaged captures): the bin's sum of
    squares cannot be stored, so it is marked LOST (-1, -1) by every path alike, and stays so
    when merged; counts, sums, min and max stay exact."""
    t = 6 * (1 << 61) // 10  # IATs of 2t = 1.2 * 2^61 ns (88 years): three pass 2^124
    ts = [-t, t, -t, t, -t, t, -t, 5, 9]
    scope = [0] * 7 + [1, 1]
    size = [1] * 9
    ref = series.python_series(scope, ts, size, 1000)
    for force in (False, True):
        got = series.chunk_series(np.array(scope), np.array(ts), np.array(size), 1000,
                                  force_numpy=force)
        assert [_table(t) for t in got] == [_table(t) for t in ref]
    c = ref[0].cols
    assert c["qh"].tolist() == [-1, -1, 0] and c["ql"].tolist() == [-1, -1, 16]
    assert c["s"].tolist() == [-6 * t, 6 * t, 4] and c["n"].tolist() == [3, 3, 1]
    # such an IAT alone is kept, two too; three in one bin (seams of three merges) are lost
    big = 2 * t
    seam = series.seam_rows(np.array([0]), np.array([0]), np.array([big]), 1000)[0]
    assert series.square(seam.cols["qh"][0], seam.cols["ql"][0]) == big * big
    merged = series.merge([seam, seam, seam], series.SERIES_VALUES)
    assert merged.cols["qh"].tolist() == [series.LOST] and merged.cols["n"].tolist() == [3]
    # a fourth: the sum (4.8 * 2^61) passes int64 too (it used to wrap around silently)
    four = series.merge([merged, seam], series.SERIES_VALUES)
    assert four.cols["qh"].tolist() == [series.SUM_LOST] and four.cols["n"].tolist() == [4]
    two = series.merge([seam, seam], series.SERIES_VALUES)
    assert series.square(two.cols["qh"][0], two.cols["ql"][0]) == 2 * big * big


def test_sums_past_int64_are_marked_sum_lost() -> None:
    """Times that swing between two centuries within one scope: a bin's IAT sum passes int64.
    Every path marks it SUM_LOST (-2 in both square columns, INT64_MIN as the sum), merging
    keeps the mark, and count, min and max stay exact."""
    t = (1 << 61) - 1  # the widest times the vectorised paths take: IATs of 2t ~ 2^62
    ts = [-t, t] * 4 + [5, 9]
    scope = [0] * 8 + [1, 1]
    size = [1] * 10
    ref = series.python_series(scope, ts, size, 1000)
    for force in (False, True):
        got = series.chunk_series(np.array(scope), np.array(ts), np.array(size), 1000,
                                  force_numpy=force)
        assert [_table(x) for x in got] == [_table(x) for x in ref]
    c = ref[0].cols
    i64_min = -(1 << 63)
    assert c["qh"].tolist() == [series.SUM_LOST] * 2 + [0]
    assert c["ql"].tolist() == [series.SUM_LOST] * 2 + [16]
    assert c["s"].tolist() == [i64_min, i64_min, 4] and c["n"].tolist() == [3, 4, 1]
    assert c["mn"].tolist() == [-2 * t, 2 * t, 4] and c["mx"].tolist() == [-2 * t, 2 * t, 4]
    # one such IAT fits; two fit; three in one bin (seams of three merges) do not
    big = 2 * t
    seam = series.seam_rows(np.array([0]), np.array([0]), np.array([big]), 1000)[0]
    two = series.merge([seam, seam], series.SERIES_VALUES)
    assert two.cols["s"].tolist() == [2 * big] and two.cols["qh"].tolist() == [series.LOST]
    three = series.merge([two, seam], series.SERIES_VALUES)
    assert three.cols["s"].tolist() == [i64_min] and three.cols["n"].tolist() == [3]
    assert three.cols["qh"].tolist() == three.cols["ql"].tolist() == [series.SUM_LOST]
    # sticky: a lost bin plus a small IAT (which alone would bring the sum back in range)
    small = series.seam_rows(np.array([0]), np.array([0]), np.array([-big]), 1000)[0]
    back = series.merge([three, small], series.SERIES_VALUES)
    assert back.cols["qh"].tolist() == [series.SUM_LOST] and back.cols["n"].tolist() == [4]


def test_join_concatenates_below_lazy_rows_and_merges_above() -> None:
    """Rows of the pieces are kept side by side (summed later by `canonical`) while the
    result stays below LAZY_ROWS, whatever their bins; above it they are merged, so a
    partial's rows stay within LAZY_ROWS of its distinct keys."""
    def piece(bin_of: int, n: int = 100) -> series.Binned:
        scope = np.arange(n, dtype=np.int64) % 50
        ts = np.full(n, bin_of * 1000, np.int64) + np.arange(n)
        return series.chunk_series(scope, ts, np.ones(n, np.int64), 1000)[0]

    empty = series.Binned.empty(series.SERIES_VALUES)
    a, same, later = piece(3), piece(3), piece(4)
    for other in (same, later):
        lazy = series.join(a, other, empty, series.SERIES_VALUES)
        assert len(lazy) == len(a) + len(other)
        assert _table(series.canonical(lazy, series.SERIES_VALUES)) == \
            _table(series.merge([a, other], series.SERIES_VALUES))
    saved, series.LAZY_ROWS = series.LAZY_ROWS, 99
    try:
        assert len(series.join(a, same, empty, series.SERIES_VALUES)) == 50  # merged
        assert len(series.join(later, a, empty, series.SERIES_VALUES)) == 100
    finally:
        series.LAZY_ROWS = saved
