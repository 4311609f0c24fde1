"""Real processes: a `dask scheduler` and two `dask worker`s on loopback, driven by the CLI.

The store made on that cluster must equal the local-cluster run and the serial run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import dask_processes, free_port
from conftest import CAPTURES, assert_tables_equal
from storeio import load_store

CLI = str(Path(sys.executable).parent / "streamlens-dist")
CAPTURE = CAPTURES / "mixed_many_protocols_vlan_ipv6.pcap"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def scheduler() -> str:
    with dask_processes(2) as address:
        yield address


def test_scheduler_run_equals_local_and_serial(scheduler: str, tmp_path: Path) -> None:
    remote, local, serial = (tmp_path / n for n in ("remote.zarr", "local.zarr", "serial.zarr"))
    r = run_cli("analyze", str(CAPTURE), "-o", str(remote), "--chunk-size", "8KiB",
                "--scheduler", scheduler, "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("analyze", str(CAPTURE), "-o", str(local), "--chunk-size", "100KiB",
                "--workers", "2", "-q")
    assert r.returncode == 0, r.stderr
    r = run_cli("analyze", str(CAPTURE), "-o", str(serial), "--serial", "-q")
    assert r.returncode == 0, r.stderr
    t_remote, a_remote = load_store(remote)
    for other in (local, serial):
        t, a = load_store(other)
        assert_tables_equal(t_remote, t, where=other.name)
        assert a == a_remote
    assert len(t_remote["flow_outliers"]["frame"]) > 0


def test_scheduler_from_environment(scheduler: str, tmp_path: Path) -> None:
    store = tmp_path / "env.zarr"
    r = run_cli("analyze", str(CAPTURES / "ptpv2_l2_ethertype88f7.pcap"), "-o", str(store),
                "--chunk-size", "2KiB", "--json", env={"DASK_SCHEDULER_ADDRESS": scheduler})
    assert r.returncode == 0, r.stderr
    assert '"frames": 205' in r.stdout
    assert store.exists()


def test_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    r = run_cli("analyze", str(CAPTURE), "-o", str(tmp_path / "x.zarr"), "--scheduler", address)
    assert r.returncode == 1
    assert f"cannot reach the Dask scheduler at {address}" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_one_chunk_capture_on_a_scheduler_runs_as_one_task(scheduler: str, tmp_path: Path
                                                           ) -> None:
    """A one-chunk capture on a cluster takes both passes in one task (engine.whole_task):
    the same store as serial, outliers included, and its partial goes to the checkpoint."""
    remote, serial, ck = tmp_path / "remote.zarr", tmp_path / "serial.zarr", tmp_path / "ck"
    r = run_cli("analyze", str(CAPTURE), "-o", str(remote), "--chunk-size", "1GiB",
                "--scheduler", scheduler, "--checkpoint", str(ck), "--json")
    assert r.returncode == 0, r.stderr
    import json

    summary = json.loads(r.stdout)
    assert summary["chunks"] == 1 and summary["phases"]["checkpoint_stored"] == 1
    assert run_cli("analyze", str(CAPTURE), "-o", str(serial), "--serial", "-q").returncode == 0
    t, a = load_store(remote)
    t_serial, a_serial = load_store(serial)
    assert_tables_equal(t, t_serial)
    assert a == a_serial and len(t["flow_outliers"]["frame"]) > 0
    again = run_cli("analyze", str(CAPTURE), "-o", str(tmp_path / "again.zarr"), "--chunk-size",
                    "1GiB", "--scheduler", scheduler, "--checkpoint", str(ck), "--json")
    assert json.loads(again.stdout)["phases"]["checkpoint_hits"] == 1
    assert_tables_equal(load_store(tmp_path / "again.zarr")[0], t_serial)


@pytest.mark.timeout(120)
def test_local_cluster_workers_are_set_up_for_chunk_tasks() -> None:
    """The local cluster's worker processes: the chunk task preloaded, no statistical
    profiler (it takes the GIL every 10 ms), and not Dask's MALLOC_TRIM_THRESHOLD_ (with it
    every column array of a chunk is a fresh mmap: engine.cluster_client)."""
    import dask
    import distributed  # noqa: F401 - loads distributed's defaults into dask.config

    from streamlens_dist.engine import cluster_client

    def view() -> tuple:
        import os
        import sys

        import dask
        return (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                dask.config.get("distributed.worker.profile.enabled"),
                "streamlens_dist.chunktask" in sys.modules, os.getpid())

    # the defaults this guards against
    assert dask.config.get("distributed.worker.profile.enabled") is True
    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get("distributed.nanny.pre-spawn-environ")
    with cluster_client(None, 1) as client:
        (got,) = client.run(view).values()
    assert got[:3] == (None, False, True) and got[3] != os.getpid()
    # and the settings were only for those workers
    assert dask.config.get("distributed.worker.profile.enabled") is True
