"""Mergeable per-stream state beyond IAT statistics (docs/STREAMS.md §2-§5): sequence runs,
status and segment counters, PTP Sync/Follow_Up pairing, grandmaster and TMATS changes.

Each is built per chunk from that chunk's messages, combined in chunk order (associative,
exact), and finally evaluated. Sequence numbers travel as *runs* (consecutive +1 stretches):
a regular stream is one run per chunk, and replaying runs through the running-maximum rule of
STREAMS.md §2 gives exactly what replaying every message would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A stream's sequence state: [bits, first seq, last seq, breaks, runs or None], where breaks
# counts consecutive message pairs whose difference is not +1 (mod 2^bits) and a run is
# [start seq, messages, first frame, first ts, last frame, last ts, id2 of its first message]
# (a Chapter 10 channel's counter is shared by its data types: id2 says whose message it is).
BITS, SEQ_FIRST, SEQ_LAST, BREAKS, RUNS = range(5)
IRREGULAR_PAIRS = 100_000  # beyond this many breaks a stream's gaps are not listed

# Per-stream counters: [errors, segments, status changes, first status, last status,
# frame type codes seen (sorted list), messages with their own sequence number]
ERRORS, SEGMENTS, CHANGES, STATUS_FIRST, STATUS_LAST, TYPES, NUMBERED = range(7)

# PTP pairing per (flow, domain, clock, port): [unpaired, Follow_Up seqs before the first
# Sync (sorted), has a Sync, last Sync seq, last Sync still waiting for its Follow_Up]
UNPAIRED, HEAD, HAS_SYNC, LAST_SYNC, PENDING = range(5)


def merge_seq(a: list, b: list) -> list:
    breaks = a[BREAKS] + b[BREAKS] + ((b[SEQ_FIRST] - a[SEQ_LAST]) % (1 << a[BITS]) != 1)
    runs = None
    if a[RUNS] is not None and b[RUNS] is not None and breaks <= IRREGULAR_PAIRS:
        runs = a[RUNS] + b[RUNS]
    return [a[BITS], a[SEQ_FIRST], b[SEQ_LAST], breaks, runs]


def merge_counters(a: list, b: list) -> list:
    changed = a[STATUS_LAST] != b[STATUS_FIRST]
    return [a[ERRORS] + b[ERRORS], a[SEGMENTS] + b[SEGMENTS],
            a[CHANGES] + b[CHANGES] + changed, a[STATUS_FIRST], b[STATUS_LAST],
            sorted(set(a[TYPES]) | set(b[TYPES])), a[NUMBERED] + b[NUMBERED]]


def merge_sync(a: list, b: list) -> list:
    unpaired = a[UNPAIRED] + b[UNPAIRED]
    pending, last = a[PENDING], a[LAST_SYNC]
    if pending and a[LAST_SYNC] in b[HEAD]:
        pending = 0
    if b[HAS_SYNC]:
        unpaired += pending  # a's last Sync met the next Sync before its Follow_Up
        pending, last = b[PENDING], b[LAST_SYNC]
    head = a[HEAD] if a[HAS_SYNC] else sorted(set(a[HEAD]) | set(b[HEAD]))
    return [unpaired, head, a[HAS_SYNC] or b[HAS_SYNC], last, pending]


def sync_state(events: list[tuple[int, int, int]]) -> list:
    """Pairing state of one chunk's (is Sync, seq, two-step) events of one PTP source."""
    unpaired, head, has_sync, last, pending = 0, set(), 0, -1, 0
    for is_sync, seq, two_step in events:
        if is_sync:
            unpaired += pending
            has_sync, last, pending = 1, seq, 1 if two_step == 1 else 0
        elif not has_sync:
            head.add(seq)
        elif pending and seq == last:
            pending = 0
    return [unpaired, sorted(head), has_sync, last, pending]


def merge_changes(a: list, b: list, value: int) -> list:
    """Concatenate two change lists, dropping b's first entry if it repeats a's last."""
    if a and b and a[-1][value] == b[0][value]:
        return a + b[1:]
    return a + b


@dataclass
class Accounting:
    expected: int = -1
    lost: int = -1
    duplicated: int = -1
    out_of_order: int = -1
    gap_count: int = -1
    gap_missing: int = -1
    irregular: bool = False
    # (frame before, frame after, ts before, ts after, seq before, seq after, missing,
    #  id2 of the message after)
    gaps: list[tuple[int, int, int, int, int, int, int, int]] = field(default_factory=list)


def account(seq: list | None, messages: int) -> Accounting:
    """The running-maximum sequence rule of STREAMS.md §2 over a stream's runs, of its
    `messages` messages that carry their own sequence number."""
    if seq is None:  # only segment continuations
        return Accounting(0, 0, 0, 0, 0, 0)
    runs = seq[RUNS]
    if runs is None:
        return Accounting(irregular=True)
    m = 1 << seq[BITS]
    half = m >> 1
    acc = Accounting(duplicated=0, out_of_order=0, gap_count=0, gap_missing=0)
    hi = lo = None  # highest / lowest extended numbers so far
    hi_frame = hi_ts = 0
    for start, count, f0, t0, f1, t1, id2 in runs:
        if hi is None:
            hi = lo = start
            hi_frame, hi_ts = f0, t0
            e0, skip = start, 1  # the first message only sets the maximum
        else:
            d = (start - hi) % m
            e0, skip = hi + (d - m if d >= half else d), 0
        lo = min(lo, e0)
        last = e0 + count - 1
        if e0 > hi and skip == 0:
            if e0 > hi + 1:
                acc.gaps.append((hi_frame, f0, hi_ts, t0, hi % m, start, e0 - hi - 1, id2))
                acc.gap_count += 1
                acc.gap_missing += e0 - hi - 1
        elif skip == 0:
            late = min(count, hi - e0)
            acc.out_of_order += late
            if count > late:
                acc.duplicated += 1
        if last > hi:
            hi, hi_frame, hi_ts = last, f1, t1
    acc.expected = hi - lo + 1
    acc.lost = max(0, acc.expected - (messages - acc.duplicated))
    return acc
