"""The compiled extensions do not trust their callers (issue 19): every index, offset, length,
shift and count that comes from an argument is checked at the entry point, and a bad one is a
clean ValueError or IndexError (or the module's documented fall back), never a read or write
outside a buffer, a shift by a negative or too large width, or a signed overflow.

Each test starts from a call that succeeds and changes one argument. Besides out-of-range
values: buffers that are not whole numbers of items or are misaligned (a misaligned int64 load
is undefined behaviour), and outputs that share memory with another argument (the kernels read
back what they wrote, or read inputs they checked before writing: an alias would make checked
values unchecked). .ci/sanitize runs this file under ASan and UBSan too."""

from __future__ import annotations

import importlib
import os
import struct
import sys

import numpy as np
import pytest

from streamlens_dist import series
from streamlens_dist.dissect import columnar, link
from streamlens_dist.dissect import streams as dstreams

I64_MAX = np.iinfo(np.int64).max
LIMIT = 1 << 61  # scopestats.TS_LIMIT


def _ext(name: str):  # noqa: ANN202 - a module
    try:
        return importlib.import_module(f"streamlens_dist.{name}")
    except ImportError:
        pytest.skip(f"streamlens_dist.{name} is not built")


def misaligned(nbytes: int) -> memoryview:
    """A writable, C-contiguous buffer of nbytes whose address is odd."""
    return memoryview(bytearray(nbytes + 1))[1:]


# --------------------------------------------------------------------------- the build tested


@pytest.mark.skipif(not os.environ.get("STREAMLENS_SANITIZED_TREE"),
                    reason="only under .ci/sanitize, which sets STREAMLENS_SANITIZED_TREE")
@pytest.mark.parametrize("name", ["capture._walk", "dissect._kernels", "dissect._messages",
                                  "_scopes", "_streams"])
def test_extensions_come_from_the_sanitized_tree(name: str) -> None:
    tree = os.path.realpath(os.environ["STREAMLENS_SANITIZED_TREE"])
    mod = importlib.import_module(f"streamlens_dist.{name}")
    assert os.path.realpath(mod.__file__).startswith(tree + os.sep), mod.__file__
    assert os.path.realpath(sys.modules["streamlens_dist"].__file__).startswith(tree + os.sep)


# --------------------------------------------------------------------------- _scopes


def _small(nscopes: int) -> int:
    """Work buffers for nscopes scopes, or small ones where nscopes sizes no buffer."""
    return max(0, min(nscopes, 64))


def stats_args(scope, ts, size=None, nscopes=None, keep_all=0) -> list:
    scope = np.asarray(scope, np.int64)
    n = len(scope)
    m = _ext("_scopes")
    nscopes = int(scope.max()) + 1 if nscopes is None else nscopes
    return [scope, np.arange(n, dtype=np.int64), np.asarray(ts, np.int64),
            np.full(n, 60, np.int64) if size is None else np.asarray(size, np.int64),
            np.zeros(n, np.int32), nscopes, 2.0, keep_all, np.empty(_small(nscopes), np.int64),
            np.empty((n, m.OUT_COLS), np.int64), np.empty((n, 3), np.uint64), np.empty(n),
            np.empty((n, 4), np.int64)]


def series_args(scope, ts, size=None, nscopes=None, bin_ns=10**9) -> list:
    scope = np.asarray(scope, np.int64)
    n = len(scope)
    m = _ext("_scopes")
    nscopes = int(scope.max()) + 1 if nscopes is None else nscopes
    return [scope, np.asarray(ts, np.int64),
            np.full(n, 60, np.int64) if size is None else np.asarray(size, np.int64),
            nscopes, bin_ns, series._EDGES.copy(), np.empty(_small(nscopes), np.int64),
            np.empty((n, m.SERIES_COLS), np.int64),
            np.zeros(_small(nscopes) * series.HIST_BINS, np.int64)]


SCOPE = [0, 1, 0, 1]
TS = [0, 10, 2 * 10**9, 3 * 10**9]


def test_scopes_valid_calls() -> None:
    m = _ext("_scopes")
    assert m.scope_stats(*stats_args(SCOPE, TS)) == (2, 0)  # no IAT above a zero-std cut
    assert m.scope_stats(*stats_args(SCOPE, TS, keep_all=1)) == (2, 2)  # one IAT each: kept
    assert m.series(*series_args(SCOPE, TS)) == 4
    # the bounds themselves are accepted
    assert m.scope_stats(*stats_args([0, 0], [-LIMIT, LIMIT]))[0] == 1
    assert m.series(*series_args([0, 0], [-LIMIT, LIMIT])) == 2


@pytest.mark.parametrize("fn", ["scope_stats", "series"])
@pytest.mark.parametrize("t", [LIMIT + 1, -LIMIT - 1, I64_MAX, -I64_MAX - 1])
def test_timestamps_beyond_2_61(fn: str, t: int) -> None:
    args = (stats_args if fn == "scope_stats" else series_args)([0, 0, 0], [0, t, 0])
    with pytest.raises(ValueError, match=r"timestamp .* of frame 1 is beyond \+-2\^61"):
        getattr(_ext("_scopes"), fn)(*args)


@pytest.mark.parametrize("sid", [2, -1, 1 << 40])
def test_series_scope_id_outside_nscopes(sid: int) -> None:
    with pytest.raises(ValueError, match=rf"series: scope id {sid} of frame 2 is outside \[0, 2\)"):
        _ext("_scopes").series(*series_args([0, 1, sid], [0, 1, 2], nscopes=2))


@pytest.mark.parametrize("fn", ["scope_stats", "series"])
@pytest.mark.parametrize("nscopes", [1 << 61, (1 << 63) - 1, -1])
def test_nscopes_that_sizes_no_buffer(fn: str, nscopes: int) -> None:
    """nscopes * 8 and nscopes * 92 * 8 must not overflow into a small, matching length."""
    args = (stats_args if fn == "scope_stats" else series_args)([0], [0], nscopes=nscopes)
    with pytest.raises(ValueError, match=f"{fn}: nscopes {nscopes} is outside"):
        getattr(_ext("_scopes"), fn)(*args)


@pytest.mark.parametrize("fn", ["scope_stats", "series"])
def test_sizes_whose_sum_could_pass_int64(fn: str) -> None:
    args = (stats_args if fn == "scope_stats" else series_args)(
        [0, 0], [0, 1], size=[1 << 62, 1 << 62])
    with pytest.raises(ValueError, match="sizes up to 4611686018427387904 in 2 frames"):
        getattr(_ext("_scopes"), fn)(*args)


@pytest.mark.parametrize("edges", [
    lambda e: e[::-1].copy(),
    lambda e: np.r_[0, e[1:]],
    lambda e: np.r_[e[:10], e[9], e[11:]],
])
def test_series_edges_not_positive_ascending(edges) -> None:
    args = series_args(SCOPE, TS)
    args[5] = edges(series._EDGES)
    with pytest.raises(ValueError, match="series: edges are not positive and ascending"):
        _ext("_scopes").series(*args)


def test_scopes_outputs_sharing_memory() -> None:
    m = _ext("_scopes")
    args = stats_args(SCOPE, TS)
    args[8] = args[9].reshape(-1)[:2]  # map inside out
    with pytest.raises(ValueError, match="scope_stats: map shares memory with out"):
        m.scope_stats(*args)
    args = series_args(SCOPE, TS)
    args[6] = args[7].reshape(-1)[:2]  # cur inside rows
    with pytest.raises(ValueError, match="series: cur shares memory with rows"):
        m.series(*args)
    args = series_args(SCOPE, TS)
    args[6] = args[0][:2]  # cur over the scope ids it is indexed by
    with pytest.raises(ValueError, match="series: cur shares memory with scope"):
        m.series(*args)


def test_scopes_misaligned_columns() -> None:
    m = _ext("_scopes")
    args = stats_args(SCOPE, TS)
    ts = misaligned(32)
    ts.cast("B")[:] = args[2].tobytes()
    args[2] = ts
    with pytest.raises(ValueError, match="scope_stats: ts is not aligned to 8 bytes"):
        m.scope_stats(*args)
    args = series_args(SCOPE, TS)
    args[6] = misaligned(16)
    with pytest.raises(ValueError, match="series: cur is not aligned to 8 bytes"):
        m.series(*args)


# --------------------------------------------------------------------------- _streams


def accumulate_args(bits=(16, 16), ts=(0, 100), size=(20, 20), flow_bytes=None) -> list:
    """Two IENA frames of one flow, one message each."""
    n = len(bits)
    cols = {"row": np.arange(n), "proto": np.full(n, dstreams.IENA), "id1": np.zeros(n),
            "id2": np.zeros(n), "id3": np.zeros(n), "id4": np.zeros(n), "seq": np.arange(n),
            "bits": np.asarray(bits), "size": np.asarray(size), "state": np.zeros(n),
            "error": np.zeros(n), "segment": np.zeros(n)}
    flow = np.zeros(n, np.int32) if flow_bytes is None else flow_bytes
    return [flow, np.arange(n, dtype=np.int64), np.asarray(ts, np.int64),
            np.zeros(n, np.int16), *(np.asarray(cols[c], np.int64) for c in cols), 2.0, 8]


def test_streams_valid_calls() -> None:
    m = _ext("_streams")
    streams, _q, _kept, runs = m.accumulate(*accumulate_args())
    assert len(streams) == 8 * m.SCOLS and len(runs) == 8 * 4  # one stream, one run
    assert m.accumulate(*accumulate_args(bits=(0, 32))) is not None
    # the documented fall back: timestamps too far apart for int64 IATs
    assert m.accumulate(*accumulate_args(ts=(0, LIMIT + 1))) is None


@pytest.mark.parametrize("bits", [33, 64, 65, -1, -64, 1 << 40])
def test_sequence_width_outside_0_32(bits: int) -> None:
    with pytest.raises(ValueError, match=rf"sequence width {bits} of message 1 is outside \[0, 32\]"):
        _ext("_streams").accumulate(*accumulate_args(bits=(16, bits)))


def test_bad_width_is_refused_before_the_fall_back() -> None:
    """A bad value later in the chunk than a far timestamp is still refused: the answer does
    not depend on where it sits."""
    args = accumulate_args(bits=(16, 16, 99), ts=(0, LIMIT + 1, 5), size=(1, 1, 1))
    with pytest.raises(ValueError, match="sequence width 99 of message 2"):
        _ext("_streams").accumulate(*args)


def test_streams_sizes_whose_sum_could_pass_int64() -> None:
    with pytest.raises(ValueError, match="accumulate: sizes up to .* in 2 messages could pass"):
        _ext("_streams").accumulate(*accumulate_args(size=(1 << 62, -(1 << 62))))


def test_streams_columns_not_whole_or_misaligned() -> None:
    m = _ext("_streams")
    with pytest.raises(ValueError, match="accumulate: flow has 6 bytes, not a whole number of 4"):
        m.accumulate(*accumulate_args(bits=(16,), ts=(0,), size=(1,), flow_bytes=bytes(6)))
    args = accumulate_args()
    ts = misaligned(16)
    ts.cast("B")[:] = args[2].tobytes()
    args[2] = ts
    with pytest.raises(ValueError, match="accumulate: ts is not aligned to 8 bytes"):
        m.accumulate(*args)


# --------------------------------------------------------------------------- _messages


def messages_args(off=0, length=16, nbuf=64) -> list:
    """One frame whose type carries IENA messages, its payload at buf[off:off + length]."""
    kinds = np.array([dstreams.IENA], np.int64)
    ncol = _ext("dissect._messages").NCOL
    return [bytes(nbuf), np.zeros(1, np.int16), np.ones(1, np.bool_), kinds,
            np.array([off], np.int64), np.array([length], np.int64), 0,
            tuple(np.empty((ncol, 8), np.int64)), np.zeros(1, np.uint8)]


def test_messages_valid_call() -> None:
    args = messages_args()
    assert _ext("dissect._messages").messages(*args) == (1, 1)
    assert args[8].tolist() == [0]


@pytest.mark.parametrize("off,length", [(8, I64_MAX), (I64_MAX - 8, 16), (I64_MAX, I64_MAX)])
def test_payload_beyond_the_buffer_goes_to_the_per_frame_path(off: int, length: int) -> None:
    """app_off + app_len must not overflow into a length that looks inside the buffer."""
    args = messages_args(off, length)
    assert _ext("dissect._messages").messages(*args) == (0, 1)
    assert args[8].tolist() == [1]


def test_messages_outputs_sharing_memory() -> None:
    m = _ext("dissect._messages")
    args = messages_args()
    col = np.empty(8, np.int64)
    args[7] = (col,) * m.NCOL  # every column the same array
    with pytest.raises(ValueError, match=r"messages: out\[row\] shares memory with out\[pos\]"):
        m.messages(*args)
    args = messages_args()
    cols = list(np.empty((m.NCOL, 1), np.int64))
    cols[0] = args[4]  # rows written over the payload offsets
    args[7] = tuple(cols)
    with pytest.raises(ValueError, match=r"messages: out\[row\] shares memory with app_off"):
        m.messages(*args)


def test_messages_columns_not_whole_or_misaligned() -> None:
    m = _ext("dissect._messages")
    args = messages_args()
    args[3] = bytes(12)  # kinds: one and a half int64
    with pytest.raises(ValueError, match="messages: kinds has 12 bytes, not a whole number of 8"):
        m.messages(*args)
    args = messages_args()
    off = misaligned(8)
    off.cast("B")[:] = args[4].tobytes()
    args[4] = off
    with pytest.raises(ValueError, match="messages: app_off is not aligned to 8 bytes"):
        m.messages(*args)


def intern_args(n=4) -> list:
    return [np.zeros(n, np.int64) for _ in range(6)] + [np.empty(n, np.int64) for _ in range(3)]


def test_intern_outputs_sharing_memory() -> None:
    m = _ext("dissect._messages")
    assert m.intern(*intern_args()) == 1
    args = intern_args()
    args[7] = args[6]  # order = sid: the counting sort would index with overwritten ids
    with pytest.raises(ValueError, match="intern: sid shares memory with order"):
        m.intern(*args)
    args = intern_args()
    args[8] = args[0]  # count over an input column
    with pytest.raises(ValueError, match="intern: count shares memory with flow"):
        m.intern(*args)


def test_intern_misaligned_column() -> None:
    args = intern_args()
    col = misaligned(32)
    args[2] = col
    with pytest.raises(ValueError, match="intern: id1 is not aligned to 8 bytes"):
        _ext("dissect._messages").intern(*args)


# --------------------------------------------------------------------------- _kernels


def nonprintable_args() -> list:
    s, e = np.array([0, 4], np.int64), np.array([4, 8], np.int64)
    return [b"ab\x00\x01cdef", s, e, np.empty(2, np.int64)]


def test_nonprintable_checks() -> None:
    m = _ext("dissect._kernels")
    args = nonprintable_args()
    m.nonprintable(*args)
    assert args[3].tolist() == [2, 0]
    args[1], args[2], args[3] = bytes(12), bytes(12), bytearray(12)
    with pytest.raises(ValueError, match="nonprintable: starts has 12 bytes, not a whole number"):
        m.nonprintable(*args)
    args = nonprintable_args()
    args[3] = args[1]  # counts written over the starts still to be read
    with pytest.raises(ValueError, match="nonprintable: out shares memory with starts"):
        m.nonprintable(*args)
    args = nonprintable_args()
    args[3] = misaligned(16)
    with pytest.raises(ValueError, match="nonprintable: out is not aligned to 8 bytes"):
        m.nonprintable(*args)


def classify_args() -> list:
    m = _ext("dissect._kernels")
    tables = columnar._kernel_tables(m)
    if tables is None:
        pytest.skip("the compiled ladder is older than this version")
    frame = bytes(12) + b"\x08\x06" + bytes(46)  # an ARP frame
    n = 1
    return [frame, np.zeros(n, np.int64), np.full(n, len(frame), np.int64),
            np.full(n, link.ETHERNET, np.int32), np.zeros(n, np.uint8), *tables,
            np.empty(n, np.uint8), np.empty(n, np.int8), np.empty(n, np.int64),
            np.empty(n, np.int64), np.empty(n, np.int16), np.empty(n, np.int32),
            np.empty(n, np.int8), np.empty(n, np.uint64), np.empty(n, np.int64),
            np.empty(n, np.int64)]


def test_classify_frames_checks() -> None:
    m = _ext("dissect._kernels")
    args = classify_args()
    m.classify_frames(*args)
    assert args[14].tolist() == [1] and args[15].tolist() == [2]  # handled, L2 flow key
    args = classify_args()
    args[16] = args[1]  # src written over the frame offsets
    with pytest.raises(ValueError, match="classify_frames: src shares memory with offset"):
        m.classify_frames(*args)
    args = classify_args()
    off = misaligned(8)
    off.cast("B")[:] = args[1].tobytes()
    args[1] = off
    with pytest.raises(ValueError, match="classify_frames: offset is not aligned to 8 bytes"):
        m.classify_frames(*args)


def test_intern_u64_checks() -> None:
    m = _ext("dissect._kernels")
    keys = np.array([5, 7, 5], np.uint64)
    ids, uniq = np.empty(3, np.int32), np.empty(3, np.uint64)
    assert m.intern_u64(keys, ids, uniq) == 2
    with pytest.raises(ValueError, match="intern_u64: uniq shares memory with keys"):
        m.intern_u64(keys, ids, keys)
    with pytest.raises(ValueError, match="intern_u64: ids is not aligned to 4 bytes"):
        m.intern_u64(keys, misaligned(12), uniq)


# --------------------------------------------------------------------------- _walk


def pcap_args(mult=1000) -> list:
    record = struct.pack("<IIII", 1, 2, 4, 4) + b"abcd"
    return [record, 0, False, mult, 1 << 16, np.empty(2, np.int64), np.empty(2, np.int64),
            np.empty(2, np.int64), 0]


def test_pcap_checks() -> None:
    m = _ext("capture._walk")
    assert m.pcap(*pcap_args())[:3] == (1, 20, m.END)
    for mult in (0, 7, 999):
        with pytest.raises(ValueError, match=f"pcap: mult {mult} is not 1 or 1000"):
            m.pcap(*pcap_args(mult))
    args = pcap_args()
    args[5] = misaligned(16)
    with pytest.raises(ValueError, match="pcap: ts is not aligned to 8 bytes"):
        m.pcap(*args)
    args = pcap_args()
    raw = np.zeros(64, np.uint8)
    raw[:20] = np.frombuffer(args[0], np.uint8)
    args[0], args[6] = raw, raw[8:24].view(np.int64)  # offsets written over the record
    with pytest.raises(ValueError, match="pcap: offset shares memory with buf"):
        m.pcap(*args)


def pcapng_args(kind=1, param=1000, linktype=1) -> list:
    body = struct.pack("<IIIII", 0, 0, 7, 4, 4) + b"abcd"
    epb = struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    ifaces = np.array([[linktype, 0, kind, param, 0, 0]], np.int64)
    return [epb, 0, False, ifaces, np.empty(2, np.int64), np.empty(2, np.uint8),
            np.empty(2, np.int32), np.empty(2, np.int64), np.empty(2, np.int64), 0]


def test_pcapng_valid_call() -> None:
    m = _ext("capture._walk")
    args = pcapng_args()
    assert m.pcapng(*args)[:3] == (1, 36, m.END)
    assert args[4][0] == 7000 and args[5][0] == 0
    assert m.pcapng(*pcapng_args(kind=4, param=127))[2] == m.END  # tsresol 2^-127


@pytest.mark.parametrize("kind,param,linktype,what", [
    (5, 1, 1, "an unknown conversion"),
    (-1, 1, 1, "an unknown conversion"),
    (1, -1000, 1, r"a multiplier outside \[1, 10\*\*9\]"),
    (1, 10**10, 1, r"a multiplier outside \[1, 10\*\*9\]"),
    (4, 128, 1, r"a shift outside \[0, 127\]"),
    (4, -1, 1, r"a shift outside \[0, 127\]"),
    (4, (1 << 32) + 5, 1, r"a shift outside \[0, 127\]"),
    (1, 1, 1 << 40, "a link type beyond int32"),
])
def test_pcapng_interface_rows(kind: int, param: int, linktype: int, what: str) -> None:
    with pytest.raises(ValueError, match=f"pcapng: interface 0 has {what}"):
        _ext("capture._walk").pcapng(*pcapng_args(kind, param, linktype))


def test_pcapng_buffers() -> None:
    m = _ext("capture._walk")
    args = pcapng_args()
    args[4] = args[3].reshape(-1)[:2]  # timestamps written over the interface table
    with pytest.raises(ValueError, match="pcapng: ts shares memory with ifaces"):
        m.pcapng(*args)
    args = pcapng_args()
    ifaces = misaligned(48)
    ifaces.cast("B")[:] = args[3].tobytes()
    args[3] = ifaces
    with pytest.raises(ValueError, match="pcapng: ifaces is not aligned to 8 bytes"):
        m.pcapng(*args)
