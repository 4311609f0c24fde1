"""Partials form a monoid (identity, associativity) whose merge equals the unsplit
computation, and survive the wire format exactly (including sums of squares > 2^64)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlens_dist.dissect.names import HINT_NAMES
from streamlens_dist.errors import WireFormatError
from streamlens_dist.partial import (
    Before,
    Partial,
    Prefix,
    add_iat,
    advance,
    before,
    combine,
    combine_all,
    new_stats,
    seam_iats,
)
from streamlens_dist.wire import (
    VERSION,
    before_from_bytes,
    before_to_bytes,
    pack,
    partial_from_bytes,
    partial_to_bytes,
)

KEYS = [("10.0.0.1", "10.0.0.2", "ip4"), ("fe80::1", "ff02::1", "ip6"),
        ("aa:bb:cc:dd:ee:ff", "01:1b:19:00:00:00", "l2")]
TYPES = ["UDP", "PTP-Sync", "CH10-Data"]
HINTS = [HINT_NAMES[0], HINT_NAMES[1], HINT_NAMES[-1]]  # one per type index

# a frame: (flow index, type index, ts, size); ts may go backwards and be huge
frames_st = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2),
                               st.integers(-2**62, 2**62), st.integers(1, 9000)),
                     min_size=0, max_size=60)


def build(frames: list, lo: int, first_frame: int) -> Partial:
    """A one-chunk partial built directly (no capture) for the frames given."""
    p = Partial(lo=lo, hi=lo, frames=len(frames))
    for i, (f, t, ts, size) in enumerate(frames):
        frame = first_frame + i
        key, tkey = KEYS[f], (KEYS[f], TYPES[t])
        if p.first_ns is None:
            p.first_ns = ts
        p.last_ns = ts
        for scopes, k in ((p.flows, key), (p.types, tkey)):
            if k in scopes:
                add_iat(scopes[k], frame, ts, size)
            else:
                scopes[k] = new_stats(frame, ts, size)
        p.hints.setdefault(key, set()).add(HINTS[t])
    return p


def split(frames: list, cuts: list[int]) -> list[Partial]:
    bounds = sorted({c % (len(frames) + 1) for c in cuts} | {0, len(frames)})
    parts = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        parts.append(build(frames[a:b], i, a + 1))
    return parts


def comparable(p: Partial) -> tuple:
    # a partial built frame by frame (dicts of stats lists) equals its columnar form
    return (p.frames, p.first_ns, p.last_ns, dict(p.flows), dict(p.types),
            p.flow_table().hint_bits())


@given(frames_st, st.lists(st.integers(0, 100), max_size=8))
@settings(max_examples=200)
def test_split_invariance(frames: list, cuts: list[int]) -> None:
    whole = build(frames, 0, 1)
    parts = split(frames, cuts)
    merged = combine_all(parts)
    assert comparable(merged) == comparable(whole)
    # the seam IATs found through prefixes are exactly the IATs of the whole run that cross
    # a chunk boundary: per flow, the in-chunk IATs plus the seams count all IATs
    prefix, seams = Prefix(), []
    for p in parts:
        seams += seam_iats(prefix, p)[0]
        prefix = advance(prefix, p)
    assert len(seams) == sum(len(p.flows) for p in parts) - len(whole.flows)
    for key, stats in whole.flows.items():
        inside = sum(p.flows[key][6] for p in parts if key in p.flows)
        seam = [s for s in seams if s[0] == key]
        assert inside + len(seam) == stats[6]
        assert sum(p.flows[key][7] for p in parts if key in p.flows) + \
            sum(s[3] for s in seam) == stats[7]


@given(frames_st, st.integers(0, 100), st.integers(0, 100))
@settings(max_examples=100)
def test_associativity_and_identity(frames: list, x: int, y: int) -> None:
    i, j = sorted((x % (len(frames) + 1), y % (len(frames) + 1)))
    a, b, c = (build(frames[:i], 0, 1), build(frames[i:j], 1, i + 1),
               build(frames[j:], 2, j + 1))
    left, right = combine(combine(a, b), c), combine(a, combine(b, c))
    assert comparable(left) == comparable(right) == comparable(build(frames, 0, 1))
    e = Partial.empty()
    assert combine(e, a) is a and combine(a, e) is a


def test_out_of_order_combine_is_refused() -> None:
    a, b = build([(0, 0, 1, 1)], 0, 1), build([(0, 0, 2, 1)], 1, 2)
    with pytest.raises(ValueError, match="chunk order"):
        combine(b, a)


@given(frames_st, st.lists(st.integers(0, 100), max_size=5))
@settings(max_examples=100)
def test_wire_round_trip(frames: list, cuts: list[int]) -> None:
    merged = combine_all(split(frames, cuts))
    back = partial_from_bytes(partial_to_bytes(merged))
    assert comparable(back) == comparable(merged)
    assert (back.lo, back.hi) == (merged.lo, merged.hi)


def test_big_sum_of_squares_travels_exactly() -> None:
    p = build([(0, 0, -2**62, 1), (0, 0, 2**62, 1), (0, 0, -2**62, 1)], 0, 1)
    q = p.flows[KEYS[0]][8]
    assert q > 2**126
    assert partial_from_bytes(partial_to_bytes(p)).flows[KEYS[0]][8] == q


def test_wire_rejects_foreign_and_future_messages() -> None:
    with pytest.raises(WireFormatError):
        partial_from_bytes(b"\x93\x01\x02\x03")
    with pytest.raises(WireFormatError):
        partial_from_bytes(b"not msgpack at all \xc1")
    future = pack("partial", {}).replace(b"\xa1v" + bytes([VERSION]), b"\xa1v\x63")
    assert future != pack("partial", {})
    with pytest.raises(WireFormatError, match="version"):
        partial_from_bytes(future)
    with pytest.raises(WireFormatError, match="malformed"):
        partial_from_bytes(pack("partial", {"lo": 0}))


def test_prefix_and_before_round_trip() -> None:
    p = build([(0, 0, 5, 1), (1, 2, -7, 1), (0, 1, 9, 1)], 0, 1)
    prefix = advance(Prefix(), p)
    assert prefix.flows[KEYS[0]] == 9 and prefix.types[(KEYS[1], TYPES[2])] == -7
    nxt = build([(2, 0, 20, 1), (1, 2, 30, 1), (0, 0, 40, 1)], 1, 4)
    b = before(prefix, nxt)
    back = before_from_bytes(before_to_bytes(b))
    flows = nxt.flow_table()
    # the IAT from each scope's last frame before the chunk to its first in it
    assert dict(zip(flows.key_list, zip(back.flows.tolist(), back.flows_has.tolist(),
                                         strict=True), strict=True)) == \
        {KEYS[2]: (0, False), KEYS[1]: (37, True), KEYS[0]: (31, True)}
    types = nxt.type_table()
    got = {k: (x, h) for k, x, h in zip(types.key_list, back.types.tolist(),
                                         back.types_has.tolist(), strict=True) if h}
    assert got == {(KEYS[1], TYPES[2]): (37, True), (KEYS[0], TYPES[0]): (35, True)}
    # negative, wide and beyond-int64 seams travel too (8-byte or Python-int columns)
    for seam in ([-3, 2**32, 5], [1 << 63, 2, -(1 << 64)]):
        has = np.array([True, False, True, True])
        cols = np.array([seam[0], 0, seam[1], seam[2]], dtype=object if abs(seam[0]) >= 1 << 63
                        else np.int64)
        b2 = Before(cols, has, cols[:0], has[:0], {})
        back = before_from_bytes(before_to_bytes(b2))
        assert back.flows.tolist() == [seam[0], 0, seam[1], seam[2]]
        assert back.flows_has.tolist() == has.tolist() and back.types_has.tolist() == []
