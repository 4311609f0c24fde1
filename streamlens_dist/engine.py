"""The only module that knows Dask: builds and runs the graph (STYLE §2).

pass 1 (chunk -> partial, one task per chunk, started as chunks are cut) | the client folds
the partials in chunk order as they arrive (reduction.Reducer: the merged partial, and each
chunk's `Before`, the last timestamps of its scopes before it) | thresholds on the client |
pass 2 (chunk outliers at its seam and inside it, one task per chunk). Two tasks per chunk;
every task holds one chunk. `run_serial` is the same pipeline in one process, used as the
oracle and for tiny inputs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from fractions import Fraction

from .capture.source import Storage
from .capture.split import (
    CapturePlan,
    ChunkSpec,
    FileScan,
    RemoteScanner,
    scan_or_error,
    scan_result_from_dict,
    scan_result_to_dict,
)
from .checkpoint import Checkpoint
from .chunktask import analyze_chunk, chunk_outliers, thresholds_to_bytes
from .errors import ClusterError
from .gcpause import without_gc
from .partial import Before, Partial, outlier_view
from .reduction import Reducer
from .results import thresholds
from .settings import Settings
from .wire import pack, partial_from_bytes, partial_to_bytes, unpack

Progress = Callable[[str, int, int], None]  # (phase, done, total)
# Makes the plan, calling its argument with each chunk in order as soon as it is known
Planner = Callable[[Callable[[ChunkSpec], None]], CapturePlan]
# Called with the merged partial as soon as it exists, before the outlier pass is awaited:
# the caller makes and writes the tables it decides meanwhile.
OnMerged = Callable[[Partial], None]


def _noop(phase: str, done: int, total: int) -> None:
    pass


def _ignore(merged: Partial) -> None:
    pass


# --- task wrappers: plain data in, bytes out (what crosses the network) ---------------------
# Every task is pure and idempotent: its result depends only on its arguments, so Dask may run
# it again on another worker when the worker holding its result dies (workers/README.md
# "Faults"). Each one first checks that its worker passed the version check (workerplugin).

def _check_worker() -> None:
    from .workerplugin import check_worker  # only tasks import it: Dask is loaded there

    check_worker()


def scan_task(url: str, chunk_size: int, storage: Storage | None) -> bytes:
    """The splitter's scan of one remote file, on a worker: it streams the object to a
    temporary file in the worker's local directory and walks the record headers there."""
    _check_worker()
    from distributed import get_worker

    try:
        worker = get_worker()
        directory, where = worker.local_directory, f"the Dask worker at {worker.address}"
    except ValueError:  # not inside a worker (tests call the task directly)
        directory, where = None, "this process"
    got = scan_or_error(url, chunk_size, storage, directory)
    if isinstance(got, Exception):  # the worker's credentials or network may differ from ours
        got = type(got)(f"{got} (read by {where})")
    return pack("scan", scan_result_to_dict(got))


def remote_scanner(client, chunk_size: int, storage: Storage | None) -> RemoteScanner:
    """Scan remote files on the cluster, one task per file, concurrently."""
    def scan(urls: list[str]) -> list[FileScan | Exception]:
        token = uuid.uuid4().hex
        with cluster_errors(client):
            futures = [client.submit(scan_task, u, chunk_size, storage,
                                     key=f"sl-scan-{token}-{i}") for i, u in enumerate(urls)]
            return [scan_result_from_dict(unpack(b, "scan")) for b in client.gather(futures)]

    return scan


@without_gc
def pass1_task(spec: dict, settings: dict, storage: Storage | None = None) -> bytes:
    _check_worker()
    return analyze_chunk(ChunkSpec.from_dict(spec), Settings.from_dict(settings), storage)


def cached_task(data: bytes) -> bytes:
    """A chunk's partial found in the checkpoint (engine.run_dask)."""
    return data


@without_gc
def pass2_task(spec: dict, settings: dict, partial: bytes, thr: bytes, before: bytes,
               storage: Storage | None = None) -> bytes:
    _check_worker()
    return chunk_outliers(ChunkSpec.from_dict(spec), Settings.from_dict(settings), partial, thr,
                          before, storage)


@without_gc
def whole_task(spec: dict, settings: dict, storage: Storage | None, cached: bytes | None
               ) -> tuple[bytes, bytes]:
    """A capture of one chunk, both passes in one task: (partial, outliers). Saves a round
    trip through the client (a campaign of many small captures is mostly these)."""
    _check_worker()
    s, st = ChunkSpec.from_dict(spec), Settings.from_dict(settings)
    part = cached if cached is not None else analyze_chunk(s, st, storage)
    merged = partial_from_bytes(part)
    thr = thresholds(merged, Fraction(st.sigma))
    return part, chunk_outliers(s, st, merged, thr, Before.nothing(merged), storage)


@without_gc
def run_serial(plan: CapturePlan, settings: Settings, progress: Progress = _noop,
               phases: dict | None = None, checkpoint: Checkpoint | None = None,
               storage: Storage | None = None, on_merged: OnMerged = _ignore
               ) -> tuple[Partial, list[bytes]]:
    phases = {} if phases is None else phases
    t0 = time.perf_counter()
    # Each chunk's partial is folded as soon as it is made; only what pass 2 reads of it is
    # kept (partial.outlier_view: no series rows, the bulk of a partial of many flows).
    parts: list[bytes] = []
    reducer, fold_s = Reducer(), 0.0
    for i, spec in enumerate(plan.chunks):
        data = checkpoint.load(spec, settings) if checkpoint is not None else None
        if data is None:
            data = analyze_chunk(spec, settings, storage)
            if checkpoint is not None:
                checkpoint.save(spec, settings, data)
        t = time.perf_counter()
        part = partial_from_bytes(data)
        reducer.add(part)
        parts.append(partial_to_bytes(outlier_view(part)))
        fold_s += time.perf_counter() - t
        progress("dissect", i + 1, len(plan.chunks))
    t1 = time.perf_counter()
    merged = reducer.merged()
    thr = thresholds(merged, Fraction(settings.sigma))
    t2 = time.perf_counter()
    merge_s = fold_s + t2 - t1
    on_merged(merged)
    t2 = time.perf_counter()
    out = []
    for i, (spec, p) in enumerate(zip(plan.chunks, parts, strict=True)):
        out.append(chunk_outliers(spec, settings, p, thr, reducer.before[i], storage))
        progress("outliers", i + 1, len(plan.chunks))
    phases.update(dissect=t1 - t0 - fold_s, merge=merge_s, outliers=time.perf_counter() - t2)
    return merged, out


def run_dask(plan: CapturePlan | Planner, settings: Settings, client,
             progress: Progress = _noop,
             phases: dict | None = None, checkpoint: Checkpoint | None = None,
             storage: Storage | None = None, on_merged: OnMerged = _ignore
             ) -> tuple[Partial, list[bytes]]:
    """The pipeline on `client`'s cluster. Losing a worker costs only recomputation; losing
    the scheduler, or workers that keep dying, ends in a ClusterError saying what to do.

    `plan` may be a planner: a function that makes the plan and calls its argument with each
    chunk as soon as it is known (plan_capture's on_chunk), so that the chunk tasks start
    while the capture is still being scanned."""
    with cluster_errors(client):
        return _run_dask(plan, settings, client, progress, phases, checkpoint, storage,
                         on_merged)


@contextlib.contextmanager
def cluster_errors(client) -> Iterator[None]:
    """Register the version check, then turn a lost scheduler or workers that keep dying into
    a ClusterError naming what to do next."""
    from distributed import KilledWorker

    from .workerplugin import register_version_check

    address = client.scheduler.address
    try:
        register_version_check(client)
        yield
    except KilledWorker as exc:
        raise ClusterError(
            f"Dask workers of the scheduler at {address} died {exc.allowed_failures + 1} "
            f"time(s) running task {exc.task} (the last: {exc.last_worker.address}); check "
            "the worker logs (memory limit?), restart the workers and rerun: a rerun "
            "recomputes everything") from exc
    except (concurrent.futures.CancelledError, OSError, TimeoutError) as exc:
        # Usually FutureCancelledError "scheduler-connection-lost", or a comm error while the
        # client is no longer connected. An OSError of a task (a capture unreadable on a
        # worker) while the client is still connected stays what it is.
        reason = getattr(exc, "reason", "")
        if reason == "scheduler-connection-lost" or client.status != "running":
            raise ClusterError(
                f"lost the Dask scheduler at {address} during the analysis; nothing was "
                "written. Restart the scheduler (`dask scheduler`) and the workers (`dask "
                "worker ADDRESS`), then rerun the same command: a rerun recomputes "
                "everything") from exc
        if isinstance(exc, concurrent.futures.CancelledError):
            raise ClusterError(
                f"the Dask scheduler at {address} cancelled the analysis ({exc}); nothing "
                "was written. Was it restarted or the run cancelled from another client? "
                "Rerun the same command: a rerun recomputes everything") from exc
        raise


def _run_dask(plan: CapturePlan | Planner, settings: Settings, client, progress: Progress,
              phases: dict | None, checkpoint: Checkpoint | None, storage: Storage | None,
              on_merged: OnMerged) -> tuple[Partial, list[bytes]]:
    from distributed import as_completed

    phases = {} if phases is None else phases
    t0 = time.perf_counter()
    sdict = settings.to_dict()
    # Keys must never collide with another run's on a shared scheduler, or Dask would hand
    # back that run's results.
    token = uuid.uuid4().hex
    # No `retries=`: they re-run tasks that *raised*, and ours only raise on a real error
    # (a bug, a version refusal) that would raise again. A worker that dies is handled by
    # the scheduler without them: the results it held are recomputed from their tasks (the
    # futures below keep the whole graph alive until the end), and a task that was running
    # on it is resubmitted until `distributed.scheduler.allowed-failures` workers died
    # running it (default 3; workers/distributed.yaml), then KilledWorker -> ClusterError.
    # A checkpointed partial enters the graph as a task holding its bytes (recomputable like
    # any task, unlike scattered data); the others are computed and saved as they arrive.
    chunks: list[ChunkSpec] = []
    cached: list[bytes | None] = []
    p1: list = []

    def submit(i: int) -> None:
        spec, data = chunks[i], cached[i]
        key = f"sl-pass1-{token}-{i}"
        p1.append(client.submit(cached_task, data, key=key) if data is not None else
                  client.submit(pass1_task, spec.to_dict(), sdict, storage, key=key))

    def on_chunk(spec: ChunkSpec) -> None:
        chunks.append(spec)
        cached.append(checkpoint.load(spec, settings) if checkpoint is not None else None)
        # the first chunk waits for a second: a capture of one chunk is one task (whole_task)
        if len(chunks) == 2:
            submit(0)
        if len(chunks) >= 2:
            submit(len(chunks) - 1)

    if isinstance(plan, CapturePlan):
        for spec in plan.chunks:
            on_chunk(spec)
    else:
        plan = plan(on_chunk)
        if [c.index for c in chunks] != list(range(len(plan.chunks))):
            raise AssertionError("the planner did not give every chunk once, in order")
    n = len(chunks)
    if n == 0:  # a capture without frames
        merged = Partial.empty()
        on_merged(merged)
        return merged, []
    if n == 1:
        part, out = client.submit(whole_task, chunks[0].to_dict(), sdict, storage, cached[0],
                                  key=f"sl-whole-{token}").result()
        if checkpoint is not None and cached[0] is None:
            checkpoint.save(chunks[0], settings, part)
        for phase in ("dissect", "merge", "outliers"):
            progress(phase, 1, 1)
        phases.update(dissect=time.perf_counter() - t0, merge=0.0, outliers=0.0)
        merged = partial_from_bytes(part)
        on_merged(merged)
        return merged, [out]
    # The client folds the partials in chunk order as they arrive (those that come early
    # wait for the ones before them): the merged partial and each chunk's Before, so that
    # nothing is left between the last chunk and the thresholds but the last few combines.
    index_of = {f.key: i for i, f in enumerate(p1)}
    reducer, waiting, merge_s = Reducer(), {}, 0.0
    for done, fut in enumerate(as_completed(p1), 1):
        i = index_of[fut.key]
        data = fut.result()
        if checkpoint is not None and cached[i] is None:
            checkpoint.save(chunks[i], settings, data)
        t = time.perf_counter()
        waiting[i] = data
        while len(reducer.before) in waiting:
            reducer.add(partial_from_bytes(waiting.pop(len(reducer.before))))
        merge_s += time.perf_counter() - t
        progress("dissect", done, n)
    t1 = time.perf_counter()
    merged = reducer.merged()
    # Thresholds as a task holding their bytes, not `client.scatter`ed data: Dask cannot
    # recompute scattered data, so a worker dying with the only copy would fail the run.
    thr = client.submit(cached_task, thresholds_to_bytes(
        *thresholds(merged, Fraction(settings.sigma))), key=f"sl-thr-{token}")
    p2 = [client.submit(pass2_task, c.to_dict(), sdict, f, thr, reducer.before[i], storage,
                        key=f"sl-pass2-{token}-{i}")
          for i, (c, f) in enumerate(zip(chunks, p1, strict=True))]
    reducer.before.clear()
    progress("merge", 1, 1)
    t2 = time.perf_counter()
    merge_s += t2 - t1  # with the folds during pass 1
    on_merged(merged)  # while pass 2 runs
    t2 = time.perf_counter()
    for done, _ in enumerate(as_completed(p2), 1):
        progress("outliers", done, n)
    out = client.gather(p2)
    p1.clear()
    del p2
    phases.update(dissect=t1 - t0, merge=merge_s, outliers=time.perf_counter() - t2)
    return merged, out


def scheduler_address(scheduler: str | None) -> str | None:
    """`scheduler`, else dask's `scheduler-address` config (DASK_SCHEDULER_ADDRESS sets it)."""
    if scheduler:
        return scheduler
    import dask

    return dask.config.get("scheduler-address", None) or None


@contextlib.contextmanager
def cluster_client(scheduler: str | None, workers: int | None) -> Iterator:
    """A Dask client: to `scheduler` (or dask's `scheduler-address` config, which the
    DASK_SCHEDULER_ADDRESS variable sets), else to a new loopback-only local cluster."""
    from distributed import Client, LocalCluster

    address = scheduler_address(scheduler)
    if address:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {address} ({exc}); start one with "
                "`dask scheduler` and `dask worker ADDRESS`, or omit --scheduler (and unset "
                "DASK_SCHEDULER_ADDRESS) to run on a local cluster") from exc
        with _quiet_client_log(), client:
            yield client
        return
    n = workers or max(1, min(os.cpu_count() or 1, 8))
    import dask

    # Dask's default MALLOC_TRIM_THRESHOLD_ for workers also pins glibc's mmap threshold at
    # 128 KiB, so every column array of a chunk is a fresh mmap and its pages fault in again:
    # the chunk tasks ran ~1.5x slower than in a plain process. Our tasks free everything
    # they allocate, so glibc's default, adaptive thresholds are right for them.
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    with (
        # The workers' statistical profiler takes the GIL every 10 ms to sample the task
        # thread: runs were 3-15% slower with it here (as in workers/distributed.yaml).
        dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                         "distributed.worker.profile.enabled": False}),
        # preload: workers import the chunk task (numpy, the compiled kernels) while they
        # start, not inside the first task of the run
        LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                     dashboard_address="127.0.0.1:0", silence_logs=40,
                     preload=["streamlens_dist.chunktask"]) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextlib.contextmanager
def _quiet_client_log() -> Iterator[None]:
    """Mute the `distributed.client` logger: when the scheduler is lost it logs the reconnect
    attempts' tracebacks, while run_dask already ends with a ClusterError saying what
    happened and what to do (the CLI prints it as one line)."""
    log = logging.getLogger("distributed.client")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)
