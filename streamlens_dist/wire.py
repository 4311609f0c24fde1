"""The wire format of partials and outlier rows: versioned msgpack, never pickle (STYLE §9).

Integers outside msgpack's 64-bit range (sums of squared IATs) travel as extension type 1:
two's-complement big-endian bytes. Unpacking is bounded and every message is checked for its
schema name and version before use.
"""

from __future__ import annotations

import io
from typing import Any

import msgpack

from .errors import WireFormatError
from .gcpause import without_gc
from .partial import Partial, Prefix
from .series import HIST_VALUES, SERIES_VALUES, Binned

SCHEMA = "streamlens-dist/partial"
VERSION = 3
BIGINT_EXT = 1
MAX_MESSAGE = 1 << 31  # bytes; a partial is per-flow, not per-packet, so this is generous
_I64_MIN, _U64_MAX = -(1 << 63), (1 << 64) - 1


def _int(v: int | None) -> Any:
    if v is None or _I64_MIN <= v <= _U64_MAX:
        return v
    return msgpack.ExtType(BIGINT_EXT, v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True))


def _ext_hook(code: int, data: bytes) -> Any:
    if code == BIGINT_EXT:
        return int.from_bytes(data, "big", signed=True)
    raise WireFormatError(f"unknown msgpack extension type {code}")


def pack(kind: str, body: dict) -> bytes:
    return msgpack.packb({"schema": SCHEMA, "v": VERSION, "kind": kind, **body},
                         use_bin_type=True)


def unpack(data: bytes, kind: str) -> dict:
    if len(data) > MAX_MESSAGE:
        raise WireFormatError(f"{kind} message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    try:
        msg = msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise WireFormatError(f"undecodable {kind} message: {exc}") from exc
    _check_header(msg, kind)
    return msg


def _check_header(msg: Any, kind: str) -> None:
    if not isinstance(msg, dict) or msg.get("schema") != SCHEMA or msg.get("kind") != kind:
        raise WireFormatError(f"not a streamlens-dist {kind} message")
    if msg.get("v") != VERSION:
        raise WireFormatError(f"{kind} message version {msg.get('v')} is not {VERSION}: "
                              "client and workers run different streamlens-dist versions")


def _stats(st: list) -> list:
    return [*st[:8], _int(st[8]), st[9], st[10]]


def _stream_fields(p: Partial, flow_index: dict) -> dict:
    stream_index = {k: i for i, k in enumerate(p.streams)}
    return {
        "streams": [[flow_index[k[0]], *k[1:], *_stats(st)] for k, st in p.streams.items()],
        # sequence counters: stream keys, or a Chapter 10 channel's (streamchunk.counter_key)
        "seq": [[flow_index[k[0]], *k[1:], *v] for k, v in p.seq.items()],
        "counters": [[stream_index[k], *v] for k, v in p.counters.items()],
        "stop": [[stream_index[k], [list(t) for t in h], d, c]
                 for k, (h, d, c) in p.stream_tops.items()],
        "sync": [[flow_index[k[0]], *k[1:], *v] for k, v in p.sync.items()],
        "gm": [[d, [[g, flow_index[f], fr, t] for g, f, fr, t in rows]]
               for d, rows in p.grandmasters.items()],
        "tmats": [[flow_index[k], v] for k, v in p.tmats.items()],
    }


def _stream_parts(m: dict, flow_keys: list, keys: list) -> dict:
    """The stream state but the streams' statistics; `keys`: the stream keys in order."""
    return {
        "seq": {(flow_keys[r[0]], *r[1:6]): list(r[6:]) for r in m["seq"]},
        "counters": {keys[r[0]]: list(r[1:]) for r in m["counters"]},
        "stream_tops": {keys[i]: [[tuple(t) for t in h], d, c] for i, h, d, c in m["stop"]},
        "sync": {(flow_keys[r[0]], *r[1:4]): list(r[4:]) for r in m["sync"]},
        "grandmasters": {d: [[g, flow_keys[f], fr, t] for g, f, fr, t in rows]
                         for d, rows in m["gm"]},
        "tmats": {flow_keys[i]: [list(x) for x in v] for i, v in m["tmats"]},
    }


@without_gc
def partial_to_bytes(p: Partial) -> bytes:
    flow_index = {k: i for i, k in enumerate(p.flows)}
    type_index = {k: i for i, k in enumerate(p.types)}
    streams = _stream_fields(p, flow_index)
    # The scopes' statistics come first: partial_scopes_from_bytes reads only them.
    return pack("partial", {
        "flows": [[*k, sorted(p.hints.get(k, ())), *_stats(st)] for k, st in p.flows.items()],
        "types": [[flow_index[k[0]], k[1], *_stats(st)] for k, st in p.types.items()],
        "streams": streams.pop("streams"),
        **streams,
        "lo": p.lo, "hi": p.hi, "frames": p.frames, "untimed": p.untimed,
        "undecodable": p.undecodable, "undecodable_first": p.undecodable_first,
        "first_ns": p.first_ns, "last_ns": p.last_ns,
        "malformed": [[flow_index[k], name, n, first] for (k, name), (n, first)
                      in p.malformed.items()],
        "ftop": [[flow_index[k], [list(t) for t in h], d, c] for k, (h, d, c) in p.flow_tops.items()],
        "profile": p.profile, "bin_ns": p.bin_ns,
        "fser": p.flow_series.to_wire(), "tser": p.type_series.to_wire(),
        "fhist": p.flow_hist.to_wire(), "thist": p.type_hist.to_wire(),
        "ttop": [[type_index[k], [list(t) for t in h], d, c] for k, (h, d, c) in p.type_tops.items()],
    })


def _binned(names: tuple[str, ...], blobs: list, scopes: int) -> Binned:
    t = Binned.from_wire(names, blobs)
    sc = t.cols["scope"]
    if len(sc) and (int(sc.min()) < 0 or int(sc.max()) >= scopes):
        raise ValueError(f"series row of scope {int(sc.max())} outside 0..{scopes - 1}")
    return t


def _scope_stats(m: dict) -> tuple[list, dict, dict, dict]:
    """(flow keys in message order, flows, types, streams): key -> statistics list."""
    flow_keys = [tuple(r[:3]) for r in m["flows"]]
    flows = {k: list(r[4:15]) for k, r in zip(flow_keys, m["flows"], strict=True)}
    types = {(flow_keys[r[0]], r[1]): list(r[2:13]) for r in m["types"]}
    streams = {(flow_keys[r[0]], *r[1:6]): list(r[6:17]) for r in m["streams"]}
    return flow_keys, flows, types, streams


@without_gc
def partial_from_bytes(data: bytes) -> Partial:
    m = unpack(data, "partial")
    try:
        flow_keys, flows, types, streams = _scope_stats(m)
        type_keys = list(types)
        return Partial(
            lo=m["lo"], hi=m["hi"], frames=m["frames"], untimed=m["untimed"],
            undecodable=m["undecodable"], undecodable_first=list(m["undecodable_first"]),
            first_ns=m["first_ns"], last_ns=m["last_ns"], flows=flows,
            hints={k: set(r[3]) for k, r in zip(flow_keys, m["flows"], strict=True)},
            types=types,
            malformed={(flow_keys[i], name): [n, first] for i, name, n, first in m["malformed"]},
            profile=dict(m.get("profile", {})), bin_ns=m["bin_ns"],
            flow_series=_binned(SERIES_VALUES, m["fser"], len(flows)),
            type_series=_binned(SERIES_VALUES, m["tser"], len(types)),
            flow_hist=_binned(HIST_VALUES, m["fhist"], len(flows)),
            type_hist=_binned(HIST_VALUES, m["thist"], len(types)),
            flow_tops={flow_keys[i]: [[tuple(t) for t in h], d, c] for i, h, d, c in m["ftop"]},
            type_tops={type_keys[i]: [[tuple(t) for t in h], d, c] for i, h, d, c in m["ttop"]},
            streams=streams, **_stream_parts(m, flow_keys, list(streams)),
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise WireFormatError(f"malformed partial message: {exc!r}") from exc


@without_gc
def partial_scopes_from_bytes(data: bytes) -> Partial:
    """Only the flows, types and streams of a partial (what `advance` needs): read from the
    front of the message, the rest (series, tops, sequence state) skipped undecoded."""
    if len(data) > MAX_MESSAGE:
        raise WireFormatError(f"partial message of {len(data)} bytes exceeds {MAX_MESSAGE}")
    want = {"schema", "v", "kind", "flows", "types", "streams"}
    m: dict = {}
    try:
        reader = msgpack.Unpacker(io.BytesIO(data), raw=False, ext_hook=_ext_hook,
                                  strict_map_key=False, max_buffer_size=MAX_MESSAGE,
                                  read_size=1 << 16)
        for _ in range(reader.read_map_header()):
            if not want - m.keys():
                break
            key = reader.unpack()
            if key in want:
                m[key] = reader.unpack()
            else:
                reader.skip()
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, msgpack.OutOfData) as exc:  # TypeError: an unhashable key
        raise WireFormatError(f"undecodable partial message: {exc}") from exc
    _check_header(m, "partial")
    try:
        _, flows, types, streams = _scope_stats(m)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise WireFormatError(f"malformed partial message: {exc!r}") from exc
    return Partial(flows=flows, types=types, streams=streams)


def prefix_to_bytes(p: Prefix) -> bytes:
    return pack("prefix", {"flows": [[*k, t] for k, t in p.flows.items()],
                           "types": [[*k[0], k[1], t] for k, t in p.types.items()],
                           "streams": [[*k[0], *k[1:], t] for k, t in p.streams.items()]})


@without_gc
def prefix_from_bytes(data: bytes) -> Prefix:
    m = unpack(data, "prefix")
    try:
        return Prefix({tuple(r[:3]): r[3] for r in m["flows"]},
                      {(tuple(r[:3]), r[3]): r[4] for r in m["types"]},
                      {(tuple(r[:3]), *r[3:8]): r[8] for r in m["streams"]})
    except (KeyError, IndexError, TypeError) as exc:
        raise WireFormatError(f"malformed prefix message: {exc!r}") from exc
