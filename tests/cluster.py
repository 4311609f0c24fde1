"""A real Dask scheduler and workers as separate processes on loopback, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DaskProcesses:
    """The running processes: `workers` are the `dask worker` processes (with `nanny=False`
    each one is the worker itself, so SIGKILL loses its tasks and data for good)."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)


@contextmanager
def dask_cluster(n_workers: int = 2, timeout: float = 60.0, nanny: bool = True,
                 env: dict | None = None) -> Iterator[DaskProcesses]:
    """Start `dask scheduler` and `dask worker` processes; yield them once all workers joined.
    `env` is added to every process's environment (e.g. DASK_DISTRIBUTED__... settings)."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(n_workers):
            procs.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
                 "--host", "127.0.0.1", *([] if nanny else ["--no-nanny"])], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(address, timeout="5s") as c:
                    if n_workers:  # 0: the caller starts its own workers
                        c.wait_for_workers(n_workers,
                                           timeout=max(1.0, deadline - time.monotonic()))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield DaskProcesses(address, procs[0], procs[1:])
    finally:
        # Workers first, while the scheduler still answers their goodbye (stopped together,
        # the workers spend seconds trying to reach it).
        stop_processes(procs[1:])
        stop_processes(procs[:1])


def stop_processes(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each running process, then wait for all; kill what is still there after 10 s."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


@contextmanager
def dask_processes(n_workers: int = 2, timeout: float = 60.0) -> Iterator[str]:
    """Start `dask scheduler` and `dask worker` processes; yield the scheduler address."""
    with dask_cluster(n_workers, timeout) as procs:
        yield procs.address
