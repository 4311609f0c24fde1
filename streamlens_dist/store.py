"""The Zarr v3 result store: the layout is declared here and nowhere else (STYLE §10).

A local store is written under a temporary sibling name and renamed into place only after
every array and, last, the `complete` attribute are written, so an interrupted run never
leaves something that reads as complete, and an existing store is replaced only with
overwrite: the old one is first renamed aside (atomic), the new one renamed in, then the old
one deleted. A kill at any step leaves at the path either nothing, or a whole store. Hidden
leftovers of killed runs (`.NAME.incomplete-PID`, `.NAME.replaced-PID`) are removed by the
next run to the same path once their process is gone.

Object storage (an fsspec URL such as `s3://bucket/flight-042.zarr`) has no rename, so there
the order of the writes does the same job: the root `zarr.json` says `complete: false` first
and `complete: true` last, after every other object; replacing a store deletes its root
`zarr.json` before anything else. A store that is not marked complete is a killed run's
leftover, and the next run to the URL replaces it without asking.

Only our own stores are ever replaced or deleted (`check_store_target`): a path holding
anything else (a file, a link, a directory or URL prefix without our `zarr.json`, an input of
the run or a directory holding one) is refused with a one-line error, `--overwrite` or not.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from numcodecs import Zstd

from .capture import source
from .errors import OutputRefusedError, StorageError, StoreExistsError
from .outputs import check_not_input, resolved
from .results import STAT_COLUMNS, Tables

if TYPE_CHECKING:  # zarr is imported where a store is read: writing one does not need it,
    import zarr  # and importing it is a third of a small capture's whole CLI run

SCHEMA = "streamlens-dist/1"
STRING = "string"
_STATS = {c: ("float64" if c in ("iat_mean_ns", "iat_std_ns") else "int64") for c in STAT_COLUMNS}
_SERIES = dict.fromkeys(("bin_start_ns", "frames", "bytes", "iat_count", "iat_sum_ns",
                         "iat_min_ns", "iat_max_ns", "iat_sumsq_hi", "iat_sumsq_lo"), "int64")
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
    # Time-binned IAT series and log-bin IAT histograms: docs/SERIES.md
    "flow_series": {"flow": "int64", **_SERIES},
    "frame_type_series": {"frame_type_row": "int64", **_SERIES},
    "flow_histograms": {"flow": "int64", "bin": "int64", "count": "int64"},
    "frame_type_histograms": {"frame_type_row": "int64", "bin": "int64", "count": "int64"},
}
ROWS_PER_CHUNK = 1 << 20


# Every store this project writes carries one of these in its root `zarr.json`: only a
# directory (or URL prefix) that does is ever replaced or deleted (campaign/cstore.py SCHEMA
# is the second; a test holds the two modules to the same text).
OUR_SCHEMAS = (SCHEMA, "streamlens-dist-campaign/1")


def _our_attrs(doc: object) -> dict | None:
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    return attrs if isinstance(attrs, dict) and attrs.get("schema") in OUR_SCHEMAS else None


def _local_state(path: str) -> tuple[str, str]:
    if not os.path.lexists(path):
        return "absent", ""
    if os.path.islink(path):
        return "other", "a symbolic link"
    if not os.path.isdir(path):
        return "other", "a file" if os.path.isfile(path) else "not a directory"
    try:
        with open(os.path.join(path, "zarr.json"), encoding="utf-8") as f:
            if _our_attrs(json.load(f)) is not None:
                return "store", ""
    except (OSError, ValueError):
        pass
    if not os.listdir(path):
        return "absent", ""  # an empty directory: nothing in it to lose
    return "other", "a directory that is not a streamlens-dist result store"


def store_state(path: str, storage: source.Storage | None = None) -> tuple[str, str]:
    """What is at a store's path now: ("absent", ""), ("store", "") for one of our stores,
    ("leftover", "") for our store at a URL not marked complete (a killed run's), or
    ("other", what it is) for anything else, which is never replaced."""
    if source.is_url(path):
        return _remote_state(path, storage)
    return _local_state(source.local_path(path))


def check_store_target(path: str, overwrite: bool, storage: source.Storage | None = None,
                       inputs: list[str] | tuple = ()) -> None:
    """Fail before any work is done unless the store may be written at `path`: nothing is
    there, or one of our stores is and `overwrite` is given; and `path` is not, and does not
    hold, one of the resolved `inputs` (outputs.input_files)."""
    check_not_input(resolved(path, storage), inputs, "the result store")
    state, what = store_state(path, storage)
    if state == "other":
        raise OutputRefusedError(f"{path} is {what}; only a streamlens-dist result store is "
                                 "ever replaced: choose another -o path")
    if state == "store" and not overwrite:
        raise StoreExistsError(f"{path} already exists; pass --overwrite (overwrite=True) "
                               "to replace it, or choose another -o path")


# The arrays are written as Zarr v3 files directly (zarr.json + one file per chunk, the codecs
# zarr-python itself picks: bytes [+ vlen-utf8 for text], then zstd level 0): with 100+ small
# arrays per store, zarr's per-array machinery cost about 2.5 ms each, more than the data.
# tests/test_store.py holds the files to what zarr writes and reads them back with zarr.
_ZSTD = {"name": "zstd", "configuration": {"level": 0, "checksum": False}}
_FILL = {"int64": 0, "float64": 0.0, "bool": False, STRING: ""}


Put = Callable[[str, bytes], None]  # (path inside the store, "/"-separated; the object)


def json_bytes(doc: dict) -> bytes:
    # compact: the C encoder (an indent switches to the pure-Python one, which was a third
    # of the time of writing a small capture's store)
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _array_meta(dtype: str, n: int, chunk: int) -> dict:
    if dtype == STRING:
        codecs = [{"name": "vlen-utf8", "configuration": {}}]
    elif dtype == "bool":
        codecs = [{"name": "bytes"}]
    else:
        codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
    return {"shape": [n], "data_type": dtype,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [chunk]}},
            # chunk i is the file "i" beside zarr.json, not "c/i": one directory per array
            # instead of two (directory creation dominated writing a small capture's store)
            "chunk_key_encoding": {"name": "v2", "configuration": {"separator": "."}},
            "fill_value": _FILL[dtype], "codecs": [*codecs, _ZSTD], "attributes": {},
            "zarr_format": 3, "node_type": "array", "storage_transformers": []}


def _encode(dtype: str, values: np.ndarray) -> bytes:
    if dtype == STRING:  # numcodecs VLenUTF8: item count, then (length, UTF-8 bytes) per item
        items = [str(v).encode("utf-8") for v in values.tolist()]
        head = np.array([len(items)], "<u4").tobytes()
        return head + b"".join(len(b).to_bytes(4, "little") + b for b in items)
    return np.ascontiguousarray(values, dtype="?" if dtype == "bool" else f"<{dtype[0]}8").tobytes()


def write_array(put: Put, name: str, dtype: str, values: np.ndarray) -> None:
    n = len(values)
    chunk = max(1, min(n, ROWS_PER_CHUNK))
    put(f"{name}/zarr.json", json_bytes(_array_meta(dtype, n, chunk)))
    zstd = Zstd(level=0)
    for i, lo in enumerate(range(0, n, chunk)):
        part = values[lo:lo + chunk]
        if len(part) < chunk:  # a regular grid stores whole chunks: pad with the fill value
            pad = np.full(chunk - len(part), _FILL[dtype],
                          dtype=object if dtype == STRING else dtype)
            part = np.concatenate([np.asarray(part, dtype=object if dtype == STRING else dtype),
                                   pad])
        put(f"{name}/{i}", zstd.encode(_encode(dtype, part)))


GROUP = {"attributes": {}, "zarr_format": 3, "node_type": "group"}


def _root(attrs: dict[str, Any], complete: bool) -> bytes:
    return json_bytes({**GROUP, "attributes": {"schema": SCHEMA, **attrs, "complete": complete}})


def _write_tables(put: Put, tables: Tables) -> None:
    """Every table's group and arrays (not the root: callers order it around these)."""
    for table, columns in LAYOUT.items():
        data = getattr(tables, table)
        lengths = {len(data[c]) for c in columns}
        if len(lengths) != 1 or set(data) != set(columns):
            raise AssertionError(f"table {table} does not match the layout: {sorted(data)}")
        put(f"{table}/zarr.json", json_bytes(GROUP))
        for col, dtype in columns.items():
            write_array(put, f"{table}/{col}", dtype, data[col])


_UMASK: list[int] = []


def _umask() -> int:
    if not _UMASK:
        try:  # read, not set-and-restore: other threads may be creating files meanwhile
            with open("/proc/self/status", encoding="ascii") as f:
                line = next(x for x in f if x.startswith("Umask:"))
            _UMASK.append(int(line.split()[1], 8))
        except (OSError, StopIteration, ValueError):
            mask = os.umask(0o022)
            os.umask(mask)
            _UMASK.append(mask)
    return _UMASK[0]


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary name in `path`'s directory to write a file under; renamed over `path` when
    the block ends, removed if it raises: a reader sees the old file or the whole new one,
    never a part. The file gets the mode a plain open() would give it (mkstemp's is 0600:
    unreadable to the rest of a team)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str, data: bytes) -> None:
    """`data` as the file `path`, written atomically (atomic_path)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def local_put(root: str, made: set[str] | None = None) -> Put:
    """Files under the directory `root`; `made`: directories known to exist (one mkdir each,
    not one per file)."""
    made = set() if made is None else made

    def put(name: str, data: bytes) -> None:
        path = os.path.join(root, *name.split("/"))
        parent = os.path.dirname(path)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        with open(path, "wb") as f:
            f.write(data)

    return put


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _our_leftover(path: str) -> bool:
    """A directory one of our runs made: a store (replaced, or complete but not yet renamed),
    or a store being written (only its skeleton's names, maybe no zarr.json yet)."""
    if _local_state(path)[0] == "store":
        return True
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    return set(os.listdir(path)) <= {"zarr.json", *LAYOUT}


def _remove_leftovers(parent: str, name: str) -> None:
    """Temporary and replaced-store directories of killed runs writing `name` (only those
    that hold what we write: a user's directory that happens to bear such a name stays)."""
    for kind in ("incomplete", "replaced"):
        prefix = f".{name}.{kind}-"
        for entry in os.listdir(parent):
            pid = entry[len(prefix):]
            path = os.path.join(parent, entry)
            if entry.startswith(prefix) and pid.isdigit() and (
                    int(pid) == os.getpid() or not _pid_alive(int(pid))) \
                    and _our_leftover(path):
                shutil.rmtree(path, ignore_errors=True)


# Creating a file is mostly kernel time (0.04-0.4 ms here, depending on the file system's
# recent deletions), and at the end of a run the last columns' files are all that is left
# to do: two threads write them while the cores are otherwise idle.
WRITER_THREADS = 2


class StoreWriter:
    """Writes one result store while the run goes on: a local store's directories at once and
    each table's columns as soon as they are given (`columns`), in background threads, so
    that the file system's latency overlaps the analysis; `finish` waits for them, writes
    the root attributes with `complete` and renames the store into place (module docstring).

    A store at an fsspec URL is written at `finish`, in the order the docstring gives. Use as
    a context manager: leaving it without `finish` (an error) removes what was written.
    """

    def __init__(self, path: str, overwrite: bool, storage: source.Storage | None = None,
                 inputs: list[str] | tuple = ()) -> None:
        check_store_target(path, overwrite, storage, inputs)
        self.path, self.overwrite, self.storage, self.inputs = path, overwrite, storage, inputs
        self._given: dict[str, dict[str, np.ndarray]] = {t: {} for t in LAYOUT}
        self._jobs: list[concurrent.futures.Future] = []
        self._tmp: str | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        if source.is_url(path):
            return
        local = source.local_path(path)
        parent = os.path.dirname(os.path.abspath(local))
        name = os.path.basename(os.path.abspath(local))
        os.makedirs(parent, exist_ok=True)
        _remove_leftovers(parent, name)
        self._tmp = os.path.join(parent, f".{name}.incomplete-{os.getpid()}")
        os.makedirs(self._tmp)
        made = {self._tmp}
        self._put = local_put(self._tmp, made)
        self._pool = concurrent.futures.ThreadPoolExecutor(WRITER_THREADS,
                                                           thread_name_prefix="store")
        self._jobs.append(self._pool.submit(self._skeleton, made))

    def _skeleton(self, made: set[str]) -> None:
        self._put("zarr.json", _root({}, False))
        for table, columns in LAYOUT.items():
            self._put(f"{table}/zarr.json", json_bytes(GROUP))
            for col in columns:
                d = os.path.join(self._tmp, table, col)
                os.mkdir(d)
                made.add(d)

    def columns(self, table: str, cols: dict[str, np.ndarray]) -> None:
        """Some columns of `table` (each column once; their files are written meanwhile)."""
        layout = LAYOUT.get(table, {})
        for col, values in cols.items():
            if col not in layout or col in self._given[table]:
                raise AssertionError(f"column {table}/{col} is not in the layout or given twice")
            self._given[table][col] = values
            if self._pool is not None:
                self._jobs.append(self._pool.submit(self._write_array, f"{table}/{col}",
                                                    layout[col], values))

    def _write_array(self, name: str, dtype: str, values: np.ndarray) -> None:
        self._jobs[0].result()  # the directories first
        write_array(self._put, name, dtype, values)

    def finish(self, attrs: dict[str, Any]) -> None:
        for table, columns in LAYOUT.items():
            data = self._given[table]
            if set(data) != set(columns) or len({len(v) for v in data.values()}) != 1:
                raise AssertionError(f"table {table} does not match the layout: {sorted(data)}")
        if self._tmp is None:
            _write_remote(self.path, Tables(**self._given), attrs, self.overwrite, self.storage,
                          self.inputs)
            return
        self._wait()
        self._put("zarr.json", _root(attrs, True))  # only after every array is written
        path = source.local_path(self.path)
        old = None
        if os.path.lexists(path):
            # again: the path may have changed during the run; only our store is moved aside
            check_store_target(path, self.overwrite, None, self.inputs)
            old = os.path.join(os.path.dirname(self._tmp),
                               f".{os.path.basename(os.path.abspath(path))}.replaced-{os.getpid()}")
            os.replace(path, old)
        os.replace(self._tmp, path)
        self._tmp = None
        if old is not None:
            shutil.rmtree(old)

    def _wait(self) -> None:
        try:
            for job in self._jobs:
                job.result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)

    def abort(self) -> None:
        """Remove what was written (nothing at the store's path itself)."""
        with contextlib.suppress(BaseException):
            self._wait()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()  # after finish: nothing left to remove


def write_store(path: str, tables: Tables, attrs: dict[str, Any], overwrite: bool,
                storage: source.Storage | None = None, inputs: list[str] | tuple = ()) -> None:
    with StoreWriter(path, overwrite, storage, inputs) as w:
        for table in LAYOUT:
            w.columns(table, getattr(tables, table))
        w.finish(attrs)


def _remote_state(url: str, storage: source.Storage | None) -> tuple[str, str]:
    """store_state for an fsspec URL (object stores have no directories: a prefix with
    objects under it is "other" unless its zarr.json is one of ours)."""
    fs, root = source.filesystem(url, storage, StorageError)
    with source.errors(url, "cannot be inspected", StorageError, StorageError):
        fs.invalidate_cache()
        if not fs.exists(root):
            return "absent", ""
        try:
            attrs = _our_attrs(json.loads(fs.cat_file(f"{root}/zarr.json")))
        except (FileNotFoundError, ValueError):
            attrs = None
    if attrs is None:
        return "other", "not a streamlens-dist result store (no zarr.json of ours there)"
    return ("leftover" if attrs.get("complete") is False else "store"), ""


def _write_remote(url: str, tables: Tables, attrs: dict[str, Any], overwrite: bool,
                  storage: source.Storage | None, inputs: list[str] | tuple = ()) -> None:
    state, _what = _remote_state(url, storage)
    if state != "absent":  # it may have changed since the run started
        check_store_target(url, overwrite, storage, inputs)
    fs, root = source.filesystem(url, storage, StorageError)
    objects: dict[str, bytes] = {}
    _write_tables(lambda name, data: objects.__setitem__(f"{root}/{name}", data), tables)
    with source.errors(url, "cannot be written", StorageError, StorageError):
        if state != "absent":
            # the root first: from here on the old store no longer reads as one
            if fs.exists(f"{root}/zarr.json"):
                fs.rm_file(f"{root}/zarr.json")
            fs.rm(root, recursive=True)
        fs.pipe_file(f"{root}/zarr.json", _root(attrs, False))
        fs.pipe(objects)  # concurrently where the filesystem can (s3fs does)
        fs.pipe_file(f"{root}/zarr.json", _root(attrs, True))  # last


def open_store(path: str, storage: source.Storage | None = None) -> zarr.Group:
    """A result store, local or at an fsspec URL, opened read-only."""
    import zarr

    if source.is_url(path):
        return zarr.open_group(path, mode="r", zarr_format=3, storage_options=storage or {})
    return zarr.open_group(source.local_path(path), mode="r", zarr_format=3)


def read_table(group: zarr.Group, table: str) -> dict[str, np.ndarray]:
    g = group[table]
    return {col: g[col][:] for col in LAYOUT[table]}
