"""The Python API: `analyze(paths, store, ...)`, which the CLI wraps (STYLE §11)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .capture.source import Storage, is_url, local_path
from .capture.split import CapturePlan, ChunkSpec, no_frames_error, plan_capture
from .checkpoint import Checkpoint
from .engine import (
    Progress,
    _noop,
    cluster_client,
    remote_scanner,
    run_dask,
    run_serial,
    scheduler_address,
)
from .ienakeys import load_key_map
from .outputs import check_apart, check_not_input, input_files, resolved
from .partial import Partial
from .results import (
    StatsTables,
    Tables,
    json_ready,
    malformed_totals,
    outlier_tables,
    results_summary,
    stats_tables,
    tables_of,
    top_flows,
    top_streams,
)
from .security import TLSArg, check_tls, tls_config
from .series import EDGES
from .settings import DEFAULT_BIN_NS, DEFAULT_CHUNK_SIZE, Settings
from .store import StoreWriter
from .wire import unpack


@dataclass
class Summary:
    """What a run produced: the store's attributes plus run facts (not stored)."""

    store: str
    attrs: dict[str, Any]
    tables: Tables
    chunks: int
    wall_s: float
    # wall seconds per phase on the client, and "worker_seconds": worker time per sub-phase
    phases: dict[str, Any] = field(default_factory=dict)
    # the merged partial (exact sums per scope), for callers that pool runs (campaigns)
    merged: Partial | None = field(default=None, repr=False)

    @property
    def frames(self) -> int:
        return int(self.attrs["frames"])

    @property
    def has_data_problems(self) -> bool:
        """Damage in a capture, an input left out, or malformed payloads: the run completed,
        but not on clean data (CLI exit status 3). Details in attrs["problems"] and
        attrs["malformed_payloads"]."""
        return bool(self.attrs["problems"] or self.attrs["malformed_payloads"])

    @property
    def packets_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else float("nan")

    def top_flows(self, n: int = 5) -> list[dict[str, Any]]:
        """The flows with the most outliers (results.top_flows)."""
        return top_flows(self.tables, n)

    def top_streams(self, n: int = 5, by: str = "lost") -> list[dict[str, Any]]:
        """The protocol streams with the most lost messages (`by="lost"`) or outliers."""
        return top_streams(self.tables, n, by)

    def to_dict(self) -> dict[str, Any]:
        """What `analyze --json` prints: plain JSON data (undefined means and std are None)."""
        return json_ready({"store": self.store, **results_summary(self.attrs, self.tables),
                           "chunks": self.chunks, "wall_s": self.wall_s,
                           "packets_per_s": self.packets_per_s, "phases": self.phases})


def _dashboard(client: Any, phases: dict, on_cluster: Callable[[str], None] | None) -> None:
    link = getattr(client, "dashboard_link", None)
    if link:
        phases["dashboard"] = link
        if on_cluster is not None:
            on_cluster(link)


def _one_big_file(paths: list, chunk_size: int) -> bool:
    """Whether `paths` name one local file (no glob) larger than `chunk_size`."""
    if len(paths) != 1 or is_url(paths[0]):
        return False
    try:
        st = os.stat(local_path(os.fspath(paths[0])))
    except (OSError, ValueError):
        return False  # the scan reports it
    return stat.S_ISREG(st.st_mode) and st.st_size > chunk_size


def analyze(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    store: str | os.PathLike,
    *,
    sigma: str | int | float = "3",
    chunk_size: int | str = DEFAULT_CHUNK_SIZE,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    serial: bool = False,
    overwrite: bool = False,
    progress: Progress = _noop,
    iena_keys: str | os.PathLike | Sequence | None = None,
    tls: TLSArg = None,
    checkpoint: str | os.PathLike | None = None,
    on_cluster: Callable[[str], None] | None = None,
    storage_options: Storage | None = None,
    bin: str | int = DEFAULT_BIN_NS,  # noqa: A002 - the CLI's --bin
) -> Summary:
    """Analyse one capture (a file, or the files of a rotated set, or globs) into `store`.

    Paths, `store` and `checkpoint` may be local paths or fsspec URLs (`s3://bucket/f/*.pcap`);
    `storage_options` are the fsspec filesystem's options for them (endpoint_url, key,
    secret, ...), sent to the workers with each task. Remote captures are scanned on the
    workers, one task per file, and every chunk task reads only its byte range.

    Runs on `client` if given, else on the Dask scheduler at `scheduler` (or
    DASK_SCHEDULER_ADDRESS), else on a local cluster of `workers` processes (in this process
    when the capture is a single chunk); `serial=True` runs everything in this process
    without Dask.

    Damaged input never stops the run (README "Damaged input"): an input that is missing,
    unreadable or not a capture is left out, a damaged record ends or interrupts the reading
    of its file, and each is listed in `attrs["problems"]`. Raises `CaptureNotFoundError`,
    `CaptureReadError` or `CaptureFormatError` only when no input can be analysed, and
    `StoreExistsError` when `store` exists and `overwrite` is false, and
    `OutputRefusedError` when `store` (or `checkpoint`) is anything but one of our result
    stores (a file, a directory that is not a store, an input of the run): only our own
    stores are ever replaced, with `overwrite` or not.

    `iena_keys`: an IENA key map (docs/STREAMS.md §6), as a CSV/YAML file path or as
    (key, type[, name]) entries.

    `tls`: `(ca_file, cert, key)` PEM paths for mutual TLS with a `tls://` scheduler (README
    "Command line"); without it a `tls://` scheduler uses the certificates dask's config names
    (`distributed.comm.tls.ca-file`, `.client.cert`, `.client.key`). Raises SettingsError when
    the files are missing or unreadable, or given without a `tls://` scheduler.

    `checkpoint`: a directory or URL keeping every finished chunk's partial, so
    that a rerun after a crash recomputes only the chunks not yet done (checkpoint.py);
    `phases["checkpoint_hits"]` says how many were found.

    `bin`: the width of the time bins of the IAT series (docs/SERIES.md), ns or a text such
    as "1s", "100ms", "5min".

    `on_cluster(dashboard_link)` is called once the Dask client is connected (the CLI prints
    the link); the link is also kept in `phases["dashboard"]`.
    """
    t0 = time.perf_counter()
    if isinstance(iena_keys, (str, os.PathLike)):
        iena_keys = load_key_map(iena_keys)
    settings = Settings(sigma=str(sigma), chunk_size=chunk_size, iena_keys=iena_keys or (),
                        bin_ns=bin)
    storage = dict(storage_options) if storage_options else None
    store = os.fspath(store)
    address = None if serial or client is not None else scheduler_address(scheduler)
    tls_files = check_tls(tls, address)
    inputs = input_files([paths] if isinstance(paths, (str, os.PathLike)) else paths, storage)
    if checkpoint is not None:
        check_apart(resolved(store, storage), resolved(checkpoint, storage), "the store",
                    "the checkpoint")
        check_not_input(resolved(checkpoint, storage), inputs, "checkpoints")
    with StoreWriter(store, overwrite, storage, inputs) as writer:
        return _analyze(paths, store, settings, writer, t0, serial=serial, workers=workers,
                        scheduler=scheduler, client=client, address=address,
                        tls_files=tls_files, progress=progress, checkpoint=checkpoint,
                        on_cluster=on_cluster, storage=storage)


def _analyze(paths: Any, store: str, settings: Settings, writer: StoreWriter, t0: float, *,
             serial: bool, workers: int | None, scheduler: str | None, client: Any,
             address: str | None, tls_files: Any, progress: Progress,
             checkpoint: str | os.PathLike | None,
             on_cluster: Callable[[str], None] | None, storage: Storage | None) -> Summary:
    ckpt = Checkpoint(checkpoint, storage) if checkpoint is not None else None
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    phases: dict[str, Any] = {"tables": 0.0}
    cpu0, cluster_cpu = time.process_time(), 0.0
    base: list[StatsTables] = []

    def on_merged(merged: Partial) -> None:
        """The tables the merged partial decides, written while the outlier pass runs."""
        t = time.perf_counter()
        base.append(stats_tables(merged, settings.iena_keys))
        for name, cols in base[0].tables.items():
            writer.columns(name, cols)
        phases["tables"] += time.perf_counter() - t

    def plan_with(on: Any = None, on_chunk: Callable[[ChunkSpec], None] | None = None
                  ) -> CapturePlan:
        """Scan the capture; remote files on the cluster of client `on` when given."""
        t = time.perf_counter()
        remote = on is not None and any(is_url(p) for p in paths)
        plan = plan_capture(paths, settings.chunk_size, storage,
                            remote_scanner(on, settings.chunk_size, storage) if remote else None,
                            on_chunk)
        phases["split"] = time.perf_counter() - t
        progress("split", 1, 1)
        return plan

    def on_dask(c: Any, plan: CapturePlan | None = None) -> tuple:
        _dashboard(c, phases, on_cluster)
        if plan is not None:
            return (plan, *run_dask(plan, settings, c, progress, phases, ckpt, storage,
                                    on_merged))
        made: list[CapturePlan] = []

        def planner(on_chunk: Callable[[ChunkSpec], None]) -> CapturePlan:
            made.append(plan_with(c, on_chunk))  # chunk tasks start while this scans
            return made[0]

        merged, outliers = run_dask(planner, settings, c, progress, phases, ckpt, storage,
                                    on_merged)
        return made[0], merged, outliers

    plan: CapturePlan | None = None
    # Local files without a scheduler: scan here first, and for one chunk skip the cluster
    # altogether: it has nothing to spread over workers and would only add seconds (same
    # results). Remote files are scanned by the cluster's workers. One file larger than a
    # chunk needs the cluster: it is scanned once the cluster is up, its chunks going to the
    # workers as they are cut.
    local = client is None and address is None and not any(is_url(p) for p in paths)
    if serial or (local and not _one_big_file(paths, settings.chunk_size)):
        plan = plan_with()
        if not serial and len(plan.chunks) <= 1:
            serial = True
            phases["cluster_skipped"] = "one chunk"
    if serial:
        merged, outliers = run_serial(plan, settings, progress, phases, ckpt, storage, on_merged)
    elif client is not None:
        plan, merged, outliers = on_dask(client)
    else:
        t1, c1 = time.perf_counter(), time.process_time()
        with tls_config(tls_files), cluster_client(scheduler, workers) as c:
            phases["cluster_start"] = time.perf_counter() - t1
            cluster_cpu = time.process_time() - c1
            plan, merged, outliers = on_dask(c, plan)
            t1, c1 = time.perf_counter(), time.process_time()
        phases["cluster_stop"] = time.perf_counter() - t1  # closing a local cluster's workers
        cluster_cpu += time.process_time() - c1
    if not plan.frames:  # nothing was analysed: an error, and the writer leaves nothing
        raise no_frames_error(plan)
    if ckpt is not None:
        phases.update(checkpoint_hits=ckpt.hits, checkpoint_stored=ckpt.stored)
    t2 = time.perf_counter()
    msgs = [unpack(o, "outliers") for o in outliers]
    extra = outlier_tables(base[0], msgs)
    for name, cols in extra.items():
        writer.columns(name, cols)
    tables = tables_of(base[0], extra)
    phases["tables"] += time.perf_counter() - t2
    t2 = time.perf_counter()
    attrs = {
        "sigma": settings.sigma,
        "files": list(plan.files),
        "frames": plan.frames,
        "first_ns": merged.first_ns,
        "last_ns": merged.last_ns,
        "undecodable_frames": merged.undecodable,
        "undecodable_first_frames": merged.undecodable_first,
        "untimed_frames": merged.untimed,
        "malformed_payloads": malformed_totals(merged),
        "problems": [p.to_dict() for p in plan.problems],
        "software_version": __version__,
        "iena_keys": [list(e) for e in settings.iena_keys],
        "series_bin_ns": settings.bin_ns,
        "histogram_edges_ns": list(EDGES),
    }
    writer.finish(attrs)
    # what the store's writes still took once everything else was done (they overlap the
    # outlier pass and the tables)
    phases["write"] = time.perf_counter() - t2
    # CPU seconds of this process (all its threads, a local cluster's scheduler included;
    # not the worker processes), without starting and stopping a local cluster: what the
    # client costs the machine beside the workers, the whole work for a serial run
    phases["client_cpu"] = time.process_time() - cpu0 - cluster_cpu
    worker = dict(merged.profile)
    worker["outlier_pass"] = sum(m["seconds"] for m in msgs)
    worker["chunks_reread"] = float(sum(m["reread"] for m in msgs))
    phases["worker_seconds"] = worker
    return Summary(store, {"schema": "streamlens-dist/1", **attrs, "complete": True}, tables,
                   len(plan.chunks), time.perf_counter() - t0, phases, merged)
