"""Sequence accounting and PTP pairing are exact for any chunking: per-chunk state built by the
engine (streamchunk), merged in chunk order (seqstate), equals a message-by-message replay of
docs/STREAMS.md §2 / §3 written out plainly here."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlens_dist import seqstate, streamchunk
from streamlens_dist.dissect.streams import IENA, MESSAGE_COLUMNS, ChunkMessages
from streamlens_dist.partial import Partial
from streamlens_dist.streamchunk import _ptp, _sequences


def brute(seqs: list[int], bits: int) -> dict:
    """STREAMS.md §2, one message at a time."""
    m, half = 1 << bits, 1 << (bits - 1)
    hi = lo = None
    out = {"dup": 0, "late": 0, "gaps": []}
    hi_msg = 0
    for i, s in enumerate(seqs):
        if hi is None:
            hi = lo = s
            continue
        d = (s - hi) % m
        e = hi + (d - m if d >= half else d)
        lo = min(lo, e)
        if e > hi:
            if e > hi + 1:
                out["gaps"].append((hi_msg, i, hi % m, s, e - hi - 1))
            hi, hi_msg = e, i
        elif e == hi:
            out["dup"] += 1
        else:
            out["late"] += 1
    out["expected"] = hi - lo + 1
    out["lost"] = max(0, out["expected"] - (len(seqs) - out["dup"]))
    return out


KEY = (("a", "b", "ip4"), "IENA", 1, 0, 0, 0)


def chunked(seqs: list[int], bits: int, cuts: list[int], compiled: bool = True
            ) -> seqstate.Accounting:
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(seqs))), len(seqs)]
    states = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        p = Partial()
        n = b - a
        cols = {"seq": np.array(seqs[a:b], np.int64), "bits": np.full(n, bits, np.int64),
                "segment": np.zeros(n, np.int64), "id2": np.zeros(n, np.int64)}
        # message i is frame i, at time 10*i
        frames = np.arange(a, b, dtype=np.int64)
        if compiled and streamchunk._streams is not None:  # the compiled stream pass
            full = {c: np.zeros(n, np.int64) for c in MESSAGE_COLUMNS}
            full.update(cols, row=np.arange(n), proto=np.full(n, IENA, np.int64),
                        id1=np.ones(n, np.int64))
            streamchunk.accumulate_streams(p, ChunkMessages(full, []), frames, frames * 10,
                                           np.zeros(n, np.int32), np.zeros(n, np.int16),
                                           [KEY[0]])
        else:
            _sequences(p, np.zeros(n, np.int64), [KEY], cols, frames, frames * 10, np.arange(n))
        states.append(p.seq[KEY])
    while len(states) > 1:  # the engine's ordered pairwise tree
        states = [seqstate.merge_seq(states[i], states[i + 1]) if i + 1 < len(states)
                  else states[i] for i in range(0, len(states), 2)]
    return seqstate.account(states[0], len(seqs))


def _sequence(bits: int) -> st.SearchStrategy:
    m = 1 << bits
    start = st.integers(0, m - 1)
    steps = st.lists(st.sampled_from([1, 1, 1, 1, 0, 2, 3, -1, -2, 5, m // 2 - 1, m // 2, m - 1]),
                     min_size=0, max_size=60)
    return st.tuples(start, steps).map(
        lambda t: [(t[0] + sum(t[1][:i])) % m for i in range(len(t[1]) + 1)])


@settings(max_examples=300, deadline=None)
@given(data=st.data(), bits=st.sampled_from([8, 16, 24, 32]))
def test_runs_merged_over_any_chunking_equal_message_replay(data, bits) -> None:
    seqs = data.draw(_sequence(bits))
    cuts = data.draw(st.lists(st.integers(0, len(seqs)), max_size=8))
    got = chunked(seqs, bits, cuts, compiled=data.draw(st.booleans()))
    want = brute(seqs, bits)
    assert not got.irregular
    assert (got.duplicated, got.out_of_order, got.expected, got.lost) == \
        (want["dup"], want["late"], want["expected"], want["lost"])
    assert [(g[0], g[1], g[4], g[5], g[6]) for g in got.gaps] == want["gaps"]
    assert got.gap_count == len(want["gaps"])
    assert got.gap_missing == sum(g[4] for g in want["gaps"])


def test_examples_from_the_spec() -> None:
    reorder = chunked([1, 2, 4, 3, 5], 16, [3])
    assert (reorder.gap_count, reorder.out_of_order, reorder.lost) == (1, 1, 0)
    loss = chunked([1, 2, 4, 5], 16, [2])
    assert (loss.gap_count, loss.lost, loss.expected) == (1, 1, 5)
    wrap = chunked([254, 255, 0, 1], 8, [2])
    assert (wrap.gap_count, wrap.expected, wrap.lost) == (0, 4, 0)
    dup = chunked([7, 7, 8], 16, [1])
    assert (dup.duplicated, dup.lost) == (1, 0)


def test_irregular_stream_is_flagged_whatever_the_chunking() -> None:
    rng = np.random.default_rng(1)
    seqs = rng.integers(0, 1 << 16, seqstate.IRREGULAR_PAIRS + 10).tolist()
    for cuts in ([], [50_000], [10, 99_000]):
        acc = chunked(seqs, 16, cuts)
        assert acc.irregular and acc.lost == -1 and acc.gaps == []


def brute_unpaired(events: list[tuple[int, int, int]]) -> int:
    unpaired, pending, last = 0, False, None
    for is_sync, seq, two_step in events:
        if is_sync:
            unpaired += pending
            pending, last = two_step == 1, seq
        elif pending and seq == last:
            pending = False
    return unpaired + pending


@settings(max_examples=300, deadline=None)
@given(events=st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.sampled_from([0, 1])),
                       max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=6))
def test_sync_pairing_over_any_chunking(events, cuts) -> None:
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(events))), len(events)]
    states = [seqstate.sync_state(events[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    while len(states) > 1:
        states = [seqstate.merge_sync(states[i], states[i + 1]) if i + 1 < len(states)
                  else states[i] for i in range(0, len(states), 2)]
    got = states[0][seqstate.UNPAIRED] + states[0][seqstate.PENDING]
    assert got == brute_unpaired(events)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.integers(0, 4),
                                 st.sampled_from([0, 1])), max_size=50))
def test_vectorised_pairing_equals_sequential_state(events) -> None:
    """streamchunk._ptp (numpy, all sources at once) == seqstate.sync_state per source."""
    n = len(events)
    col = {"proto": np.full(n, 2, np.int64), "row": np.arange(n, dtype=np.int64),
           "id1": np.zeros(n, np.int64), "id2": np.array([0 if e[1] else 8 for e in events],
                                                         dtype=np.int64),
           "id3": np.array([e[0] * 7 - 3 for e in events], dtype=np.int64),
           "id4": np.ones(n, np.int64), "seq": np.array([e[2] for e in events], dtype=np.int64),
           "aux": np.array([e[3] if e[1] else -1 for e in events], dtype=np.int64),
           "size": np.full(n, 44, np.int64)}
    p = Partial()
    _ptp(p, col, np.zeros(n, np.int64), [("a", "b", "l2")], np.arange(n), np.arange(n))
    for src in range(3):
        mine = [(e[1], e[2], e[3]) for e in events if e[0] == src]
        key = (("a", "b", "l2"), 0, src * 7 - 3, 1)
        if mine:
            assert p.sync[key] == seqstate.sync_state(mine)
        else:
            assert key not in p.sync
