"""No half-written results: `streamlens-dist analyze` killed with SIGKILL at random moments
never leaves a store that reads as complete (`complete = true`) unless it is exactly the
store of a clean run, also when it was replacing an existing store (--overwrite), and what a
killed run leaves behind never stops a later run."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import assert_tables_equal
from storeio import load_store

from streamlens_dist.results import Tables
from streamlens_dist.synth import udp_frame

CLI = str(Path(sys.executable).parent / "streamlens-dist")
ARGS = ("--serial", "-q", "--chunk-size", "2MiB")


def write_capture(path: Path, frames: int = 120_000, flows: int = 800, seed: int = 0) -> None:
    """A pcap big enough that a run takes a second or two, written with numpy in a fraction
    of that: one template UDP frame, a source address per flow, jittered timestamps with a
    few long gaps (outliers), so every phase, the store write included, has work to do."""
    rng = np.random.default_rng(seed)
    tmpl = np.frombuffer(udp_frame("10.0.0.1", "239.1.0.1", 5000, 6000, bytes(32)), np.uint8)
    rec = np.zeros((frames, 16 + len(tmpl)), np.uint8)
    rec[:, 16:] = tmpl
    src = (10 << 24) + rng.integers(0, flows, frames)
    for k in range(4):  # the IPv4 source address: Ethernet header 14 + offset 12
        rec[:, 16 + 26 + k] = (src >> (24 - 8 * k)) & 0xFF
    gaps = np.cumsum((rng.random(frames) < 0.001) * 50_000)
    ts_us = 1_700_000_000 * 10**6 + np.cumsum(rng.integers(1, 200, frames)) + gaps
    hdr = rec[:, :16].view("<u4")
    hdr[:, 0], hdr[:, 1] = ts_us // 10**6, ts_us % 10**6
    hdr[:, 2] = hdr[:, 3] = len(tmpl)
    with open(path, "wb") as f:
        f.write(np.array([0xA1B2C3D4, 0x00040002, 0, 0, 65535, 1], "<u4").tobytes()[:24])
        f.write(rec.tobytes())


def run_and_kill(capture: Path, store: Path, after: float, *extra: str) -> None:
    p = subprocess.Popen([CLI, "analyze", str(capture), "-o", str(store), *ARGS, *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(after)
    finally:
        p.kill()  # SIGKILL: no handler, no cleanup; a no-op if it has already finished
        p.wait()


def outcome(store: Path, clean: tuple[dict, dict]) -> str:
    """What a killed run left at `store`; fails if it reads as complete but differs from the
    clean run (or cannot be read although it says it is complete)."""
    if not store.exists():
        return "absent"
    try:
        complete = zarr.open_group(str(store), mode="r", zarr_format=3).attrs.get("complete")
    except Exception:  # no readable root metadata: nothing reads this as a finished store
        return "unreadable"
    if complete is not True:
        return "incomplete"
    try:
        tables, attrs = load_store(store)  # must be whole: it claims to be
    except Exception as exc:
        raise AssertionError(f"{store} says complete = true but cannot be read: {exc!r}") from exc
    assert attrs == clean[1]
    assert_tables_equal(tables, clean[0], where=str(store))
    return "complete"


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float, float]:
    """(capture, clean store, wall seconds of a clean run, seconds of its store write)."""
    tmp = tmp_path_factory.mktemp("kill")
    capture = tmp / "flight.pcap"
    write_capture(capture)
    store = tmp / "clean.zarr"
    t0 = time.perf_counter()
    r = subprocess.run([CLI, "analyze", str(capture), "-o", str(store), *ARGS, "--json"],
                       capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    write = json.loads(r.stdout)["phases"]["write"]
    return capture, store, wall, write


def _moments(wall: float, write: float, n: int, seed: int) -> list[float]:
    """Half spread over the whole run, half where the store is being written (the end of
    the run, within the uncertainty of start-up time)."""
    rng = random.Random(seed)
    spread = [rng.uniform(0.1, 1.0) * wall for _ in range(n - n // 2)]
    at_write = [wall - rng.uniform(0.0, 3 * write + 0.1) for _ in range(n // 2)]
    return sorted(max(0.05, t) for t in spread + at_write)


def test_killed_runs_never_leave_a_complete_looking_store(clean_run, tmp_path: Path) -> None:
    capture, clean_store, wall, write = clean_run
    clean = load_store(clean_store)
    outcomes = []
    for i, after in enumerate(_moments(wall, write, 6, seed=11)):
        store = tmp_path / f"out{i}.zarr"
        run_and_kill(capture, store, after)
        outcomes.append(outcome(store, clean))
    # temporary directories are hidden siblings, never something named like a store
    visible = {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert visible <= {f"out{i}.zarr" for i in range(len(outcomes))}, outcomes
    # whatever the killed runs left behind (their temporary directories included), a later
    # run to the same path completes and equals the clean run
    i = next((i for i, o in enumerate(outcomes) if o != "complete"), 0)
    store = tmp_path / f"out{i}.zarr"
    extra = ("--overwrite",) if store.exists() else ()
    r = subprocess.run([CLI, "analyze", str(capture), "-o", str(store), *ARGS, *extra],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (outcomes, r.stderr)
    assert outcome(store, clean) == "complete"


def test_killed_overwrite_keeps_old_or_new_store(clean_run, tmp_path: Path) -> None:
    """Killed while replacing an existing store: what is at the path is either not complete
    or a whole store equal to the clean run (the old one here equals the new one)."""
    capture, clean_store, wall, write = clean_run
    clean = load_store(clean_store)
    for i, after in enumerate(_moments(wall, write, 3, seed=12)):
        store = tmp_path / f"over{i}.zarr"
        shutil.copytree(clean_store, store)
        run_and_kill(capture, store, after, "--overwrite")
        outcome(store, clean)


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no `except Exception` handler sees it."""


@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
def test_kill_at_every_step_of_the_replacement(clean_run, tmp_path: Path, existing: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The store write, killed at each rename or delete of whole directories next to the
    store (a delete killed half-way through): the path then holds nothing or a whole store,
    and the next run to the same path completes and leaves no hidden leftovers."""
    from streamlens_dist import store as store_mod

    _capture, clean_store, _wall, _write = clean_run
    clean = load_store(clean_store)
    tables, attrs = clean
    real_replace, real_rmtree = os.replace, shutil.rmtree
    steps = {"n": 0, "die_at": 0}

    def ours(path) -> bool:  # renames inside the temporary store are zarr's, not the swap's
        return Path(path).parent == tmp_path

    def step() -> bool:
        steps["n"] += 1
        return steps["n"] == steps["die_at"]

    def replace(src, dst, *args, **kwargs):
        if ours(src) and step():
            raise _Killed
        return real_replace(src, dst, *args, **kwargs)

    def rmtree(path, *args, **kwargs):
        if ours(path) and step():
            doomed = sorted(p for p in Path(path).rglob("*") if p.is_file())
            for p in doomed[: len(doomed) // 2]:
                p.unlink()
            raise _Killed
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(store_mod.os, "replace", replace)
    monkeypatch.setattr(store_mod.shutil, "rmtree", rmtree)
    target = tmp_path / "s.zarr"
    outcomes = []
    for die_at in range(1, 10):
        real_rmtree(target, ignore_errors=True)
        if existing:
            shutil.copytree(clean_store, target)
        steps.update(n=0, die_at=die_at)
        try:
            store_mod.write_store(str(target), Tables(**tables), attrs, overwrite=True)
        except _Killed:
            outcomes.append(outcome(target, clean))
            continue
        assert outcome(target, clean) == "complete"
        break
    else:
        raise AssertionError("the store write never finished")
    assert outcomes, "no step of the replacement was killed"
    assert all(o in ("absent", "complete") for o in outcomes), outcomes
    steps.update(n=0, die_at=0)
    store_mod.write_store(str(target), Tables(**tables), attrs, overwrite=True)
    assert outcome(target, clean) == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]
