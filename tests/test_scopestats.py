"""Per-scope chunk statistics: the compiled kernel and the numpy path against a plain loop.

Stats must be identical to folding `partial.add_iat` frame by frame. The kept IATs are only a
filter, so the property checked is the one the outlier pass relies on: every kept entry is a
real (iat, frame, ts) of the scope, and every IAT not kept is <= the reported largest one left
out (None exactly when nothing was left out)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlens_dist.partial import add_iat, new_stats
from streamlens_dist.scopestats import HAVE_COMPILED, TS_LIMIT, scope_stats


def loop_reference(scope, frame, ts, size, hints):
    stats, iats, bits = {}, {}, {}
    for s, f, t, z, h in zip(scope.tolist(), frame.tolist(), ts.tolist(), size.tolist(),
                             hints.tolist(), strict=True):
        if s not in stats:
            stats[s], iats[s], bits[s] = new_stats(f, t, z), [], h
        else:
            iats[s].append((add_iat(stats[s], f, t, z), f, t))
            bits[s] |= h
    return stats, iats, bits


def check(result, scope, frame, ts, size, hints):
    stats, iats, bits = loop_reference(scope, frame, ts, size, hints)
    assert sorted(result.ids) == sorted(stats)
    for sid, st_, top, b in zip(result.ids, result.stats, result.tops, result.hints,
                                strict=True):
        assert st_ == stats[sid]
        assert b == bits[sid]
        kept, dropped, count = top
        assert count == len(iats[sid])
        assert len(set(kept)) == len(kept) and set(kept) <= set(iats[sid])
        rest = [x for x, f, t in iats[sid] if (x, f, t) not in set(kept)]
        assert dropped == (max(rest) if rest else None)


@st.composite
def chunks(draw):
    n = draw(st.integers(1, 300))
    nscopes = draw(st.sampled_from([1, 3, 40, 10**6]))  # 10**6: sparse ids, compacted first
    scope = np.array(draw(st.lists(st.integers(0, nscopes - 1), min_size=n, max_size=n)),
                     np.int64)
    spread = draw(st.sampled_from([10, 10**6, 10**12, TS_LIMIT]))
    ts = np.array(draw(st.lists(st.integers(-spread, spread), min_size=n, max_size=n)),
                  np.int64)
    if draw(st.booleans()):
        ts.sort()
    frame = 1000 + np.arange(n, dtype=np.int64)
    size = np.array(draw(st.lists(st.integers(0, 65535), min_size=n, max_size=n)), np.int64)
    hints = np.array(draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)), np.int32)
    return scope, frame, ts, size, hints


@settings(max_examples=300, deadline=None)
@given(chunks(), st.booleans())
def test_scope_stats_match_a_plain_loop(chunk, force_numpy):
    check(scope_stats(*chunk, force_numpy=force_numpy), *chunk)


@pytest.mark.skipif(not HAVE_COMPILED, reason="built without the C kernel")
def test_compiled_sum_of_squares_carries_past_128_bits():
    # 40 IATs of +-2^62 (timestamps alternate between -2^61 and 2^61): Q = 40 * 2^124 > 2^128
    n = 41
    ts = np.array([(-1) ** (i + 1) * (1 << 61) for i in range(n)], np.int64)
    scope, frame = np.zeros(n, np.int64), np.arange(n, dtype=np.int64)
    size, hints = np.ones(n, np.int64), np.zeros(n, np.int32)
    res = scope_stats(scope, frame, ts, size, hints)
    check(res, scope, frame, ts, size, hints)
    assert res.stats[0][8] == 40 * (1 << 124)


def test_empty_chunk():
    empty = np.zeros(0, np.int64)
    res = scope_stats(empty, empty, empty, empty, np.zeros(0, np.int32))
    assert (res.ids, res.stats, res.tops, res.hints) == ([], [], [], [])
