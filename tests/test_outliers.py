"""The integer threshold must agree with the contract's inequality everywhere."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlens_dist.outliers import (
    deviation,
    deviations,
    is_outlier,
    mean_std,
    outlier_columns,
    threshold,
)

sigmas = st.sampled_from(["3", "2.5", "1", "0.1", "4.75", "10"]).map(Fraction)


@given(st.lists(st.integers(-10**12, 10**12), min_size=2, max_size=40), sigmas,
       st.lists(st.integers(-10**12, 10**13), min_size=1, max_size=10))
@settings(max_examples=300)
def test_threshold_matches_rule(iats: list[int], k: Fraction, probes: list[int]) -> None:
    n, s, q = len(iats), sum(iats), sum(x * x for x in iats)
    x_min = threshold(n, s, q, k)
    assert x_min is not None
    assert is_outlier(x_min, n, s, q, k)
    assert not is_outlier(x_min - 1, n, s, q, k)
    for x in [*iats, *probes]:
        assert is_outlier(x, n, s, q, k) == (x >= x_min)


def test_threshold_needs_two_iats() -> None:
    assert threshold(1, 5, 25, Fraction(3)) is None
    assert threshold(0, 0, 0, Fraction(3)) is None


def test_constant_scope_has_no_outliers_but_any_larger_value_is_one() -> None:
    # variance 0: the rule degenerates to x > mean
    assert threshold(4, 40, 400, Fraction(3)) == 11


def test_exact_boundary_not_outlier() -> None:
    # IATs [2, 2, 2, 6]: mean 3, var = (4*48 - 144)/12 = 4, std 2, so x = 6 lies exactly on
    # mean + 1.5*std: equality is not an outlier (the rule is strict)
    iats = [2, 2, 2, 6]
    n, s, q = 4, 12, 48
    assert q == sum(x * x for x in iats)
    assert not is_outlier(6, n, s, q, Fraction("1.5"))
    assert is_outlier(6, n, s, q, Fraction("1.49"))
    assert threshold(n, s, q, Fraction("1.5")) == 7


def test_mean_std_and_deviation_floats() -> None:
    mean, std = mean_std(4, 12, 48)
    assert (mean, std) == (3.0, 2.0)
    assert deviation(7, mean, std) == 2.0
    assert math.isnan(mean_std(1, 5, 25)[1])
    assert math.isnan(mean_std(0, 0, 0)[0])
    assert deviation(5, 3.0, 0.0) == math.inf


def test_huge_sums_stay_exact() -> None:
    big = 2**62
    iats = [big, big, big, big - 1, 2 * 10**18]
    n, s, q = len(iats), sum(iats), sum(x * x for x in iats)
    x_min = threshold(n, s, q, Fraction(1))
    assert is_outlier(x_min, n, s, q, Fraction(1))
    assert not is_outlier(x_min - 1, n, s, q, Fraction(1))


@given(st.lists(st.lists(st.integers(-(2**62), 2**62), min_size=2, max_size=6), min_size=1,
                max_size=5),
       st.lists(st.tuples(st.integers(0, 4), st.integers(-(2**63), 2**63 - 1)), max_size=30))
@settings(max_examples=300)
def test_deviations_equal_deviation_per_row(groups: list[list[int]], rows: list) -> None:
    """The vectorised deviations are bit for bit `deviation(x, *mean_std(...))`, including
    scopes of zero variance (+inf) and IATs far from the mean."""
    groups.append([7, 7, 7])  # variance 0
    scopes = [(len(g), sum(g), sum(x * x for x in g)) for g in groups]
    rows = [(r % len(scopes), x) for r, x in rows] + [(len(scopes) - 1, 7)]
    got = deviations([r for r, _ in rows], [x for _, x in rows], scopes)
    want = [deviation(x, *mean_std(*scopes[r])) for r, x in rows]
    assert [float(v) for v in got] == want


def test_outlier_columns_of_no_rows() -> None:
    cols = outlier_columns(np.empty((0, 4), dtype=np.int64), [], "flow")
    assert {k: len(v) for k, v in cols.items()} == dict.fromkeys(
        ("flow", "frame", "ts_ns", "iat_ns", "deviation"), 0)
    assert cols["deviation"].dtype == np.float64 and cols["flow"].dtype == np.int64


def test_outlier_rows_of_messages_and_malformed_ones() -> None:
    """The client reads the outlier pass's columnar rows, mapping each message's own key
    numbering to table rows; a row pointing past its message's keys is a WireFormatError."""
    from streamlens_dist.chunktask import _outlier_message
    from streamlens_dist.errors import WireFormatError
    from streamlens_dist.results import _outlier_rows

    a, b = ("10.0.0.1", "10.0.0.2", 17), ("10.0.0.3", "10.0.0.4", 6)
    msgs = [{"flows": _outlier_message([(b, 9, 900, 50), (a, 4, 400, 2**40)], list)},
            {"flows": _outlier_message([], list)},
            {"flows": _outlier_message([(a, 12, 1200, 7)], list)}]
    row = {a: 0, b: 1}
    rows_of = lambda keys: [row[tuple(k)] for k in keys]  # noqa: E731 - maps a message's keys
    got = _outlier_rows(msgs, "flows", rows_of)
    assert got.dtype == np.int64
    assert got.tolist() == [[1, 9, 900, 50], [0, 4, 400, 2**40], [0, 12, 1200, 7]]
    bad = {"flows": {"keys": [list(a)], "rows": np.array([[1, 5, 6, 7]], "<i8").tobytes()}}
    with pytest.raises(WireFormatError, match="flows"):
        _outlier_rows([bad], "flows", rows_of)
    with pytest.raises(WireFormatError, match="flows"):
        _outlier_rows([{"flows": {"keys": [], "rows": b"123"}}], "flows", lambda keys: [])


def test_thresholds_no_iat_can_reach_are_left_out() -> None:
    """Times swinging across the whole timestamp range (issue 19): the std is so large that
    the threshold passes every possible IAT (and int64). Such a scope has no outliers, so it
    gets no threshold: the thresholds go over the wire and compare with int64 IATs."""
    from streamlens_dist.chunktask import thresholds_from_bytes, thresholds_to_bytes
    from streamlens_dist.partial import Partial, add_iat, new_stats
    from streamlens_dist.results import MAX_IAT, thresholds

    far = (1 << 62) - 1  # the timestamp bound, just inside
    p = Partial(lo=0, hi=0, frames=6)
    # ("e", "f"): no IAT reaches its threshold (12.4 ns), so it has no outliers and no
    # threshold either; ("c", "d"): its 210 ns IAT is an outlier
    for key, times in ((("a", "b", 17), [-far, far, -far, far]),
                       (("c", "d", 17), [*range(0, 300, 10), 500]),
                       (("e", "f", 17), [0, 10, 20, 31, 40])):
        p.flows[key] = new_stats(1, times[0], 60)
        for i, t in enumerate(times[1:], 2):
            add_iat(p.flows[key], i, t, 60)
    flows, _types, _streams = thresholds(p, Fraction(3))
    assert list(flows) == [("c", "d", 17)] and flows[("c", "d", 17)] < MAX_IAT
    assert threshold(4, 40, 10 * 10 * 2 + 11 * 11 + 9 * 9, Fraction(3)) > 11  # ("e", "f")
    iats = [2 * far, -2 * far, 2 * far]
    n, s, q = len(iats), sum(iats), sum(x * x for x in iats)
    assert threshold(n, s, q, Fraction(3)) > MAX_IAT == 2 * far + 1
    assert thresholds_from_bytes(thresholds_to_bytes(flows, {}, {}))[0] == flows


def test_streams_the_tables_never_show_get_no_threshold() -> None:
    """A CH10-UDP stream of a flow without Chapter 10 packets (random UDP payloads that pass
    the continuation test) is never reported, so it gets no threshold: it could only make
    pass 2 re-read chunks (issue 21). The same stream in a flow with Chapter 10 packets does."""
    from streamlens_dist.partial import Partial, add_iat, new_stats
    from streamlens_dist.results import thresholds

    p = Partial(lo=0, hi=0, frames=20)
    plain, ch10 = ("10.0.0.1", "10.0.0.2", "ip4"), ("10.0.0.3", "10.0.0.4", "ip4")
    keys = [(plain, "CH10-UDP", 1, 0, 0, 0), (ch10, "CH10-UDP", 1, 0, 0, 0),
            (ch10, "CH10", 3, 1, 0, 0)]
    for key in keys:
        times = [*range(0, 300, 10), 900]  # the last IAT an outlier
        p.streams[key] = new_stats(1, times[0], 60)
        for i, t in enumerate(times[1:], 2):
            add_iat(p.streams[key], i, t, 60)
    _flows, _types, streams = thresholds(p, Fraction(3))
    assert set(streams) == set(keys[1:])


def _flow_table(times: list[list[int]]):  # noqa: ANN202 - a ScopeTable
    """A flow per list of IATs, built frame by frame (the definition), as columns."""
    from streamlens_dist.partial import Partial, add_iat, new_stats

    p = Partial(lo=0, hi=0, frames=1)
    for j, steps in enumerate(times):
        key, t = (f"10.0.{j // 256}.{j % 256}", "10.0.0.255", "ip4"), 0
        p.flows[key] = new_stats(1, t, 60)
        for i, x in enumerate(steps, 2):
            t += x
            add_iat(p.flows[key], i, t, 60)
    return p.flow_table()


@given(st.lists(st.lists(st.integers(-2**40, 2**40) | st.integers(0, 50) | st.just(10),
                         min_size=1, max_size=40), min_size=1, max_size=30),
       st.sampled_from(["3", "0.5", "1", "10", "1/3"]))
@settings(max_examples=300, deadline=None)
def test_the_vectorised_bound_never_drops_a_scope_with_outliers(times: list, sigma: str) -> None:
    """`_may_have_outliers` only leaves out scopes whose largest IAT is below their exact
    threshold: every scope it drops has no outlier by the rule itself."""
    from streamlens_dist.results import _may_have_outliers

    table, k = _flow_table(times), Fraction(sigma)
    kept = set(_may_have_outliers(table, k).tolist())
    for r in range(len(table)):
        st_ = table.stats(r)
        n, s, q = st_[6], st_[7], st_[8]
        if r not in kept and n >= 2:
            assert not is_outlier(st_[10], n, s, q, k)


@given(st.lists(st.lists(st.integers(-2**61, 2**61) | st.integers(0, 3_000_000_000)
                         | st.integers(0, 2**40), max_size=30), min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_column_means_and_stds_equal_the_exact_ones(times: list) -> None:
    """The summary tables' mean and std, made column-wise where the integers allow, are the
    floats `mean_std` makes from the exact integers, bit for bit."""
    from streamlens_dist.results import _table_columns

    table = _flow_table(times)
    rows = np.arange(len(table))
    cols, sums = _table_columns(table, rows)
    for r in range(len(table)):
        st_ = table.stats(r)
        want = mean_std(st_[6], st_[7], st_[8])
        got = (cols["iat_mean_ns"][r], cols["iat_std_ns"][r])
        assert np.array_equal(np.array(got), np.array(want), equal_nan=True)
        assert sums[r] == (st_[6], st_[7], st_[8])
