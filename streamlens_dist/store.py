"""The Zarr v3 result store: the layout is declared here and nowhere else (STYLE §10).

A store is written under a temporary sibling name and renamed into place only after every
array and, last, the `complete` attribute are written, so an interrupted run never leaves
something that reads as complete, and an existing store is replaced only with overwrite.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import Any

import numpy as np
import zarr
from zarr.api import asynchronous as zasync
from zarr.core.sync import sync

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
}
ROWS_PER_CHUNK = 1 << 20


def check_writable(path: str, overwrite: bool) -> None:
    """Fail before any work is done if the store exists and may not be replaced."""
    if os.path.exists(path) and not overwrite:
        raise StoreExistsError(f"{path} already exists; pass --overwrite (overwrite=True) "
                               "to replace it, or choose another -o path")


async def _write_array(store: zarr.storage.LocalStore, name: str, dtype: str,
                       values: np.ndarray) -> None:
    n = len(values)
    arr = await zasync.create_array(store, name=name, shape=(n,), zarr_format=3,
                                    dtype=str if dtype == STRING else dtype,
                                    chunks=(max(1, min(n, ROWS_PER_CHUNK)),))
    if n:
        await arr.setitem(slice(None), values)


async def _write_tables(tmp: str, tables: Tables, attrs: dict[str, Any]) -> None:
    # Every array is independent: writing them concurrently on zarr's event loop takes
    # about 60 % of the time of one synchronous call after another.
    store = await zarr.storage.LocalStore.open(tmp)
    root = await zasync.open_group(store=store, mode="w", zarr_format=3)
    await root.update_attributes({"schema": SCHEMA, **attrs, "complete": False})
    writes = []
    for table, columns in LAYOUT.items():
        await root.create_group(table)
        data = getattr(tables, table)
        lengths = {len(data[c]) for c in columns}
        if len(lengths) != 1 or set(data) != set(columns):
            raise AssertionError(f"table {table} does not match the layout: {sorted(data)}")
        writes += [_write_array(store, f"{table}/{col}", dtype, data[col])
                   for col, dtype in columns.items()]
    await asyncio.gather(*writes)
    await root.update_attributes({"complete": True})  # only after every array is written


def write_store(path: str, tables: Tables, attrs: dict[str, Any], overwrite: bool) -> None:
    check_writable(path, overwrite)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.incomplete-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    sync(_write_tables(tmp, tables, attrs))
    if os.path.exists(path):
        check_writable(path, overwrite)
        shutil.rmtree(path)
    os.replace(tmp, path)


def open_store(path: str) -> zarr.Group:
    return zarr.open_group(path, mode="r", zarr_format=3)


def read_table(group: zarr.Group, table: str) -> dict[str, np.ndarray]:
    g = group[table]
    return {col: g[col][:] for col in LAYOUT[table]}
