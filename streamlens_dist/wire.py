"""The wire format of partials and outlier rows: versioned msgpack, never pickle (STYLE §9).

Integers outside msgpack's 64-bit range (sums of squared IATs of protocol streams) travel as
extension type 1: two's-complement big-endian bytes. The columns of flows and frame types
(scopetable.py) travel as little-endian bytes, one msgpack bin per column, their keys as one
flat list: a partial of many flows decodes at numpy's speed, not one Python list per scope.
Unpacking is bounded and every message is checked for its schema name and version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import numpy as np

from .errors import WireFormatError
from .flowkeys import flow_bytes, flow_text, key_array, type_text
from .gcpause import without_gc
from .partial import Before, Partial, aligned_seams, referenced_flows
from .scopetable import COLS, LIMBS, ScopeTable, ScopeValues, Tops
from .series import HIST_VALUES, SERIES_VALUES, Binned

SCHEMA = "streamlens-dist/partial"
VERSION = 5
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
    # TypeError: a map key msgpack cannot hash (a list)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError) as exc:
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


def _column_wire(a: np.ndarray, dtype: str = "<i8", const: bool = True) -> bytes | list | int:
    if a.dtype == object:  # an IAT of a hostile capture beyond int64
        return [_int(v) for v in a.tolist()]
    if const and len(a) > 1 and not (a != a[0]).any():  # a constant column: its value
        return int(a[0])
    return np.ascontiguousarray(a, dtype).tobytes()


def _column(v: Any, rows: int, dtype: str = "<i8") -> np.ndarray:
    if isinstance(v, bytes):
        a = np.frombuffer(v, dtype).astype(np.dtype(dtype).newbyteorder("="), copy=False)
    elif type(v) is int:
        try:  # one value seen as `rows` (read-only): no memory per row
            a = np.broadcast_to(np.array(v, np.dtype(dtype).newbyteorder("=")), (rows,))
        except OverflowError as exc:
            raise ValueError(f"a constant column's value {v} is out of range") from exc
    elif isinstance(v, list) and all(type(x) is int for x in v):
        a = np.array(v, dtype=object)
    else:
        raise ValueError("a column is neither bytes nor a list of integers")
    if len(a) != rows:
        raise ValueError(f"a column of {len(a)} rows in a table of {rows}")
    return a


def _flow_rows(flows: ScopeTable, p: Partial) -> dict:
    """Text flow key -> its row in `flows`, for every flow the rest of `p` refers to: one
    search for all of them (a chunk of random payloads on a PTP port has a stream per flow)."""
    keys = referenced_flows(p)
    rows = flows.keyidx.rows_of(key_array([flow_bytes(k) for k in keys]))
    if (rows < 0).any():
        raise KeyError(keys[int(np.flatnonzero(rows < 0)[0])])
    return dict(zip(keys, rows.tolist(), strict=True))


def table_to_wire(t: ScopeTable) -> dict:
    """A ScopeTable as {kb: its byte keys, w: their width, rows, cols, q, tops}."""
    kb = np.ascontiguousarray(t.kb)
    out = {"kb": kb.tobytes(), "w": kb.dtype.itemsize, "rows": len(t),
           "cols": [_column_wire(t.cols[c]) for c in COLS],
           "q": [_column_wire(x, "<u8") for x in t.q], "tops": None}
    if t.tops is not None:
        k = t.tops
        out["tops"] = [_column_wire(x, const=False) for x in (k.row, k.iat, k.frame, k.ts)] + \
            [_column_wire(k.dropped)] + \
            [np.ascontiguousarray(k.all_kept, np.uint8).tobytes()]
    return out


def table_from_wire(m: dict, text: Callable[[bytes], Any]) -> ScopeTable:
    rows, w, kb = m["rows"], m["w"], m["kb"]
    if not isinstance(kb, bytes) or not isinstance(w, int) or w < 1 or len(kb) != rows * w:
        raise ValueError(f"byte keys of {len(kb)} bytes for {rows} rows of {w}")
    cols = {c: _column(v, rows) for c, v in zip(COLS, m["cols"], strict=True)}
    q = tuple(_column(v, rows, "<u8") for v in m["q"])
    if len(q) != len(LIMBS):
        raise ValueError("a table needs three limb columns")
    tops = None
    if m["tops"] is not None:
        r, iat, frame, ts, dropped, kept = m["tops"]
        n = len(r) // 8 if isinstance(r, bytes) else len(r)
        row = _column(r, n)
        if n and (int(row.min()) < 0 or int(row.max()) >= rows):
            raise ValueError("a kept IAT of a row outside the table")
        tops = Tops(row, _column(iat, n), _column(frame, n), _column(ts, n),
                    _column(dropped, rows), _column(kept, rows, "u1").astype(bool))
    return ScopeTable(np.frombuffer(kb, f"S{w}"), cols, q, tops, text)


@without_gc
def partial_to_bytes(p: Partial) -> bytes:
    flows, types = p.flow_table(), p.type_table()
    flow_index = _flow_rows(flows, p)
    streams = _stream_fields(p, flow_index)
    # The scopes' statistics come first: partial_scopes_from_bytes reads only them.
    return pack("partial", {
        "flows": table_to_wire(flows),
        "types": table_to_wire(types),
        "streams": streams.pop("streams"),
        **streams,
        "lo": p.lo, "hi": p.hi, "frames": p.frames, "untimed": p.untimed,
        "undecodable": p.undecodable, "undecodable_first": p.undecodable_first,
        "first_ns": p.first_ns, "last_ns": p.last_ns,
        "malformed": [[flow_index[k], name, n, first] for (k, name), (n, first)
                      in p.malformed.items()],
        "profile": p.profile, "bin_ns": p.bin_ns,
        "fser": p.flow_series.to_wire(), "tser": p.type_series.to_wire(),
        "fhist": p.flow_hist.to_wire(), "thist": p.type_hist.to_wire(),
    })


def _binned(names: tuple[str, ...], blobs: list, scopes: int) -> Binned:
    t = Binned.from_wire(names, blobs)
    sc = t.cols["scope"]
    if len(sc) and (int(sc.min()) < 0 or int(sc.max()) >= scopes):
        raise ValueError(f"series row of scope {int(sc.max())} outside 0..{scopes - 1}")
    return t


def _scope_stats(m: dict) -> tuple[Sequence, ScopeTable, ScopeTable, dict]:
    """(flow keys in message order, flows, types, streams)."""
    flows = table_from_wire(m["flows"], flow_text)
    flow_keys = flows.key_list
    types = table_from_wire(m["types"], type_text)
    streams = {(flow_keys[r[0]], *r[1:6]): list(r[6:17]) for r in m["streams"]}
    return flow_keys, flows, types, streams


@without_gc
def partial_from_bytes(data: bytes) -> Partial:
    m = unpack(data, "partial")
    try:
        flow_keys, flows, types, streams = _scope_stats(m)
        return Partial(
            lo=m["lo"], hi=m["hi"], frames=m["frames"], untimed=m["untimed"],
            undecodable=m["undecodable"], undecodable_first=list(m["undecodable_first"]),
            first_ns=m["first_ns"], last_ns=m["last_ns"], flows=flows, types=types,
            malformed={(flow_keys[i], name): [n, first] for i, name, n, first in m["malformed"]},
            profile=dict(m.get("profile", {})), bin_ns=m["bin_ns"],
            flow_series=_binned(SERIES_VALUES, m["fser"], len(flows)),
            type_series=_binned(SERIES_VALUES, m["tser"], len(types)),
            flow_hist=_binned(HIST_VALUES, m["fhist"], len(flows)),
            type_hist=_binned(HIST_VALUES, m["thist"], len(types)),
            streams=streams, **_stream_parts(m, flow_keys, list(streams)),
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise WireFormatError(f"malformed partial message: {exc!r}") from exc


def values_to_wire(t: ScopeValues) -> dict:
    kb = np.ascontiguousarray(t.kb)
    return {"kb": kb.tobytes(), "w": kb.dtype.itemsize,
            "v": np.ascontiguousarray(t.values, "<i8").tobytes()}


def values_from_wire(m: dict, text: Callable[[bytes], Any]) -> ScopeValues:
    w, kb = m["w"], m["kb"]
    if not isinstance(kb, bytes) or not isinstance(w, int) or w < 1 or len(kb) % w:
        raise ValueError(f"byte keys of {len(kb)} bytes in rows of {w}")
    return ScopeValues(np.frombuffer(kb, f"S{w}"), _column(m["v"], len(kb) // w), text)


def _seams_wire(seam: np.ndarray, has: np.ndarray) -> list:
    """[rows, a bit per row, width, the seam IATs of the rows that have one]: 4 bytes each
    where all are in [0, 2^32) (the usual case), else 8, else Python ints."""
    s = seam[has]
    if s.dtype != object and (not len(s) or (int(s.min()) >= 0 and int(s.max()) < 1 << 32)):
        width, values = 4, np.ascontiguousarray(s, "<u4").tobytes()
    else:
        width, values = 8, _column_wire(s, const=False)
    return [len(has), np.packbits(has).tobytes(), width, values]


def _seams_from_wire(m: list) -> tuple[np.ndarray, np.ndarray]:
    rows, bits, width, values = m
    if type(rows) is not int or rows < 0 or not isinstance(bits, bytes) or \
            len(bits) != (rows + 7) // 8 or width not in (4, 8):
        raise ValueError("a Before's columns do not fit their rows")
    has = np.unpackbits(np.frombuffer(bits, np.uint8), count=rows).astype(bool)
    n = int(np.count_nonzero(has))
    seam = _column(values, n, "<u4" if width == 4 else "<i8")
    return aligned_seams(rows, has, seam.astype(np.int64) if width == 4 else seam), has


def before_to_bytes(b: Before) -> bytes:
    """What a chunk's outlier pass needs of the chunks before it, as raw columns."""
    return pack("before", {"flows": _seams_wire(b.flows, b.flows_has),
                           "types": _seams_wire(b.types, b.types_has),
                           "streams": [[*k[0], *k[1:], t] for k, t in b.streams.items()]})


@without_gc
def before_from_bytes(data: bytes) -> Before:
    m = unpack(data, "before")
    try:
        flows, flows_has = _seams_from_wire(m["flows"])
        types, types_has = _seams_from_wire(m["types"])
        return Before(flows, flows_has, types, types_has,
                      {(tuple(r[:3]), *r[3:8]): r[8] for r in m["streams"]})
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise WireFormatError(f"malformed before message: {exc!r}") from exc
