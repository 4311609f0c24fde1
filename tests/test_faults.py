"""Faults on a real cluster: a `dask scheduler` and `dask worker` processes on loopback.

A worker SIGKILLed in the middle of a run costs only recomputation (the store equals the
serial run); a lost scheduler ends in a ClusterError saying what to do, with no store; a
worker whose package versions differ from the client's is refused.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from cluster import dask_cluster
from conftest import assert_tables_equal
from storeio import load_store

import streamlens_dist
from streamlens_dist.errors import ClusterError, WorkerVersionError
from streamlens_dist.synth import flight_test_capture
from streamlens_dist.workerplugin import VersionCheck, installed_versions, register_version_check

CHUNK = "512KiB"  # ~60 chunks: a run takes a couple of seconds on two workers
KILL_AT = 12      # kill after this many chunks of the phase finished


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> tuple[Path, Path]:
    """A generated flight-test capture and its serial-run store."""
    d = tmp_path_factory.mktemp("faults")
    path = d / "flight.pcap"
    flight_test_capture(path, 120_000, seed=6)
    serial = d / "serial.zarr"
    streamlens_dist.analyze(path, serial, chunk_size=CHUNK, serial=True)
    return path, serial


def killer(pids: list[int], phase: str, log: list, wait=None):
    """A progress callback that SIGKILLs the processes `pids` once KILL_AT chunks of `phase`
    are done (it runs in the client while tasks keep running on the workers); `wait(pid)`
    waits for one to be gone."""
    def progress(ph: str, done: int, total: int) -> None:
        log.append((ph, done, total))
        if ph == phase and done == KILL_AT:
            assert total > 3 * KILL_AT, "capture too small: the run would be over"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            for pid in pids:
                if wait:
                    wait(pid)
    return progress


def worker_pids(address: str) -> set[int]:
    from distributed import Client

    with Client(address, timeout="10s") as c:
        return set(c.run(os.getpid).values())


@pytest.mark.timeout(120)
def test_worker_killed_during_dissect_gives_the_serial_store(capture, tmp_path: Path) -> None:
    """One of two workers (no nanny: gone for good) SIGKILLed in pass 1: its partials and
    merge nodes are recomputed on the other one."""
    path, serial = capture
    store = tmp_path / "faulty.zarr"
    log: list = []
    with dask_cluster(2, nanny=False) as cl:
        victim = cl.workers[0]
        summary = streamlens_dist.analyze(
            path, store, chunk_size=CHUNK, scheduler=cl.address,
            progress=killer([victim.pid], "dissect", log, wait=lambda _: victim.wait(10)))
        assert victim.returncode == -signal.SIGKILL        # it really died mid-run
        assert cl.workers[1].poll() is None
        assert worker_pids(cl.address) == {cl.workers[1].pid}
    assert ("dissect", KILL_AT, summary.chunks) in log
    assert log[-1] == ("outliers", summary.chunks, summary.chunks)
    check_equal(store, serial, "killed during dissect")


@pytest.mark.timeout(120)
def test_all_workers_killed_during_outliers_gives_the_serial_store(capture,
                                                                    tmp_path: Path) -> None:
    """Both worker processes SIGKILLed in pass 2 (their nannies start new ones): every
    result in worker memory is lost, partials, tree nodes, thresholds and prefixes alike,
    and all of it is recomputed (data sent with `client.scatter` could not be)."""
    path, serial = capture
    store = tmp_path / "faulty.zarr"
    log: list = []
    with dask_cluster(2, nanny=True) as cl:
        before = worker_pids(cl.address)
        assert len(before) == 2
        summary = streamlens_dist.analyze(path, store, chunk_size=CHUNK, scheduler=cl.address,
                                          progress=killer(sorted(before), "outliers", log))
        after = worker_pids(cl.address)
    assert not before & after                             # both were really replaced
    assert ("outliers", KILL_AT, summary.chunks) in log
    check_equal(store, serial, "killed during outliers")


def check_equal(store: Path, serial: Path, where: str) -> None:
    t_faulty, a_faulty = load_store(store)
    t_serial, a_serial = load_store(serial)
    assert_tables_equal(t_faulty, t_serial, where=where)
    assert a_faulty == a_serial
    assert len(t_faulty["flow_outliers"]["frame"]) > 0


@pytest.mark.timeout(120)
def test_lost_scheduler_is_a_clear_error(capture, tmp_path: Path, capfd) -> None:
    path, _ = capture
    store = tmp_path / "lost.zarr"
    with dask_cluster(2, nanny=False) as cl:
        progress = killer([cl.scheduler.pid], "dissect", [], wait=lambda _: cl.scheduler.wait(10))
        with pytest.raises(ClusterError) as err:
            streamlens_dist.analyze(path, store, chunk_size=CHUNK, scheduler=cl.address,
                                    progress=progress)
    msg = str(err.value)
    assert f"lost the Dask scheduler at {cl.address}" in msg
    assert "Restart the scheduler" in msg and "rerun" in msg
    assert not store.exists()
    assert not list(tmp_path.iterdir())              # no temporary store left either
    assert "Traceback" not in capfd.readouterr().err  # distributed's reconnect logs muted


@pytest.mark.timeout(120)
def test_version_check(capture, tmp_path: Path) -> None:
    from distributed import Client

    from streamlens_dist.engine import pass1_task
    from streamlens_dist.settings import Settings

    path, serial = capture
    fake = {**installed_versions(), "dpkt": "0.0.1-fake"}
    with dask_cluster(2) as cl, Client(cl.address) as client:
        # Matching versions: registered without complaint, and a run works (it registers too).
        register_version_check(client)
        store = tmp_path / "ok.zarr"
        streamlens_dist.analyze(path, store, chunk_size="4MiB", client=client)
        assert load_store(store)[1] == load_store(serial)[1]
        # A client with another dpkt: every worker refuses, naming package, versions, worker.
        with pytest.raises(WorkerVersionError) as err:
            register_version_check(client, VersionCheck(fake))
        msg = str(err.value)
        assert f"dpkt 0.0.1-fake on the client but {installed_versions()['dpkt']} on the " \
               "worker" in msg
        assert any(f"Dask worker {w} refused" in msg for w in client.scheduler_info()["workers"])
        assert isinstance(err.value, ClusterError)
        # ... and the refused workers refuse tasks (a worker joining later is refused so).
        spec = streamlens_dist.api.plan_capture([path], 4 << 20).chunks[0].to_dict()
        with pytest.raises(WorkerVersionError, match="dpkt 0.0.1-fake"):
            client.submit(pass1_task, spec, Settings(chunk_size=4 << 20).to_dict(),
                          pure=False).result(timeout=60)
        # The next run registers this client's versions again and is accepted.
        store2 = tmp_path / "ok2.zarr"
        streamlens_dist.analyze(path, store2, chunk_size="4MiB", client=client)
        assert load_store(store2)[1] == load_store(serial)[1]
