"""Protocol streams of the real captures against independent decoders (issue 5 acceptance).

tests/independent_decoders.py decodes every Chapter 10 / IENA / iNET-X / PTP capture with
third-party code (AcraNetwork, pychapter10, tshark's PTP dissector) and groups the messages
into the streams of docs/STREAMS.md; this module recomputes, from those decoded sequence
lists only, everything STREAMS.md derives from them -- the §2 sequence accounting (written
afresh here from the page's text), the statistics of CONTRACT §5-§6 (exact integers and
fractions, tests/tshark_oracle.py), the PTP grandmaster rows and unpaired two-step Syncs, and
the TMATS rows and channel names -- and compares the engine's store with it stream by stream.

The engine half (`streams` in streamlens_dist.store.LAYOUT) is marked `needs_engine`: it is
collected now and runs once the engine writes the tables. The rest runs today: the decoders
against the facts PROVENANCE.md records for each capture, the accounting rule against the
examples of STREAMS §2, and the comparison code against tables built from the decoders
(so a broken comparison cannot pass silently later).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import independent_decoders as dec
import numpy as np
import pytest
from reference_streams import STREAM_COLUMNS
from tshark_oracle import flow_stats, outlier_threshold_test

import streamlens_dist
from streamlens_dist.store import LAYOUT

ENGINE_HAS_STREAMS = "streams" in LAYOUT
needs_engine = pytest.mark.skipif(not ENGINE_HAS_STREAMS, reason="engine streams not landed")
needs_tshark = pytest.mark.skipif(not dec.tshark_available(), reason="tshark is not installed")

SMALL_CHUNK, BIG_CHUNK = "1KiB", "64MiB"  # 1 KiB: the engine's minimum
SMALL_CHUNK_BYTES = 1024
CLUSTER_CHUNK = "16KiB"  # 7 chunks of the converted eth_tmats recording for 2 workers
SIGMA = "3"
IRREGULAR_PAIRS = 100_000  # STREAMS §2
PROTOCOL_RANK = {"CH10-UDP": 0, "CH10": 1, "PTP": 2, "IENA": 3, "INETX": 4}
STREAM_TABLES = ("flows", "streams", "sequence_gaps", "stream_outliers", "tmats",
                 "ptp_grandmasters")


# ---------------------------------------------------------------------------------------
# STREAMS §2, from the text of the page

@dataclass
class Accounting:
    seq_first: int
    seq_last: int
    expected: int
    received: int
    lost: int
    duplicated: int
    out_of_order: int
    gap_count: int
    gap_missing: int
    irregular: bool
    gaps: list[dict]  # frame_before, frame_after, ts_before_ns, ts_after_ns, span_ns,
    #                   seq_before, seq_after, missing (+ "index": message index of the jump)


def account(messages: list[dec.Msg], bits: int) -> Accounting:
    """Unwrap each number against the highest so far, H: d = (s - H mod M) mod M, minus M when
    d >= M/2, e = H + d; e > H advances (a gap when e > H + 1), e == H repeats, e < H is late.
    Chapter 10 segment continuations carry no number of their own and are left out."""
    messages = [m for m in messages if not m.continuation]
    if not messages:
        return Accounting(-1, -1, 0, 0, 0, 0, 0, 0, 0, False, [])
    mod = 1 << bits
    half = mod // 2
    high = holder = None
    extended, gaps = [], []
    duplicated = late = irregular_pairs = 0
    for i, m in enumerate(messages):
        if high is None:
            high, holder = m.seq, m
            extended.append(m.seq)
            continue
        if (m.seq - messages[i - 1].seq) % mod != 1:
            irregular_pairs += 1
        d = (m.seq - high % mod) % mod
        if d >= half:
            d -= mod
        e = high + d
        extended.append(e)
        if e > high:
            if e > high + 1:
                gaps.append({"frame_before": holder.frame, "frame_after": m.frame,
                             "ts_before_ns": holder.ts_ns, "ts_after_ns": m.ts_ns,
                             "span_ns": m.ts_ns - holder.ts_ns, "seq_before": high % mod,
                             "seq_after": m.seq, "missing": e - high - 1, "index": i})
            high, holder = e, m
        elif e == high:
            duplicated += 1
        else:
            late += 1
    received = len(messages)
    expected = max(extended) - min(extended) + 1
    acc = Accounting(messages[0].seq, messages[-1].seq, expected, received,
                     max(0, expected - (received - duplicated)), duplicated, late, len(gaps),
                     sum(g["missing"] for g in gaps), irregular_pairs > IRREGULAR_PAIRS, gaps)
    if acc.irregular:
        acc.expected = acc.lost = acc.duplicated = acc.out_of_order = -1
        acc.gap_count = acc.gap_missing = -1
        acc.gaps = []
    return acc


def _msgs(seqs: list[int]) -> list[dec.Msg]:
    return [dec.Msg(i + 1, (i + 1) * 1000, s, 1) for i, s in enumerate(seqs)]


def test_accounting_matches_the_examples_of_streams_md() -> None:
    reorder = account(_msgs([1, 2, 4, 3, 5]), 16)
    assert (reorder.gap_count, reorder.gap_missing, reorder.out_of_order, reorder.lost) == (1, 1, 1, 0)
    assert reorder.gaps[0]["seq_before"] == 2 and reorder.gaps[0]["seq_after"] == 4
    assert reorder.gaps[0]["frame_before"] == 2 and reorder.gaps[0]["frame_after"] == 3
    loss = account(_msgs([1, 2, 4, 5]), 16)
    assert (loss.gap_count, loss.gap_missing, loss.out_of_order, loss.lost) == (1, 1, 0, 1)
    assert loss.expected == 5 and loss.received == 4
    wrap = account(_msgs([254, 255, 0, 1, 2]), 8)  # ch10udp_f1_pcm_looks_like_f2.pcap
    assert (wrap.expected, wrap.lost, wrap.gap_count, wrap.seq_first, wrap.seq_last) == (5, 0, 0, 254, 2)
    dup = account(_msgs([7, 7, 8, 8]), 32)
    assert (dup.duplicated, dup.lost, dup.expected) == (2, 0, 2)
    jump = account(_msgs([0xFFFFFE, 3]), 24)  # across the 24-bit wrap: 0xFFFFFF, 0, 1, 2 missing
    assert (jump.gap_missing, jump.gaps[0]["seq_before"], jump.expected) == (4, 0xFFFFFE, 6)
    ahead = account(_msgs([10, 100, 200]), 8)  # d = 90 then 100, both below 128: advances
    assert [g["missing"] for g in ahead.gaps] == [89, 99] and ahead.out_of_order == 0
    behind = account(_msgs([10, 200]), 8)  # d = 190 >= 128: 66 below the highest, late
    assert (behind.out_of_order, behind.gap_count, behind.expected) == (1, 0, 67)
    late = account(_msgs([206, 83]), 8)  # d = 133 >= 128: 123 below the highest, late
    assert (late.out_of_order, late.expected, late.lost) == (1, 124, 122)


# ---------------------------------------------------------------------------------------
# Expected rows from the decoders

def unpaired_syncs(ptp: list[dec.PtpMsg]) -> dict[tuple, int]:
    """Per Sync stream key: two-step Syncs with no Follow_Up of the same flow, domain,
    clockIdentity, portNumber and sequenceId after it and before the next Sync of that
    flow/domain/source (or the end of the capture)."""
    pending: dict[tuple, dec.PtpMsg | None] = {}
    count: dict[tuple, int] = {}

    def close(src: tuple) -> None:
        sync = pending.get(src)
        if sync is not None and sync.two_step:
            count[src] = count.get(src, 0) + 1

    for m in sorted(ptp, key=lambda m: m.frame):
        src = (m.flow, m.domain, m.clock, m.port)
        if m.msgtype == 0x0:
            count.setdefault(src, 0)
            close(src)
            pending[src] = m
        elif m.msgtype == 0x8 and pending.get(src) is not None and pending[src].seq == m.seq:
            pending[src] = None
    for src in pending:
        close(src)
    return {(flow, "PTP", (domain, 0, dec.signed64(clock), port)): n
            for (flow, domain, clock, port), n in count.items()}


def expected_grandmasters(ptp: list[dec.PtpMsg]) -> list[dict]:
    rows, last, changes = [], {}, {}
    for m in sorted(ptp, key=lambda m: m.frame):
        if m.msgtype != 0xB or m.length < 63:
            continue
        if m.domain in last and last[m.domain] == m.grandmaster:
            continue
        change = changes[m.domain] = changes.get(m.domain, -1) + 1
        last[m.domain] = m.grandmaster
        rows.append({"domain": m.domain, "grandmaster": f"{m.grandmaster:016x}", "flow": m.flow,
                     "frame": m.frame, "ts_ns": m.ts_ns, "change": change})
    return rows


def expected_tmats(texts: list[dec.Tmats]) -> list[dict]:
    rows, last, changes = [], {}, {}
    for t in sorted(texts, key=lambda t: t.frame):
        if t.flow in last and last[t.flow] == t.text:
            continue
        change = changes[t.flow] = changes.get(t.flow, -1) + 1
        last[t.flow] = t.text
        rows.append({"flow": t.flow, "frame": t.frame, "ts_ns": t.ts_ns,
                     "channel_id": t.channel_id, "text": t.text, "change": change})
    return rows


def _tmats_names(decoded: dec.Decoded) -> dict[dec.FlowKey, dict[int, str]]:
    last: dict[dec.FlowKey, str] = {}
    for row in expected_tmats(decoded.tmats):
        last[row["flow"]] = row["text"]
    return {flow: dec.tmats_channel_names(text) for flow, text in last.items()}


def stream_outliers(st: dec.Stream, sigma: str) -> list[tuple[int, int, int]]:
    """(frame, ts_ns, iat_ns) of each outlier message, in message order (CONTRACT §6)."""
    ts = [m.ts_ns for m in st.messages]
    iats = [b - a for a, b in zip(ts, ts[1:], strict=False)]
    n = len(iats)
    if n < 2:
        return []
    test = outlier_threshold_test(n, sum(iats), sum(x * x for x in iats), Fraction(sigma))
    return [(m.frame, m.ts_ns, x) for m, x in zip(st.messages[1:], iats, strict=True) if test(x)]


def counter_messages(st: dec.Stream, decoded: dec.Decoded) -> list[tuple[dec.Msg, tuple]]:
    """The messages of the sequence counter `st` uses, in order, each with its stream key: a
    Chapter 10 packet sequence number is per channel ID, shared by all data types of the
    channel (STREAMS §2); every other counter is the stream's own."""
    if st.protocol != "CH10":
        return [(m, st.key) for m in st.messages]
    same = [o for o in decoded.streams.values()
            if o.protocol == "CH10" and o.flow == st.flow and o.ids[0] == st.ids[0]]
    return sorted(((m, o.key) for o in same for m in o.messages), key=lambda x: x[0].frame)


def expected_stream(st: dec.Stream, decoded: dec.Decoded, sigma: str = SIGMA) -> dict:
    """Every streams/ column the decoders can speak for (not iena_type / iena_type_source,
    which are the engine's own key-status rule, PROTOCOLS §3.3)."""
    members = [(m.frame, m.ts_ns, m.nbytes) for m in st.messages]
    stats = flow_stats(members, Fraction(sigma))
    acc = account([m for m, _k in counter_messages(st, decoded)], st.seq_bits)
    ids = st.ids
    row = {
        "protocol": st.protocol, "id1": ids[0], "id2": ids[1], "id3": ids[2], "id4": ids[3],
        "stream": st.text, "messages": len(st.messages), "bytes": st.bytes,
        **{c: stats[c] for c in ("first_ns", "last_ns", "first_frame", "last_frame",
                                 "iat_count", "iat_sum_ns", "iat_min_ns", "iat_max_ns",
                                 "iat_mean_ns", "iat_std_ns")},
        "outliers": len(stream_outliers(st, sigma)),
        "seq_bits": st.seq_bits, "seq_first": acc.seq_first, "seq_last": acc.seq_last,
        "expected": acc.expected, "received": acc.received, "lost": acc.lost,
        "duplicated": acc.duplicated, "out_of_order": acc.out_of_order,
        "gap_count": acc.gap_count, "gap_missing": acc.gap_missing,
        "seq_irregular": acc.irregular,
        "errors": sum(m.error for m in st.messages),
        "status_changes": 0, "status_first": -1, "status_last": -1,
        "segments": st.segments if st.protocol == "CH10-UDP" else 0,
        "unpaired_syncs": 0, "tmats_name": "",
    }
    if st.protocol == "IENA":
        statuses = [m.status for m in st.messages]
        row["status_first"], row["status_last"] = statuses[0], statuses[-1]
        row["status_changes"] = sum(a != b for a, b in zip(statuses, statuses[1:], strict=False))
    if st.protocol == "PTP" and ids[1] == 0:
        row["unpaired_syncs"] = unpaired_syncs(decoded.ptp).get(st.key, 0)
    if st.protocol == "CH10":
        row["tmats_name"] = _tmats_names(decoded).get(st.flow, {}).get(ids[0], "")
    return row


# ---------------------------------------------------------------------------------------
# Comparison with a store's tables

def _flow_rows(flows: dict) -> dict[dec.FlowKey, int]:
    return {(str(flows["src"][i]), str(flows["dst"][i]), str(flows["kind"][i])): i
            for i in range(len(flows["src"]))}


def _same(got, want) -> bool:
    if isinstance(want, float):
        g = float(got)
        return (math.isnan(g) and math.isnan(want)) or g == want
    if isinstance(want, bool):
        return bool(got) == want
    if isinstance(want, str):
        return str(got) == want
    return int(got) == want


def compare_with_decoder(tables: dict, decoded: dec.Decoded, sigma: str = SIGMA) -> list[str]:
    """Everything that differs between a store's stream tables and the decoder; [] if none."""
    problems: list[str] = []
    flows = _flow_rows(tables["flows"])
    st_tab = tables["streams"]
    n_rows = len(st_tab["protocol"])
    engine: dict[tuple, int] = {}
    for r in range(n_rows):
        flow = int(st_tab["flow"][r])
        flow_key = next((k for k, v in flows.items() if v == flow), None)
        key = (flow_key, str(st_tab["protocol"][r]),
               tuple(int(st_tab[c][r]) for c in ("id1", "id2", "id3", "id4")))
        if key in engine:
            problems.append(f"streams: duplicate row {key}")
        engine[key] = r

    want = {k: s for k, s in decoded.streams.items()}
    missing = sorted(set(want) - set(engine), key=str)
    extra = sorted(set(engine) - set(want), key=str)
    if missing:
        problems.append(f"streams the decoder has and the engine lacks: {missing}")
    if extra:
        problems.append(f"streams the engine has and the decoder lacks: {extra}")
    for key, st in want.items():
        if st.flow not in flows:
            problems.append(f"flow {st.flow} of {key} is not in flows/")
    common = [k for k in want if k in engine and k[0] in flows]

    # Row order: (flow row, first_frame, protocol rank, id1, id2, id3, id4).
    order = sorted(engine, key=lambda k: engine[k])
    if not missing and not extra and all(k[0] in flows for k in want):
        wanted_order = sorted(want, key=lambda k: (flows[k[0]], want[k].messages[0].frame,
                                                   PROTOCOL_RANK[k[1]], *k[2]))
        if order != wanted_order:
            problems.append(f"streams row order: engine {order}, STREAMS §3 {wanted_order}")

    outlier_rows: dict[int, list[tuple[int, int, int]]] = {}
    so = tables["stream_outliers"]
    for j in range(len(so["stream_row"])):
        outlier_rows.setdefault(int(so["stream_row"][j]), []).append(
            (int(so["frame"][j]), int(so["ts_ns"][j]), int(so["iat_ns"][j])))

    gap_want: list[tuple] = []
    for key in common:
        st, r = want[key], engine[key]
        exp = expected_stream(st, decoded, sigma)
        exp["flow"] = flows[st.flow]
        for col, value in exp.items():
            if not _same(st_tab[col][r], value):
                problems.append(f"{st.text} [{key}] {col}: engine {st_tab[col][r]!r}, "
                                f"decoder {value!r}")
        if outlier_rows.get(r, []) != stream_outliers(st, sigma):
            problems.append(f"{st.text} [{key}] stream_outliers: engine {outlier_rows.get(r)}, "
                            f"decoder {stream_outliers(st, sigma)}")
        for g in account(st.messages, st.seq_bits).gaps:
            gap_want.append((g["frame_after"], r, g["index"], {**g, "stream_row": r}))

    gaps = tables["sequence_gaps"]
    gap_cols = ("stream_row", "frame_before", "frame_after", "ts_before_ns", "ts_after_ns",
                "span_ns", "seq_before", "seq_after", "missing")
    got_gaps = [tuple(int(gaps[c][j]) for c in gap_cols) for j in range(len(gaps["stream_row"]))]
    mine = {engine[k] for k in common}
    got_gaps = [g for g in got_gaps if g[0] in mine]
    want_gaps = [tuple(g[c] for c in gap_cols) for *_, g in sorted(gap_want, key=lambda x: x[:3])]
    if got_gaps != want_gaps:
        problems.append(f"sequence_gaps: engine {got_gaps}, decoder {want_gaps}")

    if "CH10" in decoded.protocols:
        tm = tables["tmats"]
        got = [(int(tm["flow"][j]), int(tm["frame"][j]), int(tm["ts_ns"][j]),
                int(tm["channel_id"][j]), str(tm["text"][j]), int(tm["change"][j]))
               for j in range(len(tm["frame"]))]
        exp_rows = [(flows.get(t["flow"], -1), t["frame"], t["ts_ns"], t["channel_id"], t["text"],
                     t["change"]) for t in expected_tmats(decoded.tmats)]
        if got != exp_rows:
            problems.append("tmats: " + _first_difference(got, exp_rows))

    if "PTP" in decoded.protocols:
        gm = tables["ptp_grandmasters"]
        got = [(int(gm["domain"][j]), str(gm["grandmaster"][j]), int(gm["flow"][j]),
                int(gm["frame"][j]), int(gm["ts_ns"][j]), int(gm["change"][j]))
               for j in range(len(gm["frame"]))]
        exp_rows = [(g["domain"], g["grandmaster"], flows.get(g["flow"], -1), g["frame"],
                     g["ts_ns"], g["change"]) for g in expected_grandmasters(decoded.ptp)]
        if got != exp_rows:
            problems.append(f"ptp_grandmasters: engine {got}, tshark {exp_rows}")
    return problems


def _first_difference(got: list, want: list) -> str:
    if len(got) != len(want):
        return f"{len(got)} engine rows vs {len(want)} decoder rows: " \
               f"{[r[:4] for r in got]} vs {[r[:4] for r in want]}"
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if a != b:
            return f"row {i}: engine {str(a)[:300]} vs decoder {str(b)[:300]}"
    return "equal"


# ---------------------------------------------------------------------------------------
# Tables as STREAMS.md would write them, built from the decoders: exercises the comparison
# before the engine exists (test_comparison_accepts_and_rejects).

def tables_from_decoder(decoded: dec.Decoded, sigma: str = SIGMA) -> dict:
    flow_order: list[dec.FlowKey] = []
    for st in sorted(decoded.streams.values(), key=lambda s: s.messages[0].frame):
        if st.flow not in flow_order:
            flow_order.append(st.flow)
    flows = {"src": [f[0] for f in flow_order], "dst": [f[1] for f in flow_order],
             "kind": [f[2] for f in flow_order]}
    fr = {f: i for i, f in enumerate(flow_order)}
    keys = sorted(decoded.streams, key=lambda k: (fr[k[0]], decoded.streams[k].messages[0].frame,
                                                  PROTOCOL_RANK[k[1]], *k[2]))
    cols: dict[str, list] = {c: [] for c in LAYOUT_STREAMS}
    outl: dict[str, list] = {c: [] for c in ("stream_row", "frame", "ts_ns", "iat_ns",
                                             "deviation")}
    gaps: list[tuple] = []
    for r, key in enumerate(keys):
        st = decoded.streams[key]
        row = expected_stream(st, decoded, sigma)
        row["flow"] = fr[st.flow]
        row["iena_type"], row["iena_type_source"] = "", ""
        for c in LAYOUT_STREAMS:
            cols[c].append(row[c])
        for frame, ts, iat in stream_outliers(st, sigma):
            for c, v in zip(("stream_row", "frame", "ts_ns", "iat_ns", "deviation"),
                            (r, frame, ts, iat, 0.0), strict=True):
                outl[c].append(v)
        counted = counter_messages(st, decoded)
        for g in account([m for m, _k in counted], st.seq_bits).gaps:
            owner = counted[[i for i, (m, _k) in enumerate(counted)
                             if not m.continuation][g["index"]]][1]
            if owner == key:  # a channel's gap is listed once, on the stream jumping
                gaps.append((g["frame_after"], r, g["index"], g))
    gap_cols = ("frame_before", "frame_after", "ts_before_ns", "ts_after_ns", "span_ns",
                "seq_before", "seq_after", "missing")
    seq_gaps: dict[str, list] = {"stream_row": [], **{c: [] for c in gap_cols}}
    for _fa, r, _i, g in sorted(gaps, key=lambda x: x[:3]):
        seq_gaps["stream_row"].append(r)
        for c in gap_cols:
            seq_gaps[c].append(g[c])
    tm = expected_tmats(decoded.tmats)
    gm = expected_grandmasters(decoded.ptp)
    return {
        "flows": {k: np.array(v, dtype=object) for k, v in flows.items()},
        "streams": {k: np.array(v, dtype=object) for k, v in cols.items()},
        "stream_outliers": {k: np.array(v, dtype=object) for k, v in outl.items()},
        "sequence_gaps": {k: np.array(v, dtype=object) for k, v in seq_gaps.items()},
        "tmats": {c: np.array([{**t, "flow": fr[t["flow"]]}[c] for t in tm], dtype=object)
                  for c in ("flow", "frame", "ts_ns", "channel_id", "text", "change")},
        "ptp_grandmasters": {c: np.array([{**g, "flow": fr[g["flow"]]}[c] for g in gm],
                                         dtype=object)
                             for c in ("domain", "grandmaster", "flow", "frame", "ts_ns",
                                       "change")},
    }


LAYOUT_STREAMS = tuple(STREAM_COLUMNS)  # STREAMS §3, in order (tests/reference_streams.py)


# ---------------------------------------------------------------------------------------
# Decoder runs (cached: every decoder is a pure function of its input file)

@functools.cache
def decoded_capture(name: str) -> dec.Decoded:
    path = dec.CAPTURES / name
    return dec.decoder_for(path)(path)


def convert_recording(c10: Path, tmp: Path) -> tuple[Path, list[dec.Datagram], dec.Decoded]:
    pcap = tmp / f"{c10.stem}.pcap"
    datagrams, placement = dec.c10_to_pcap(c10, pcap)
    return pcap, datagrams, dec.decode_c10_recording(c10, pcap, placement)


def _capture_params(chunk_sizes: tuple[str, ...]) -> list:
    """(capture, chunk size); a capture no bigger than the small chunk is one chunk either
    way, so it runs once."""
    out = []
    for p in dec.covered_captures():
        marks = [needs_tshark] if p.name.startswith("ptpv2_") else []
        for cs in chunk_sizes:
            if cs != chunk_sizes[0] and p.stat().st_size <= SMALL_CHUNK_BYTES:
                continue
            out.append(pytest.param(p.name, cs, id=f"{p.name}-{cs}", marks=marks))
    return out


CAPTURE_PARAMS = _capture_params((SMALL_CHUNK, BIG_CHUNK))
C10_PARAMS = [pytest.param(p, id=p.name) for p in dec.c10_recordings()]


# ---------------------------------------------------------------------------------------
# The decoders against PROVENANCE.md (run today)

def _only(decoded: dec.Decoded, protocol: str) -> dec.Stream:
    streams = decoded.by_protocol(protocol)
    assert len(streams) == 1, [s.text for s in streams]
    return streams[0]


def _seqs(st: dec.Stream) -> list[int]:
    return [s for _, s in st.seqs()]


def _ptp_counts(decoded: dec.Decoded) -> dict[str, int]:
    counts: dict[str, int] = {}
    for m in decoded.ptp:
        name = dec.PTP_NAMES.get(m.msgtype, f"type {m.msgtype}")
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_captures_are_covered() -> None:
    names = {p.name for p in dec.covered_captures()}
    assert len(names) == 21, sorted(names)
    assert len(dec.c10_recordings()) == 5


def test_iena_decoder_facts() -> None:
    n = decoded_capture("iena_n_key001a_10hz.pcap")
    st = _only(n, "IENA")
    assert st.ids == (0x001A, 0, 0, 0) and st.text == "key 0x001a"
    assert st.flow == ("192.168.28.8", "235.0.0.1", "ip4")
    assert _seqs(st) == list(range(195, 246))  # 51 messages, no gap
    assert {m.nbytes for m in st.messages} == {48} and not n.not_decoded
    assert {m.status for m in st.messages} <= {0x000, 0x001, 0x100, 0x101}

    d = decoded_capture("iena_d_random_keys.pcap")
    assert d.messages("IENA") == 53 and len(d.streams) == 24 and not d.not_decoded
    assert len({s.flow for s in d.streams.values()}) == 24  # one key per destination
    assert sorted(len(s.messages) for s in d.streams.values()) == [2] * 19 + [3] * 5
    assert all(_seqs(s) == list(range(len(s.messages))) for s in d.streams.values())
    assert {m.nbytes for s in d.streams.values() for m in s.messages} == {104}  # trailer cut

    m = decoded_capture("iena_m_two_packets.pcap")
    st = _only(m, "IENA")
    assert st.ids[0] == 0xA33D and _seqs(st) == [0, 1]

    bad = decoded_capture("corrupt_iena_d_bad_length.pcap")
    assert not bad.streams and [f for f, _ in bad.not_decoded] == [1, 2, 3]
    assert all("Length field does not match" in why for _, why in bad.not_decoded)


def test_inetx_decoder_facts() -> None:
    ca = _only(decoded_capture("inetx_stream_ca_8hz.pcap"), "INETX")
    assert ca.ids == (0xCA, 0, 0, 0) and ca.text == "stream 0x000000ca"
    assert _seqs(ca) == list(range(1011, 1021)) and ca.bytes == 720
    sam = _only(decoded_capture("inetx_samdec008.pcap"), "INETX")
    assert sam.ids[0] == 0x153 and _seqs(sam) == list(range(4212498, 4212502))
    aligned = decoded_capture("inetx_parser_aligned.pcap")  # decodes only with the trailer cut
    st = _only(aligned, "INETX")
    assert st.ids[0] == 0xA00 and _seqs(st) == [0, 1, 2, 3] and not aligned.not_decoded
    assert {m.nbytes for m in st.messages} == {1024}
    video = _only(decoded_capture("inetx_mpegts_video.pcap"), "INETX")
    assert video.ids[0] == 0xDC and len(video.messages) == 51
    # Every datagram is in the capture twice (same bytes, ~60 µs apart): 0,0,1,1,...,24,24,25.
    assert _seqs(video) == sorted(list(range(26)) + list(range(25)))
    acc = account(video.messages, 32)
    assert (acc.duplicated, acc.lost, acc.expected, acc.gap_count) == (25, 0, 26, 0)


def test_ch10udp_decoder_facts() -> None:
    arinc = decoded_capture("ch10udp_f1_arinc429_random_hdrs.pcap")
    udp, ch10 = arinc.by_protocol("CH10-UDP"), arinc.by_protocol("CH10")
    assert len(udp) == 24 and len(ch10) == 24 and arinc.messages("CH10") == 48
    assert all(s.ids == (1, 0, 0, 0) and len(s.messages) == 2 for s in udp)
    assert sorted(_seqs(s)[0] for s in udp) == list(range(24))  # datagram sequence 0..47 ...
    assert sorted(x for s in udp for x in _seqs(s)) == list(range(48))  # ... spread over 24 flows
    assert all(_seqs(s) == [0, 1] for s in ch10)  # one (channel, type) per flow
    assert 0x38 not in {s.ids[1] for s in ch10}  # never the ARINC-429 data type
    assert {m.nbytes for s in ch10 for m in s.messages} == {132}  # datagram holds only 128

    uart = decoded_capture("ch10udp_f1_uart.pcap")
    st = _only(uart, "CH10")
    assert st.ids == (0xDEAD, 0x50, 0, 0) and _seqs(st) == [0, 1, 2, 3]
    assert _seqs(_only(uart, "CH10-UDP")) == [0, 1, 2, 3]

    pcm = decoded_capture("ch10udp_f1_pcm_looks_like_f2.pcap")
    assert _only(pcm, "CH10-UDP").ids == (1, 0, 0, 0)  # Format 1 despite its name
    assert _seqs(_only(pcm, "CH10-UDP")) == list(range(131070, 131075))
    st = _only(pcm, "CH10")
    assert st.ids == (0x0A00, 0x09, 0, 0) and _seqs(st) == [254, 255, 0, 1, 2]

    seg = decoded_capture("ch10udp_f1_full_and_segmented.pcap")
    assert seg.fallback == [2] and not seg.not_decoded  # AcraNetwork: "No Supported"
    udp1 = _only(seg, "CH10-UDP")
    assert _seqs(udp1) == [1, 2] and udp1.segments == 1
    assert [m.continuation for m in udp1.messages] == [False, True]  # segment offset 3
    assert _only(seg, "CH10").ids == (1, 0x04, 0, 0) and _seqs(_only(seg, "CH10")) == [3]

    f2 = decoded_capture("ch10udp_f2_segmented_pcm.pcap")
    udp2 = _only(f2, "CH10-UDP")
    assert udp2.ids == (2, 0, 0, 0) and len(udp2.messages) == 171 and udp2.segments == 171
    # The Format 2 sequence number counts Chapter 10 packets, not datagrams: 62 + 47 + 62
    # segments carry 17068, 17069 and 17070.
    assert _seqs(udp2) == [17068] * 62 + [17069] * 47 + [17070] * 62
    st = _only(f2, "CH10")
    assert st.ids == (0x200, 0x09, 0, 0) and _seqs(st) == [203, 204, 205]
    assert [m.frame for m in st.messages] == [1, 63, 110]
    assert [m.nbytes for m in st.messages] == [88016, 66480, 88016]  # whole packets
    assert sum(m.continuation for m in udp2.messages) == 168
    acc = account(udp2.messages, 24)  # continuations are not counted (STREAMS §2)
    assert (acc.received, acc.duplicated, acc.expected, acc.lost) == (3, 0, 3, 0)

    f3 = decoded_capture("ch10udp_f3_cg0_stream.pcap")
    udp3 = _only(f3, "CH10-UDP")
    assert udp3.ids == (3, 0, 0, 0) and udp3.text == "fmt 3 src 0x0" and udp3.seq_bits == 32
    assert _seqs(udp3) == list(range(1481))
    st = _only(f3, "CH10")
    assert st.ids == (0xDC, 0x00, 0, 0) and set(_seqs(st)) == {0} and len(st.messages) == 1481

    zero = decoded_capture("ch10udp_f1_cg0_zero_timestamps.pcap")
    assert set(_seqs(_only(zero, "CH10-UDP"))) == {0} and len(_only(zero, "CH10").messages) == 423
    assert {m.ts_ns for s in zero.streams.values() for m in s.messages} == {0}
    for name in ("ch10udp_f1_arinc429_random_hdrs.pcap", "ch10udp_f1_uart.pcap",
                 "ch10udp_f1_pcm_looks_like_f2.pcap", "ch10udp_f2_segmented_pcm.pcap",
                 "ch10udp_f3_cg0_stream.pcap", "ch10udp_f1_cg0_zero_timestamps.pcap"):
        d = decoded_capture(name)
        assert not d.not_decoded and not d.fallback and not d.tmats, name


@needs_tshark
def test_ptp_decoder_facts() -> None:
    eth = decoded_capture("ptpv2_l2_ethertype88f7.pcap")
    assert _ptp_counts(eth) == {"Sync": 70, "Follow_Up": 70, "Announce": 35, "Delay_Req": 15,
                                "Delay_Resp": 15}
    sync = eth.streams[(("74:83:ef:01:ac:5b", "01:1b:19:00:00:00", "l2"), "PTP",
                        (0, 0, dec.signed64(0x7483EFFFFF01AC16), 274))]
    assert _seqs(sync) == list(range(70)) and sync.text == "domain 0 Sync 7483efffff01ac16-274"
    assert all(m.two_step for m in eth.ptp if m.msgtype == 0)
    assert unpaired_syncs(eth.ptp) == {sync.key: 0}
    # The switch announces itself for 3 Announces, then (priority1 128 -> 0) 000006ffff010000.
    assert [(g["grandmaster"], g["frame"], g["change"]) for g in expected_grandmasters(eth.ptp)] \
        == [("7483efffff01ac16", 3, 0), ("000006ffff010000", 22, 1)]

    gptp = decoded_capture("ptpv2_l2_gptp_pdelay.pcap")
    assert _ptp_counts(gptp) == {"Sync": 11, "Follow_Up": 11, "Announce": 5, "Pdelay_Req": 11}
    assert sum(unpaired_syncs(gptp.ptp).values()) == 0
    assert {m.flow[1] for m in gptp.ptp if m.msgtype == 2} == {"01:80:c2:00:00:0e"}

    mgmt = decoded_capture("ptpv2_l2_management.pcap")
    assert _ptp_counts(mgmt) == {"Management": 10} and len(mgmt.streams) == 2

    mc = decoded_capture("ptpv2_udp_ipv4_multicast.pcap")
    assert _ptp_counts(mc) == {"Delay_Req": 1, "Delay_Resp": 1, "Announce": 1, "Sync": 1,
                               "Follow_Up": 1}
    assert sum(unpaired_syncs(mc.ptp).values()) == 0  # Sync 1067 then its Follow_Up

    uc = decoded_capture("ptpv2_udp_ipv4_unicast_corrections.pcap")
    assert _ptp_counts(uc) == {"Delay_Req": 1, "Delay_Resp": 1, "Sync": 1}
    assert {m.domain for m in uc.ptp} == {44}

    v6 = decoded_capture("ptpv2_udp_ipv6_signalling.pcap")
    assert _ptp_counts(v6) == {"Signaling": 12, "Announce": 1, "Sync": 1}
    assert {s.flow[2] for s in v6.streams.values()} == {"ip6"}


@pytest.mark.parametrize("c10", C10_PARAMS)
def test_c10_recordings_decode_and_convert(c10: Path, tmp_path: Path) -> None:
    """pychapter10 reads each recording; c10_to_pcap carries every whole packet byte for byte
    into the pcap, where AcraNetwork finds the same packets, channel by channel."""
    facts = {  # packets pychapter10 reads, (channel, data type) -> packets
        "eth_tmats_ethernet_f0_arinc664.c10": (234, {(0, 1): 1, (30, 0x68): 101,
                                                     (31, 0x68): 102, (32, 0x69): 30}),
        "discrete_tmats_time_discrete.c10": (83, {(0, 1): 1, (1, 0x11): 61, (0, 0): 1,
                                                  (0, 3): 18, (54, 0x29): 1, (55, 0x29): 1}),
        "sample_tmats_1553_arinc_video.c10": (99, None),
        "index_only.c10": (6, {(0, 3): 6}),
        "events_only.c10": (7, {(0, 2): 7}),
    }
    pcap, datagrams, decoded = convert_recording(c10, tmp_path)
    total, per_channel = facts[c10.name]
    assert decoded.messages("CH10") == total and not decoded.not_decoded
    if per_channel is not None:
        assert {s.ids[:2]: len(s.messages) for s in decoded.by_protocol("CH10")} == per_channel
    assert sum(len(d.offsets) for d in datagrams) == total
    if total > 3:
        assert {len(d.offsets) for d in datagrams} == {1, 2, 3}  # multi-packet datagrams

    udp = _only(decoded, "CH10-UDP")
    assert udp.ids == (1, 0, 0, 0) and udp.flow == dec.C10_FLOW
    assert _seqs(udp) == [(dec.C10_FIRST_SEQ + i) & 0xFFFFFF for i in range(len(datagrams))]

    # AcraNetwork on the converted pcap agrees with pychapter10 on the recording.
    acra = dec.decode_ch10udp(pcap)
    assert not acra.not_decoded
    for key, st in decoded.streams.items():
        assert [(m.frame, m.seq, m.nbytes, m.error) for m in acra.streams[key].messages] == \
            [(m.frame, m.seq, m.nbytes, m.error) for m in st.messages], key
    assert set(acra.streams) == set(decoded.streams)
    assert [(t.frame, t.channel_id, t.text) for t in acra.tmats] == \
        [(t.frame, t.channel_id, t.text) for t in decoded.tmats]

    if c10.name == "eth_tmats_ethernet_f0_arinc664.c10":
        (tm,) = decoded.tmats
        assert "G\\PN:Heim DATaRec;" in tm.text and tm.frame == 1
        names = dec.tmats_channel_names(tm.text)
        assert (names[30], names[31], names[32]) == ("ETH-2 Channel", "ETH-3 Channel",
                                                     "AFDX-1 Channel")
        assert 0 not in names  # R-1\UD\TK1:0 is not an R-x\TK1-n attribute
    if c10.name == "discrete_tmats_time_discrete.c10":
        (tm,) = decoded.tmats
        assert not tm.text.endswith("\x00") and tm.text.endswith("TYPE-55:64DISC;\r\n")
    if c10.name == "index_only.c10":  # a recording index: numbers jump and run backwards
        acc = account(_only(decoded, "CH10").messages, 8)
        assert _seqs(_only(decoded, "CH10")) == [65, 69, 202, 206, 83, 87]
        assert (acc.gap_count, acc.out_of_order) == (3, 2)


@pytest.mark.parametrize("name", ["iena_n_key001a_10hz.pcap", "ch10udp_f2_segmented_pcm.pcap",
                                  "inetx_mpegts_video.pcap",
                                  pytest.param("ptpv2_l2_ethertype88f7.pcap", marks=needs_tshark),
                                  pytest.param("ptpv2_udp_ipv4_multicast.pcap",
                                               marks=needs_tshark)])
def test_comparison_accepts_and_rejects(name: str) -> None:
    """The comparison finds nothing to report on tables written from the decoder itself,
    and reports a changed sequence number, a dropped gap row and a missing stream."""
    decoded = decoded_capture(name)
    tables = tables_from_decoder(decoded)
    assert compare_with_decoder(tables, decoded) == []
    tables["streams"]["seq_last"][0] += 1
    assert any("seq_last" in p for p in compare_with_decoder(tables, decoded))
    tables = tables_from_decoder(decoded)
    tables["streams"] = {c: v[1:] for c, v in tables["streams"].items()}
    assert any("engine lacks" in p for p in compare_with_decoder(tables, decoded))


def test_comparison_sees_gap_rows(tmp_path: Path) -> None:
    _pcap, _dg, decoded = convert_recording(dec.C10_FILES / "events_only.c10", tmp_path)
    tables = tables_from_decoder(decoded)
    assert len(tables["sequence_gaps"]["stream_row"]) == 6  # 65, 80, 91, 107, 119, 134, 145
    assert compare_with_decoder(tables, decoded) == []
    tables["sequence_gaps"] = {c: v[:-1] for c, v in tables["sequence_gaps"].items()}
    assert any("sequence_gaps" in p for p in compare_with_decoder(tables, decoded))


# ---------------------------------------------------------------------------------------
# The engine against the decoders (runs once the engine writes the stream tables)

def _engine(path: Path, store: Path, chunk_size: str, **kw) -> dict:
    from storeio import load_store

    kw.setdefault("serial", True)
    streamlens_dist.analyze(path, store, chunk_size=chunk_size, overwrite=True, **kw)
    tables, attrs = load_store(store)
    assert attrs["complete"] is True
    return tables


@needs_engine
@pytest.mark.parametrize(("name", "chunk_size"), CAPTURE_PARAMS)
def test_engine_streams_match_decoders(name: str, chunk_size: str, tmp_path: Path) -> None:
    decoded = decoded_capture(name)
    tables = _engine(dec.CAPTURES / name, tmp_path / "s.zarr", chunk_size)
    problems = compare_with_decoder(tables, decoded)
    assert not problems, f"{name} ({chunk_size}):\n  " + "\n  ".join(problems)


@needs_engine
@pytest.mark.parametrize("chunk_size", [SMALL_CHUNK, BIG_CHUNK])
@pytest.mark.parametrize("c10", C10_PARAMS)
def test_engine_streams_match_pychapter10(c10: Path, chunk_size: str, tmp_path: Path) -> None:
    pcap, _datagrams, decoded = convert_recording(c10, tmp_path)
    tables = _engine(pcap, tmp_path / "s.zarr", chunk_size)
    problems = compare_with_decoder(tables, decoded)
    assert not problems, f"{c10.name} ({chunk_size}):\n  " + "\n  ".join(problems)


@needs_engine
def test_engine_streams_match_on_a_local_cluster(tmp_path: Path) -> None:
    """The same comparison with two worker processes (multi-packet datagrams, TMATS, a 24-bit
    wrap and 8-bit channel wraps)."""
    pcap, _datagrams, decoded = convert_recording(
        dec.C10_FILES / "eth_tmats_ethernet_f0_arinc664.c10", tmp_path)
    tables = _engine(pcap, tmp_path / "s.zarr", CLUSTER_CHUNK, serial=False, workers=2)
    problems = compare_with_decoder(tables, decoded)
    assert not problems, "\n  ".join(problems)


@needs_engine
def test_streams_columns_are_the_documented_ones() -> None:
    assert tuple(LAYOUT["streams"]) == LAYOUT_STREAMS
    assert set(STREAM_TABLES) <= set(LAYOUT)
