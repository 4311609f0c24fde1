"""The Zarr v3 result store: the layout is declared here and nowhere else (STYLE §10).

A store is written under a temporary sibling name and renamed into place only after every
array and, last, the `complete` attribute are written, so an interrupted run never leaves
something that reads as complete, and an existing store is replaced only with overwrite:
the old one is first renamed aside (atomic), the new one renamed in, then the old one
deleted. A kill at any step leaves at the path either nothing, or a whole store. Hidden
leftovers of killed runs (`.NAME.incomplete-PID`, `.NAME.replaced-PID`) are removed by the
next run to the same path once their process is gone.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import numpy as np
import zarr
from numcodecs import Zstd

from .errors import StoreExistsError
from .results import STAT_COLUMNS, Tables

SCHEMA = "streamlens-dist/1"
STRING = "string"
_STATS = {c: ("float64" if c in ("iat_mean_ns", "iat_std_ns") else "int64") for c in STAT_COLUMNS}
OUTLIER_COLUMNS = {"frame": "int64", "ts_ns": "int64", "iat_ns": "int64", "deviation": "float64"}

LAYOUT: dict[str, dict[str, str]] = {
    "flows": {"src": STRING, "dst": STRING, "kind": STRING, "protocols": STRING, **_STATS},
    "frame_types": {"flow": "int64", "frame_type": STRING, **_STATS},
    "flow_outliers": {"flow": "int64", **OUTLIER_COLUMNS},
    "frame_type_outliers": {"frame_type_row": "int64", **OUTLIER_COLUMNS},
    # Not in CONTRACT §7 (an addition, docs/DECISIONS.md): per flow and malformed-payload
    # name, how many frames and the first one; rows by (flow row, first frame).
    "malformed_payloads": {"flow": "int64", "problem": STRING, "frames": "int64",
                           "first_frame": "int64"},
    # Protocol streams, sequence gaps, TMATS and PTP grandmasters: docs/STREAMS.md
    "streams": {"flow": "int64", "protocol": STRING, "id1": "int64", "id2": "int64",
                "id3": "int64", "id4": "int64", "stream": STRING,
                **{("messages" if c == "frames" else c): t for c, t in _STATS.items()},
                **dict.fromkeys(("seq_bits", "seq_first", "seq_last", "expected", "received",
                                 "lost", "duplicated", "out_of_order", "gap_count",
                                 "gap_missing"), "int64"),
                "seq_irregular": "bool",
                **dict.fromkeys(("errors", "status_changes", "status_first", "status_last",
                                 "segments", "unpaired_syncs"), "int64"),
                "iena_type": STRING, "iena_type_source": STRING, "tmats_name": STRING},
    "stream_outliers": {"stream_row": "int64", **OUTLIER_COLUMNS},
    "sequence_gaps": {"stream_row": "int64", "frame_before": "int64", "frame_after": "int64",
                      "ts_before_ns": "int64", "ts_after_ns": "int64", "span_ns": "int64",
                      "seq_before": "int64", "seq_after": "int64", "missing": "int64"},
    "tmats": {"flow": "int64", "frame": "int64", "ts_ns": "int64", "channel_id": "int64",
              "text": STRING, "change": "int64"},
    "ptp_grandmasters": {"domain": "int64", "grandmaster": STRING, "flow": "int64",
                         "frame": "int64", "ts_ns": "int64", "change": "int64"},
}
ROWS_PER_CHUNK = 1 << 20


def check_writable(path: str, overwrite: bool) -> None:
    """Fail before any work is done if the store exists and may not be replaced."""
    if os.path.exists(path) and not overwrite:
        raise StoreExistsError(f"{path} already exists; pass --overwrite (overwrite=True) "
                               "to replace it, or choose another -o path")


# The arrays are written as Zarr v3 files directly (zarr.json + one file per chunk, the codecs
# zarr-python itself picks: bytes [+ vlen-utf8 for text], then zstd level 0): with 100+ small
# arrays per store, zarr's per-array machinery cost about 2.5 ms each, more than the data.
# tests/test_store.py holds the files to what zarr writes and reads them back with zarr.
_ZSTD = {"name": "zstd", "configuration": {"level": 0, "checksum": False}}
_FILL = {"int64": 0, "float64": 0.0, "bool": False, STRING: ""}


def _json(path: str, doc: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, allow_nan=False)


def _array_meta(dtype: str, n: int, chunk: int) -> dict:
    if dtype == STRING:
        codecs = [{"name": "vlen-utf8", "configuration": {}}]
    elif dtype == "bool":
        codecs = [{"name": "bytes"}]
    else:
        codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
    return {"shape": [n], "data_type": dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [chunk]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": _FILL[dtype], "codecs": [*codecs, _ZSTD], "attributes": {},
            "zarr_format": 3, "node_type": "array", "storage_transformers": []}


def _encode(dtype: str, values: np.ndarray) -> bytes:
    if dtype == STRING:  # numcodecs VLenUTF8: item count, then (length, UTF-8 bytes) per item
        items = [str(v).encode("utf-8") for v in values.tolist()]
        head = np.array([len(items)], "<u4").tobytes()
        return head + b"".join(len(b).to_bytes(4, "little") + b for b in items)
    return np.ascontiguousarray(values, dtype="?" if dtype == "bool" else f"<{dtype[0]}8").tobytes()


def _write_array(root: str, name: str, dtype: str, values: np.ndarray) -> None:
    n = len(values)
    chunk = max(1, min(n, ROWS_PER_CHUNK))
    path = os.path.join(root, *name.split("/"))
    os.makedirs(os.path.join(path, "c"))
    _json(os.path.join(path, "zarr.json"), _array_meta(dtype, n, chunk))
    zstd = Zstd(level=0)
    for i, lo in enumerate(range(0, n, chunk)):
        part = values[lo:lo + chunk]
        if len(part) < chunk:  # a regular grid stores whole chunks: pad with the fill value
            pad = np.full(chunk - len(part), _FILL[dtype],
                          dtype=object if dtype == STRING else dtype)
            part = np.concatenate([np.asarray(part, dtype=object if dtype == STRING else dtype),
                                   pad])
        with open(os.path.join(path, "c", str(i)), "wb") as f:
            f.write(zstd.encode(_encode(dtype, part)))


def _write_tables(tmp: str, tables: Tables, attrs: dict[str, Any]) -> None:
    os.makedirs(tmp)
    group = {"attributes": {}, "zarr_format": 3, "node_type": "group"}
    _json(os.path.join(tmp, "zarr.json"),
          {**group, "attributes": {"schema": SCHEMA, **attrs, "complete": False}})
    for table, columns in LAYOUT.items():
        data = getattr(tables, table)
        lengths = {len(data[c]) for c in columns}
        if len(lengths) != 1 or set(data) != set(columns):
            raise AssertionError(f"table {table} does not match the layout: {sorted(data)}")
        os.makedirs(os.path.join(tmp, table))
        _json(os.path.join(tmp, table, "zarr.json"), group)
        for col, dtype in columns.items():
            _write_array(tmp, f"{table}/{col}", dtype, data[col])
    # only after every array is written
    _json(os.path.join(tmp, "zarr.json"),
          {**group, "attributes": {"schema": SCHEMA, **attrs, "complete": True}})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_leftovers(parent: str, name: str) -> None:
    """Temporary and replaced-store directories of killed runs writing `name`."""
    for kind in ("incomplete", "replaced"):
        prefix = f".{name}.{kind}-"
        for entry in os.listdir(parent):
            pid = entry[len(prefix):]
            if entry.startswith(prefix) and pid.isdigit() and (
                    int(pid) == os.getpid() or not _pid_alive(int(pid))):
                shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def write_store(path: str, tables: Tables, attrs: dict[str, Any], overwrite: bool) -> None:
    check_writable(path, overwrite)
    parent = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    _remove_leftovers(parent, name)
    tmp = os.path.join(parent, f".{name}.incomplete-{os.getpid()}")
    _write_tables(tmp, tables, attrs)
    old = None
    if os.path.lexists(path):
        check_writable(path, overwrite)
        old = os.path.join(parent, f".{name}.replaced-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old) if os.path.isdir(old) and not os.path.islink(old) else os.remove(old)


def open_store(path: str) -> zarr.Group:
    return zarr.open_group(path, mode="r", zarr_format=3)


def read_table(group: zarr.Group, table: str) -> dict[str, np.ndarray]:
    g = group[table]
    return {col: g[col][:] for col in LAYOUT[table]}
