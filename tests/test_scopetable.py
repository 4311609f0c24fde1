"""The columnar combine (scopetable.py) against the per-frame definition (partial.add_iat),
over many flows, flows seen in only some chunks, empty chunks and any chunking; byte keys
(flowkeys.py) round-trip and are found exactly even when their hashes collide."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlens_dist import flowkeys, scopetable
from streamlens_dist.flowkeys import (
    KeyIndex,
    flow_bytes,
    flow_text,
    key_array,
    key_hash,
    type_bytes,
    type_text,
)
from streamlens_dist.partial import Partial, Prefix, add_iat, advance, combine_all, new_stats, seam_iats
from streamlens_dist.wire import partial_from_bytes, partial_to_bytes

# flows of every key shape, among them addresses whose bytes end in zeros (numpy strips
# trailing NULs from "S" arrays) and keys that are not text keys at all
FLOWS = [("10.0.0.0", "10.0.0.1", "ip4"), ("10.0.0.1", "10.0.0.0", "ip4"),
         ("0.0.0.0", "0.0.0.0", "ip4"), ("255.255.255.255", "224.0.0.1", "ip4"),
         ("fe80::1", "ff02::1", "ip6"), ("::", "::", "ip6"), ("2001:db8::", "::ffff:1.2.3.0", "ip6"),
         ("aa:bb:cc:dd:ee:00", "01:1b:19:00:00:00", "l2"), ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "l2"),
         ("10.0.0.01", "10.0.0.1", "ip4"), ("not an address", "x", "ip4"), 7, ("a", "b", "zz")]
FLOWS += [(f"10.1.{i // 256}.{i % 256}", "239.0.0.1", "ip4") for i in range(40)]
TYPES = ["UDP", "PTP-Sync", "CH10-Data", "not a type"]
TS = st.integers(-2**62, 2**62) | st.integers(0, 10**6)
frames_st = st.lists(st.tuples(st.integers(0, len(FLOWS) - 1), st.integers(0, len(TYPES) - 1),
                               TS, st.integers(1, 9000)), max_size=120)


def build(frames: list, lo: int, first_frame: int) -> Partial:
    p = Partial(lo=lo, hi=lo, frames=len(frames))
    for i, (f, t, ts, size) in enumerate(frames):
        frame = first_frame + i
        for scopes, k in ((p.flows, FLOWS[f]), (p.types, (FLOWS[f], TYPES[t]))):
            if k in scopes:
                add_iat(scopes[k], frame, ts, size)
            else:
                scopes[k] = new_stats(frame, ts, size)
    return p


def pieces(frames: list, cuts: list[int]) -> list[Partial]:
    """Partials of the frames cut at `cuts`; a cut may repeat (an empty chunk)."""
    bounds = [0, *sorted(c % (len(frames) + 1) for c in cuts), len(frames)]
    return [build(frames[a:b], i, a + 1) for i, (a, b) in enumerate(zip(bounds, bounds[1:],
                                                                          strict=False))]


@given(frames_st, st.lists(st.integers(0, 200), max_size=12))
@settings(max_examples=150, deadline=None)
def test_columnar_combine_equals_the_per_frame_definition(frames: list, cuts: list[int]) -> None:
    whole = build(frames, 0, 1)
    parts = pieces(frames, cuts)
    # the chunks as they travel: columns on the wire
    wired = [partial_from_bytes(partial_to_bytes(p)) for p in parts]
    merged = combine_all(wired)
    assert dict(merged.flows) == dict(whole.flows)
    assert dict(merged.types) == dict(whole.types)
    assert dict(partial_from_bytes(partial_to_bytes(merged)).flows) == dict(whole.flows)
    # the seams found through prefixes: every IAT of the whole that crosses a chunk boundary
    prefix, seams = Prefix(), []
    for p in wired:
        seams += seam_iats(prefix, p)[0]
        prefix = advance(prefix, p)
    assert len(seams) == sum(len(p.flows) for p in parts) - len(whole.flows)
    for key, stats in whole.flows.items():
        inside = sum(p.flows[key][6] for p in parts if key in p.flows)
        assert inside + len([s for s in seams if s[0] == key]) == stats[6]
    assert dict(prefix.flows) == {k: st_[5] for k, st_ in whole.flows.items()}


@given(frames_st, st.lists(st.integers(0, 200), max_size=6))
@settings(max_examples=40, deadline=None)
def test_colliding_hashes_change_nothing(frames: list, cuts: list[int]) -> None:
    """Every key hashed into four values: the index falls back to the bytes, same result."""
    whole = build(frames, 0, 1)
    real = flowkeys.key_hash
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(scopetable, "key_hash", lambda kb: real(kb) % np.uint64(4))
        mp.setattr(flowkeys, "key_hash", lambda kb: real(kb) % np.uint64(4))
        merged = combine_all([partial_from_bytes(partial_to_bytes(p))
                              for p in pieces(frames, cuts)])
        assert dict(merged.flows) == dict(whole.flows)
        assert dict(merged.types) == dict(whole.types)


def test_byte_keys_round_trip_and_stay_distinct() -> None:
    kb = [flow_bytes(k) for k in FLOWS]
    assert len(set(kb)) == len(FLOWS)
    arr = key_array(kb)  # trailing NULs stripped by numpy, put back by flow_text
    assert [flow_text(b) for b in arr.tolist()] == FLOWS
    tk = [(f, t) for f in FLOWS[:12] for t in TYPES]
    tarr = key_array([type_bytes(k) for k in tk])
    assert [type_text(b) for b in tarr.tolist()] == tk
    assert len(set(tarr.tolist())) == len(tk)


def test_hash_ignores_the_width_of_the_array() -> None:
    narrow = key_array([flow_bytes(FLOWS[0]), flow_bytes(FLOWS[2])])
    wide = key_array([flow_bytes(FLOWS[0]), flow_bytes(FLOWS[4])])  # an ip6 key widens it
    assert narrow.dtype.itemsize < wide.dtype.itemsize
    assert key_hash(narrow)[0] == key_hash(wide)[0]
    index = KeyIndex(wide)
    assert index.rows_of(narrow).tolist() == [0, -1]


def test_key_index_finds_each_key_and_only_those() -> None:
    rng = np.random.default_rng(3)
    keys = key_array([flow_bytes((f"10.{a}.{b}.{c}", "10.0.0.1", "ip4"))
                      for a, b, c in rng.integers(0, 256, (3000, 3))])
    keys = np.unique(keys)
    order = rng.permutation(len(keys))
    index = KeyIndex(keys[order][:2000])
    got = index.rows_of(keys[order])
    assert got[:2000].tolist() == list(range(2000))
    assert (got[2000:] == -1).all()
    grown = index.extended(keys[order][2000:], key_hash(keys[order][2000:]))
    assert grown.rows_of(keys[order]).tolist() == list(range(len(keys)))
