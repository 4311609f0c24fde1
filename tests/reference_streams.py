"""Reference implementation of docs/STREAMS.md: protocol streams, sequence accounting, TMATS
and PTP grandmasters (issue 5).

An *oracle* for the test suite, like tests/reference.py and written the same way: one
process, plain loops, one message at a time, Python integers and exact fractions. It parses
the payload bytes itself with struct and reuses only tests/reference.py's own frame decoding
(never streamlens_dist.dissect), so that engine and oracle are two independent readings of
the page.

Public API:

    reference_streams(frames, flow_rows, sigma, iena_keys=None) -> dict
        frames: reference.reference_frames(...) records (each ok frame carries its
        "linktype" and raw "data"); flow_rows: {(kind, src, dst): row in flows/};
        sigma: decimal text; iena_keys: {key: type} or {key: (type, name)} (see
        normalize_iena_keys). Returns the tables streams, stream_outliers, sequence_gaps,
        tmats, ptp_grandmasters as {table: {column: list}}.
    apply_iena_keys(frames, iena_keys)   # STREAMS.md §6: IENA frame types from the key map
    load_iena_keys(path) -> dict         # the --iena-keys CSV / YAML file

Readings of the page where it leaves room (listed in the report of issue 5):
- Segment continuations: Format 1 is tested before Format 2 (the order of §1.2).
- Format 3 sequence bits 32 - 4L (L = byte 0 >> 4); for L > 8 taken as 0 bits (the source ID
  is then the whole word); a stream's seq_bits is its first message's.
- `frame_before` of a gap: the message that set H (a later duplicate of H does not move it).
- Chapter 10 counters are per (flow, channel ID); every sequence column of a CH10 row
  (seq_bits .. gap_missing, seq_irregular) is its channel counter's.
- unpaired_syncs counts Follow_Ups strictly after the Sync and before the next Sync of the
  same stream; other rows 0.
- TMATS names: `R-x\\TK1-n:<id>;` with a decimal (or 0x hex) id, found anywhere in the text;
  the first (x, n) declaring a channel id wins.
"""

from __future__ import annotations

import csv
import re
import struct
from fractions import Fraction
from pathlib import Path

from reference import (
    PTP_NAMES,
    ch10_hdr_ok,
    find_ch10,
    network_layer,
    scope_stats,
)

STREAM_COLUMNS = [
    "flow", "protocol", "id1", "id2", "id3", "id4", "stream", "messages", "bytes", "first_ns",
    "last_ns", "first_frame", "last_frame", "iat_count", "iat_sum_ns", "iat_min_ns",
    "iat_max_ns", "iat_mean_ns", "iat_std_ns", "outliers", "seq_bits", "seq_first", "seq_last",
    "expected", "received", "lost", "duplicated", "out_of_order", "gap_count", "gap_missing",
    "seq_irregular", "errors", "status_changes", "status_first", "status_last", "segments",
    "unpaired_syncs", "iena_type", "iena_type_source", "tmats_name",
]
STREAM_OUTLIER_COLUMNS = ["stream_row", "frame", "ts_ns", "iat_ns", "deviation"]
GAP_COLUMNS = ["stream_row", "frame_before", "frame_after", "ts_before_ns", "ts_after_ns",
               "span_ns", "seq_before", "seq_after", "missing"]
TMATS_COLUMNS = ["flow", "frame", "ts_ns", "channel_id", "text", "change"]
GRANDMASTER_COLUMNS = ["domain", "grandmaster", "flow", "frame", "ts_ns", "change"]

PROTOCOL_RANK = {"CH10-UDP": 0, "CH10": 1, "PTP": 2, "IENA": 3, "INETX": 4}
IRREGULAR_LIMIT = 100_000
MAX_PACKETS_PER_DATAGRAM = 4096
IENA_TYPES = ("P", "D", "N", "M", "Q")

# --------------------------------------------------------------------------------------
# Application payload of a frame (STREAMS.md §1)
# --------------------------------------------------------------------------------------


def udp_payload(ip: dict | None) -> bytes | None:
    """UDP payload of a decoded IP packet: bytes 8..ulen when 8 <= ulen <= captured, else
    every captured byte after the UDP header; None when the packet carries no UDP header."""
    if ip is None or ip["nonfirst_fragment"] or ip["proto"] != 17:
        return None
    l4 = ip["l4"]
    if len(l4) < 8:
        return None
    ulen = struct.unpack_from(">H", l4, 4)[0]
    return l4[8:ulen] if 8 <= ulen <= len(l4) else l4[8:]


def app_payload(frame: dict) -> tuple[str, bytes] | None:
    """("udp", UDP payload) or ("l2", bytes after the ethertype, VLAN tags skipped) of a
    decoded frame, following reference.decode_frame's link and network layers."""
    ip, ethertype, pos = network_layer(frame["linktype"], frame["data"])
    if ip is None:
        return None if ethertype is None else ("l2", frame["data"][pos:])
    payload = udp_payload(ip)
    return None if payload is None else ("udp", payload)


# --------------------------------------------------------------------------------------
# IENA key map (STREAMS.md §6)
# --------------------------------------------------------------------------------------


def _type_letter(value: str) -> str:
    t = str(value).strip().upper()
    if t.startswith("IENA-"):
        t = t[5:]
    if t not in IENA_TYPES:
        raise ValueError(f"IENA type must be one of P, D, N, M, Q, got {value!r}")
    return t


def _key_number(value) -> int:
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def normalize_iena_keys(mapping: dict | None) -> dict[int, tuple[str, str | None]]:
    """{key: "N" | "IENA-n" | (type, name) | {"type": T, "name": N}} -> {key: (T, name)}."""
    out = {}
    for key, value in (mapping or {}).items():
        if isinstance(value, dict):
            t, name = value["type"], value.get("name")
        elif isinstance(value, tuple | list):
            t, name = value[0], (value[1] if len(value) > 1 else None)
        else:
            t, name = value, None
        out[_key_number(key)] = (_type_letter(t), None if name in (None, "") else str(name))
    return out


def load_iena_keys(path: str | Path) -> dict[int, tuple[str, str | None]]:
    """A key map file: CSV with a header row (key, type, optional name) or a YAML mapping."""
    text = Path(path).read_text()
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if "," in first and "key" in first.lower():
        rows = csv.DictReader(text.splitlines())
        rows.fieldnames = [f.strip().lower() for f in rows.fieldnames or []]
        return normalize_iena_keys({r["key"]: (r["type"], (r.get("name") or "").strip())
                                    for r in rows if (r.get("key") or "").strip()})
    import yaml

    return normalize_iena_keys(yaml.safe_load(text) or {})


def apply_iena_keys(frames: list[dict], iena_keys: dict | None) -> None:
    """Frames of type IENA-* whose key is in the map get IENA-<type> from the map."""
    keys = normalize_iena_keys(iena_keys)
    if not keys:
        return
    for f in frames:
        if f["status"] == "ok" and f["frame_type"].startswith("IENA-"):
            found = app_payload(f)
            key = struct.unpack_from(">H", found[1], 0)[0]
            if key in keys:
                f["frame_type"] = "IENA-" + keys[key][0]


# --------------------------------------------------------------------------------------
# Messages of one frame
# --------------------------------------------------------------------------------------


def to_int64(u: int) -> int:
    return u - 2**64 if u >= 2**63 else u


def ch10_udp_sequence(p: bytes, fmt: int) -> tuple[int, int, int]:
    """(source ID, sequence number, bits) of a transfer header of format fmt."""
    if fmt == 1:
        return 0, int.from_bytes(p[1:4], "little"), 24
    if fmt == 2:
        return 0, int.from_bytes(p[0:3], "big"), 24
    word = struct.unpack_from("<I", p, 4)[0]
    bits = max(0, 32 - 4 * (p[0] >> 4))
    return word >> bits, word & ((1 << bits) - 1), bits


def continuation(p: bytes) -> tuple[int, int] | None:
    """(format, sequence number) of a Chapter 10 segment continuation (§1.2), else None."""
    if len(p) < 12:
        return None
    if p[0] == 0x11 and struct.unpack_from("<I", p, 8)[0] > 0:
        return 1, int.from_bytes(p[1:4], "little")
    if p[3] == 0x12:  # offset and packet size both count 32-bit words
        offset = (p[4] << 16) | struct.unpack_from(">H", p, 8)[0]
        if offset > 0 and int.from_bytes(p[5:8], "big") > offset:
            return 2, int.from_bytes(p[0:3], "big")
    return None


def message(protocol, ids, seq, bits, nbytes, **extra) -> dict:
    return {"protocol": protocol, "ids": ids, "seq": seq, "bits": bits, "bytes": nbytes,
            "error": False, **extra}


def ch10_packet_message(p: bytes, pos: int) -> dict:
    channel, plen, dlen, _dtv, seq, flags, dtype = struct.unpack_from("<HIIBBBB", p, pos + 2)
    return message("CH10", (channel, dtype, 0, 0), seq, 8, plen, error=bool(flags & 0x30),
                   plen=plen, dlen=dlen, hlen=36 if flags & 0x80 else 24, dtype=dtype,
                   channel=channel)


def frame_messages(frame: dict) -> list[dict]:
    """The messages of one decoded frame, in position order (STREAMS.md §1)."""
    ft = frame["frame_type"]
    if not (ft in ("CH10-Data", "TMATS", "INETX", "UDP") or ft.startswith(("PTP-", "IENA-"))):
        return []
    found = app_payload(frame)
    if found is None:
        return []
    kind, p = found
    out = []
    if ft in ("CH10-Data", "TMATS"):
        fmt, off = find_ch10(p)
        src, seq, bits = ch10_udp_sequence(p, fmt)
        mtype = p[0] >> 4 if fmt == 1 else (p[3] >> 4 if fmt == 2 else 0)
        first_segment = fmt in (1, 2) and mtype == 1
        out.append(message("CH10-UDP", (fmt, src, 0, 0), seq, bits, len(p),
                           segment="first" if first_segment else None))
        if fmt == 3 or mtype == 0:  # full-packet datagram: walk its packets
            pos = off
            while len(out) - 1 < MAX_PACKETS_PER_DATAGRAM and len(p) - pos >= 24:
                if ch10_hdr_ok(p, pos) is None:
                    break
                m = ch10_packet_message(p, pos)
                whole = pos + m["plen"] <= len(p)
                if m["dtype"] == 0x01 and whole:
                    start = pos + m["hlen"] + 4
                    m["tmats"] = p[start:pos + m["hlen"] + m["dlen"]].decode("latin-1")
                    m["tmats"] = m["tmats"].rstrip("\x00")
                out.append(m)
                if not whole:
                    break
                pos += m["plen"]
        elif first_segment:
            out.append(ch10_packet_message(p, off))
    elif ft.startswith("PTP-"):
        mt = p[0] & 0x0F
        clock = int.from_bytes(p[20:28], "big")
        length = struct.unpack_from(">H", p, 2)[0]
        m = message("PTP", (p[4], mt, to_int64(clock), struct.unpack_from(">H", p, 28)[0]),
                    struct.unpack_from(">H", p, 30)[0], 16, length, clock=clock,
                    two_step=bool(p[6] & 0x02))
        if mt == 0xB and length >= 63:
            m["grandmaster"] = p[53:61].hex()
        out.append(m)
    elif ft.startswith("IENA-"):
        key, seq = struct.unpack_from(">H", p, 0)[0], struct.unpack_from(">H", p, 12)[0]
        out.append(message("IENA", (key, 0, 0, 0), seq, 16, len(p),
                           status=(p[10] << 8) | p[11], iena_type=ft[5:]))
    elif ft == "INETX":
        sid, seq = struct.unpack_from(">II", p, 4)
        pif = struct.unpack_from(">I", p, 24)[0]
        out.append(message("INETX", (sid, 0, 0, 0), seq, 32, len(p),
                           error=bool(pif & (1 << 31) or pif & (1 << 26))))
    elif ft == "UDP" and kind == "udp" and (cont := continuation(p)) is not None:
        out.append(message("CH10-UDP", (cont[0], 0, 0, 0), cont[1], 24, len(p),
                           segment="continuation"))
    return out


# --------------------------------------------------------------------------------------
# Per-stream computations
# --------------------------------------------------------------------------------------


def sequence_accounting(msgs: list[dict], bits: int) -> dict:
    """STREAMS.md §2, message by message with an unbounded H, over the messages that carry
    their own sequence number (segment continuations repeat their packet's)."""
    msgs = [msg for msg in msgs if msg.get("segment") != "continuation"]
    if not msgs:
        return {"seq_bits": bits, "seq_first": -1, "seq_last": -1, "received": 0,
                "expected": 0, "lost": 0, "duplicated": 0, "out_of_order": 0, "gap_count": 0,
                "gap_missing": 0, "seq_irregular": False, "gaps": []}
    m = 1 << bits
    irregular_pairs = sum(1 for a, b in zip(msgs, msgs[1:], strict=False)
                          if (b["seq"] - a["seq"] - 1) % m != 0)
    high = high_msg = None
    lowest = highest = None
    duplicated = late = 0
    gaps = []
    for msg in msgs:
        s = msg["seq"]
        if high is None:
            e = high = s
            high_msg = msg
        else:
            d = (s - high % m) % m
            if 2 * d >= m:
                d -= m
            e = high + d
            if e > high:
                if e > high + 1:
                    gaps.append((high_msg, msg, high % m, s, e - high - 1))
                high, high_msg = e, msg
            elif e == high:
                duplicated += 1
            else:
                late += 1
        lowest = e if lowest is None else min(lowest, e)
        highest = e if highest is None else max(highest, e)
    out = {"seq_bits": bits, "seq_first": msgs[0]["seq"], "seq_last": msgs[-1]["seq"],
           "received": len(msgs)}
    if irregular_pairs > IRREGULAR_LIMIT:
        out.update(expected=-1, lost=-1, duplicated=-1, out_of_order=-1, gap_count=-1,
                   gap_missing=-1, seq_irregular=True, gaps=[])
        return out
    expected = highest - lowest + 1
    out.update(expected=expected, lost=max(0, expected - (len(msgs) - duplicated)),
               duplicated=duplicated, out_of_order=late, gap_count=len(gaps),
               gap_missing=sum(g[4] for g in gaps), seq_irregular=False, gaps=gaps)
    return out


def unpaired_syncs(syncs: list[dict], follow_ups: list[dict]) -> int:
    """Two-step Syncs with no Follow_Up of the same sequenceId after them and before the
    next Sync of their stream (message order = frame order: one PTP message per frame)."""
    count = 0
    for i, sync in enumerate(syncs):
        if not sync["two_step"]:
            continue
        end = syncs[i + 1]["frame"] if i + 1 < len(syncs) else None
        paired = any(fu["seq"] == sync["seq"] and fu["frame"] > sync["frame"]
                     and (end is None or fu["frame"] < end) for fu in follow_ups)
        count += not paired
    return count


TK1 = re.compile(r"R-(\d+)\\TK1-(\d+):([^;]*);")
DSI = re.compile(r"R-(\d+)\\DSI-(\d+):([^;]*);")


def tmats_channel_names(text: str) -> dict[int, str]:
    """channel id -> data source ID declared by R-x\\TK1-n and R-x\\DSI-n (same x, n)."""
    names = {(m.group(1), m.group(2)): m.group(3) for m in DSI.finditer(text)}
    out: dict[int, str] = {}
    for m in TK1.finditer(text):
        value = m.group(3).strip()
        try:
            channel = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
        except ValueError:
            continue
        if (m.group(1), m.group(2)) in names:
            out.setdefault(channel, names[(m.group(1), m.group(2))])
    return out


def stream_text(protocol: str, ids: tuple, key_names: dict) -> str:
    a, b, c, d = ids
    if protocol == "CH10":
        return f"ch 0x{a:04x} type 0x{b:02x}"
    if protocol == "CH10-UDP":
        return f"fmt {a}" if a != 3 else f"fmt 3 src 0x{b:x}"
    if protocol == "PTP":
        name = PTP_NAMES.get(b, f"type {b}")
        return f"domain {a} {name} {c % 2**64:016x}-{d}"
    if protocol == "IENA":
        name = key_names.get(a, (None, None))[1]
        return f"key 0x{a:04x}" + (f" {name}" if name else "")
    return f"stream 0x{a:08x}"


# --------------------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------------------


def reference_streams(frames: list[dict], flow_rows: dict, sigma: str = "3",
                      iena_keys: dict | None = None) -> dict:
    """The five tables of STREAMS.md for frames (already carrying key-map frame types)."""
    k = Fraction(sigma)
    keys = normalize_iena_keys(iena_keys)
    streams: dict[tuple, list] = {}  # (flow row, protocol, ids) -> messages in order
    tmats_texts: list[dict] = []
    announces: list[dict] = []
    for f in frames:
        if f["status"] != "ok":
            continue
        flow = flow_rows[(f["kind"], f["src"], f["dst"])]
        for pos, msg in enumerate(frame_messages(f)):
            msg.update(frame=f["frame"], ts_ns=f["ts_ns"], pos=pos, flow=flow)
            streams.setdefault((flow, msg["protocol"], msg["ids"]), []).append(msg)
            if "tmats" in msg:
                tmats_texts.append(msg)
            if "grandmaster" in msg:
                announces.append(msg)

    # CH10-UDP streams only on flows with a CH10 message
    ch10_flows = {flow for flow, protocol, _ids in streams if protocol == "CH10"}
    streams = {key: msgs for key, msgs in streams.items()
               if key[1] != "CH10-UDP" or key[0] in ch10_flows}

    # TMATS: per flow the first text and every change
    tmats_rows, last_text, changes = [], {}, {}
    for msg in tmats_texts:
        flow = msg["flow"]
        if flow in last_text and last_text[flow] == msg["tmats"]:
            continue
        change = changes.get(flow, -1) + 1
        changes[flow], last_text[flow] = change, msg["tmats"]
        tmats_rows.append([flow, msg["frame"], msg["ts_ns"], msg["channel"], msg["tmats"],
                           change])
    tmats_rows.sort(key=lambda r: r[1])
    flow_names = {flow: tmats_channel_names(text) for flow, text in last_text.items()}

    # PTP grandmasters: per domain the first Announce and every change
    gm_rows, last_gm, gm_changes = [], {}, {}
    for msg in announces:
        domain = msg["ids"][0]
        if domain in last_gm and last_gm[domain] == msg["grandmaster"]:
            continue
        change = gm_changes.get(domain, -1) + 1
        gm_changes[domain], last_gm[domain] = change, msg["grandmaster"]
        gm_rows.append([domain, msg["grandmaster"], msg["flow"], msg["frame"], msg["ts_ns"],
                        change])
    gm_rows.sort(key=lambda r: r[3])

    order = sorted(streams, key=lambda key: (key[0], streams[key][0]["frame"],
                                             PROTOCOL_RANK[key[1]], *key[2]))
    row_of = {key: row for row, key in enumerate(order)}

    # sequence counters (§2): a stream's own, but Chapter 10 counts per (flow, channel ID)
    # whatever the data type; a gap row belongs to the stream of the message after it
    counters: dict[tuple, list] = {}
    for key in order:
        flow, protocol, ids = key
        counter = (flow, "CH10", ids[0]) if protocol == "CH10" else key
        counters.setdefault(counter, []).extend(streams[key])
    accounting, gaps = {}, []
    for counter, msgs in counters.items():
        msgs.sort(key=lambda m: (m["frame"], m["pos"]))
        accounting[counter] = seq = sequence_accounting(msgs, msgs[0]["bits"])
        for before, after, seq_before, seq_after, missing in seq["gaps"]:
            gaps.append([row_of[(after["flow"], after["protocol"], after["ids"])],
                         before["frame"], after["frame"], before["ts_ns"], after["ts_ns"],
                         after["ts_ns"] - before["ts_ns"], seq_before, seq_after, missing])

    table = {c: [] for c in STREAM_COLUMNS}
    outliers = []
    for row, key in enumerate(order):
        flow, protocol, ids = key
        msgs = streams[key]
        stats, found = scope_stats(msgs, k)
        seq = accounting[(flow, "CH10", ids[0]) if protocol == "CH10" else key]
        values = {"flow": flow, "protocol": protocol, "id1": ids[0], "id2": ids[1],
                  "id3": ids[2], "id4": ids[3], "stream": stream_text(protocol, ids, keys),
                  **stats, "messages": stats["frames"], **seq,
                  "errors": sum(1 for m in msgs if m["error"]),
                  "status_changes": 0, "status_first": -1, "status_last": -1,
                  "segments": sum(1 for m in msgs if m.get("segment")),
                  "unpaired_syncs": 0, "iena_type": "", "iena_type_source": "",
                  "tmats_name": ""}
        if protocol == "IENA":
            values["status_changes"] = sum(1 for a, b in zip(msgs, msgs[1:], strict=False)
                                           if a["status"] != b["status"])
            values["status_first"], values["status_last"] = msgs[0]["status"], msgs[-1]["status"]
            values["iena_type"] = ",".join(sorted({m["iena_type"] for m in msgs}))
            values["iena_type_source"] = "map" if ids[0] in keys else "flags"
        elif protocol == "PTP" and ids[1] == 0:
            follow_ups = streams.get((flow, "PTP", (ids[0], 8, ids[2], ids[3])), [])
            values["unpaired_syncs"] = unpaired_syncs(msgs, follow_ups)
        elif protocol == "CH10":
            values["tmats_name"] = flow_names.get(flow, {}).get(ids[0], "")
        for c in STREAM_COLUMNS:
            table[c].append(values[c])
        # outliers and gaps: stable sorts keep message order within a stream
        for frame_no, ts, x, dev in found:
            outliers.append([row, frame_no, ts, x, dev])
    outliers.sort(key=lambda r: (r[1], r[0]))
    gaps.sort(key=lambda r: (r[2], r[0]))

    def columns(names, rows):
        return {c: [r[i] for r in rows] for i, c in enumerate(names)}

    return {
        "streams": table,
        "stream_outliers": columns(STREAM_OUTLIER_COLUMNS, outliers),
        "sequence_gaps": columns(GAP_COLUMNS, gaps),
        "tmats": columns(TMATS_COLUMNS, tmats_rows),
        "ptp_grandmasters": columns(GRANDMASTER_COLUMNS, gm_rows),
    }
