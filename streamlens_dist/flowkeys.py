"""Scope keys as bytes: how partials match flows across chunks, beside the text users see.

A flow's text key is (src, dst, kind) (CONTRACT.md §7). Its byte key is a kind code and the
two addresses as they are on the wire: ip4 4 + 4 bytes, ip6 16 + 16, l2 (a MAC pair) 6 + 6.
Columns of byte keys (numpy "S" arrays) are sorted and searched by numpy, so matching the
flows of a chunk against everything before costs no Python per flow; text is made only for
the flows a result shows. A (flow, frame type) key is the frame type's code + 1, then the
flow's byte key. Keys of any other shape (tests use plain numbers) are 0xFF, their msgpack
form and 0x01; the last byte, like the fixed length each kind code implies, keeps numpy's
trailing-NUL stripping from ever making two keys equal.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import msgpack
import numpy as np

from .dissect.names import TYPE_ID, TYPE_NAMES

KIND_CODE = {"l2": 2, "ip4": 4, "ip6": 6}
_KIND = {v: k for k, v in KIND_CODE.items()}
_WIDTH = {"l2": 6, "ip4": 4, "ip6": 16}
_LENGTH = {code: 1 + 2 * _WIDTH[k] for code, k in _KIND.items()}
_OTHER = 0xFF
_CACHE = 1 << 17


def _pack_other(key: Any) -> bytes:
    return bytes([_OTHER]) + msgpack.packb(key, use_bin_type=True) + b"\x01"


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _address(text: str, kind: str) -> bytes | None:
    try:
        if kind == "ip4":
            b = socket.inet_aton(text)
            return b if socket.inet_ntoa(b) == text else None
        if kind == "ip6":
            a = ipaddress.IPv6Address(text)
            return a.packed if a.compressed == text else None
        b = bytes.fromhex(text.replace(":", ""))
        return b if len(b) == 6 and b.hex(":") == text else None
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=_CACHE)
def flow_bytes(key: Any) -> bytes:
    """The byte key of a flow key (a text key, or any msgpack-able value in tests)."""
    if isinstance(key, tuple) and len(key) == 3 and key[2] in KIND_CODE and \
            isinstance(key[0], str) and isinstance(key[1], str):
        src, dst = _address(key[0], key[2]), _address(key[1], key[2])
        if src is not None and dst is not None:
            return bytes([KIND_CODE[key[2]]]) + src + dst
    return _pack_other(key)


def _addr_text(b: bytes, kind: str) -> str:
    if kind == "ip4":
        return socket.inet_ntoa(b)
    if kind == "ip6":
        return ipaddress.IPv6Address(b).compressed
    return b.hex(":")


@functools.lru_cache(maxsize=_CACHE)
def flow_text(b: bytes) -> Any:
    """The flow key of a byte key (numpy strips trailing NULs: they are put back)."""
    if b and b[0] == _OTHER:
        return _tuples(msgpack.unpackb(b[1:-1], raw=False))
    kind = _KIND[b[0]]
    b = b.ljust(_LENGTH[b[0]], b"\0")
    w = _WIDTH[kind]
    return (_addr_text(b[1:1 + w], kind), _addr_text(b[1 + w:], kind), kind)


_OCTETS = np.array([str(i) for i in range(256)], dtype=np.dtypes.StringDType())


def _ip4_text(raw: np.ndarray) -> np.ndarray:
    """Dotted quads of (n, 4) uint8 rows, made by numpy's string ufuncs."""
    p = _OCTETS[raw]
    add = np.strings.add
    return add(add(add(add(add(add(p[:, 0], "."), p[:, 1]), "."), p[:, 2]), "."), p[:, 3])


def flow_columns(kb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, kind) of each flow byte key as string columns: IPv4 keys (most of a big
    capture) made column-wise, the others one by one."""
    n, w = len(kb), kb.dtype.itemsize
    out = [np.empty(n, dtype=np.dtypes.StringDType()) for _ in range(3)]
    if not n:
        return out[0], out[1], out[2]
    raw = np.zeros((n, max(w, 9)), np.uint8)
    raw[:, :w] = np.ascontiguousarray(kb).view(np.uint8).reshape(n, w)
    ip4 = (raw[:, 0] == KIND_CODE["ip4"]) & (w <= 9 or (raw[:, 9:] == 0).all(axis=1))
    rows = np.flatnonzero(ip4)
    out[0][rows], out[1][rows], out[2][rows] = _ip4_text(raw[rows, 1:5]), \
        _ip4_text(raw[rows, 5:9]), "ip4"
    for r in np.flatnonzero(~ip4).tolist():
        key = flow_text(kb[r].item())
        for col, v in zip(out, key if isinstance(key, tuple) and len(key) == 3
                          else (str(key), "", ""), strict=True):
            col[r] = str(v)
    return out[0], out[1], out[2]


def type_bytes(key: Any) -> bytes:
    """The byte key of a (flow key, frame type name) key."""
    if isinstance(key, tuple) and len(key) == 2 and key[1] in TYPE_ID:
        return bytes([TYPE_ID[key[1]] + 1]) + flow_bytes(key[0])
    return _pack_other(key)


def type_parts(kb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frame type code, or -1 for a key of another shape; the flow's byte key) per
    (flow, frame type) byte key."""
    n, w = len(kb), kb.dtype.itemsize
    raw = np.ascontiguousarray(kb).view(np.uint8).reshape(n, w)
    code = raw[:, 0].astype(np.int64) - 1 if w else np.zeros(n, np.int64)
    code[code == _OTHER - 1] = -1
    flow = np.ascontiguousarray(raw[:, 1:]).view(f"S{w - 1}").ravel() if w > 1 else \
        np.zeros(n, "S1")
    return code, flow


def type_text(b: bytes) -> Any:
    if b[0] == _OTHER:
        return _tuples(msgpack.unpackb(b[1:-1], raw=False))
    return (flow_text(b[1:]), TYPE_NAMES[b[0] - 1])


def key_array(keys: list[bytes]) -> np.ndarray:
    return np.array(keys, dtype=bytes) if keys else np.zeros(0, "S1")


def fast_flow_keys(kind: str, pairs: np.ndarray) -> np.ndarray:
    """Byte keys of (n, 2 * width) uint8 rows: the source then destination address."""
    n = len(pairs)
    raw = np.empty((n, 1 + pairs.shape[1]), np.uint8)
    raw[:, 0] = KIND_CODE[kind]
    raw[:, 1:] = pairs
    return raw.view(f"S{raw.shape[1]}").ravel() if n else np.zeros(0, "S1")


def fast_type_keys(ftype: np.ndarray, flow_keys: np.ndarray) -> np.ndarray:
    """Byte keys of (frame type code, flow byte key) rows."""
    w = flow_keys.dtype.itemsize
    raw = np.zeros((len(ftype), 1 + w), np.uint8)
    raw[:, 0] = ftype + 1
    raw[:, 1:] = flow_keys.view(np.uint8).reshape(-1, w) if len(ftype) else 0
    return raw.view(f"S{1 + w}").ravel() if len(ftype) else np.zeros(0, "S1")


class TextKeys(Sequence):
    """The text keys of a column of byte keys, each made when first asked for."""

    def __init__(self, keys: np.ndarray, text: Any = flow_text) -> None:
        self.bytes, self._text = keys, text
        self._made: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.bytes)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        got = self._made.get(i)
        if got is None:
            got = self._made[i] = self._text(self.bytes[i].item())
        return got

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # equal to lists, so unhashable like them


_MUL = np.uint64(0x9E3779B97F4A7C15)
_FIN = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


def key_hash(kb: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each byte key, the same whatever the array's width (its zero padding
    adds nothing): only a fast way to find a key, never its identity (KeyIndex checks the
    bytes)."""
    n, w = len(kb), kb.dtype.itemsize
    words = (w + 7) // 8
    raw = np.zeros((n, 8 * words), np.uint8)
    if n:
        raw[:, :w] = np.ascontiguousarray(kb).view(np.uint8).reshape(n, w)
    u = raw.view("<u8")
    h = np.zeros(n, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words):
            x = u[:, j] * _MUL  # a zero word mixes to zero: padding changes nothing
            x ^= x >> np.uint64(31)
            r = np.uint64(7 * j + 1)
            h ^= (x << r) | (x >> (np.uint64(64) - r))
        h ^= h >> np.uint64(33)
        h *= _FIN[0]
        h ^= h >> np.uint64(33)
        h *= _FIN[1]
        h ^= h >> np.uint64(33)
    return h


class KeyIndex:
    """Finds byte keys among a column of distinct byte keys: a sorted search over their
    hashes, each hit checked against the bytes. Should two of the column's keys share a
    hash, it searches the bytes themselves (slower, as exact)."""

    def __init__(self, kb: np.ndarray, hashes: np.ndarray | None = None,
                 order: np.ndarray | None = None, sorted_h: np.ndarray | None = None) -> None:
        self.kb = kb
        self.h = key_hash(kb) if hashes is None else hashes
        self.order = np.argsort(self.h, kind="stable") if order is None else order
        sh = self.h[self.order] if sorted_h is None else sorted_h
        self.exact = not bool(len(sh) > 1 and np.any(sh[1:] == sh[:-1]))
        self.sorted_h = sh
        if not self.exact:  # a collision: by bytes
            self.order = np.argsort(kb, kind="stable")
            self.sorted_kb = kb[self.order]

    def __len__(self) -> int:
        return len(self.kb)

    def rows_of(self, kb: np.ndarray, hashes: np.ndarray | None = None,
                presorted: bool = False) -> np.ndarray:
        """Each key's row in the column, -1 where it has none (`presorted`: the keys come in
        the order of their hashes)."""
        n = len(self.kb)
        if not n or not len(kb):
            return np.full(len(kb), -1, np.int64)
        if not self.exact:
            pos = np.minimum(np.searchsorted(self.sorted_kb, kb), n - 1)
            return np.where(self.sorted_kb[pos] == kb, self.order[pos], -1).astype(np.int64)
        qh = key_hash(kb) if hashes is None else hashes
        # sorted queries search from where the last one ended: far fewer cache misses
        if presorted:
            pos = np.searchsorted(self.sorted_h, qh)
        else:
            qo = np.argsort(qh)
            pos = np.empty(len(qh), np.int64)
            pos[qo] = np.searchsorted(self.sorted_h, qh[qo])
        pos = np.minimum(pos, n - 1)
        cand = self.order[pos]
        ok = (self.sorted_h[pos] == qh) & (self.kb[cand] == kb)
        return np.where(ok, cand, -1).astype(np.int64)

    def extended(self, kb: np.ndarray, hashes: np.ndarray) -> KeyIndex:
        """The index of this column followed by new keys `kb` (none of them in it)."""
        all_kb = np.concatenate([self.kb, kb])
        all_h = np.concatenate([self.h, hashes])
        if not self.exact:
            return KeyIndex(all_kb, all_h)
        fresh = np.argsort(hashes, kind="stable")
        fresh_h = hashes[fresh]
        # the new keys go in among the sorted ones: copies, no sort of the whole column
        at = np.searchsorted(self.sorted_h, fresh_h, side="right")
        return KeyIndex(all_kb, all_h, np.insert(self.order, at, len(self.kb) + fresh),
                        np.insert(self.sorted_h, at, fresh_h))


class GrowingIndex:
    """Finds byte keys among a growing column of distinct byte keys (row i: the i-th added):
    an open-addressing table of rows (linear probing, at most half full), searched for a
    whole array of keys at once; every hit is checked against the bytes, and keys whose
    hashes collide take the next free slots, so it is exact whatever the hash. Adding keys
    costs their number (the table doubles now and then), not the column's."""

    def __init__(self) -> None:
        self.n = 0
        self._kb = np.zeros(0, "S1")
        self._h = np.zeros(0, np.uint64)
        self._slots = np.full(1024, -1, np.int64)

    @property
    def kb(self) -> np.ndarray:
        return self._kb[:self.n]

    @property
    def h(self) -> np.ndarray:
        return self._h[:self.n]

    def __len__(self) -> int:
        return self.n

    def rows_of(self, kb: np.ndarray, hashes: np.ndarray) -> np.ndarray:
        """Each key's row, -1 where the column has none."""
        out = np.full(len(kb), -1, np.int64)
        mask = np.uint64(len(self._slots) - 1)
        todo = np.arange(len(kb))
        slot = (hashes & mask).astype(np.int64)
        while len(todo):  # one probe of every unresolved key per round
            r = self._slots[slot]
            full = r >= 0
            todo, slot, r = todo[full], slot[full], r[full]  # an empty slot: not there
            hit = (self._h[r] == hashes[todo]) & (self._kb[r] == kb[todo])
            out[todo[hit]] = r[hit]
            miss = ~hit
            todo, slot = todo[miss], (slot[miss] + 1) & (len(self._slots) - 1)
        return out

    def add(self, kb: np.ndarray, hashes: np.ndarray) -> None:
        """Keys not in the column yet (each once) as its next rows."""
        m = len(kb)
        if not m:
            return
        need = self.n + m
        if need > len(self._h) or kb.dtype.itemsize > self._kb.dtype.itemsize:
            room = max(need, 2 * len(self._h))
            width = max(kb.dtype.itemsize, self._kb.dtype.itemsize)
            grown_kb = np.zeros(room, f"S{width}")
            grown_kb[:self.n] = self._kb[:self.n]
            grown_h = np.zeros(room, np.uint64)
            grown_h[:self.n] = self._h[:self.n]
            self._kb, self._h = grown_kb, grown_h
        self._kb[self.n:need] = kb
        self._h[self.n:need] = hashes
        first, self.n = self.n, need
        if 2 * need > len(self._slots):
            size = len(self._slots)
            while 2 * need > size:
                size *= 4  # room for as many again before the next rehash
            self._slots = np.full(size, -1, np.int64)
            self._place(np.arange(need))
        else:
            self._place(np.arange(first, need))

    def _place(self, rows: np.ndarray) -> None:
        mask = len(self._slots) - 1
        slot = (self._h[rows] & np.uint64(mask)).astype(np.int64)
        while len(rows):  # each round, the first key wanting a free slot takes it
            free = np.flatnonzero(self._slots[slot] < 0)
            taken, first = np.unique(slot[free], return_index=True)
            self._slots[taken] = rows[free[first]]
            left = np.ones(len(rows), bool)
            left[free[first]] = False
            rows, slot = rows[left], (slot[left] + 1) & mask
