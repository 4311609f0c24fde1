"""Never destroy a user's data: only our own result stores (and our own reports, generated
captures and checkpoints) are ever replaced or deleted; an input, a file, a link or a directory
that is not a store is refused with a one-line error, `--overwrite` or not, and left byte for
byte as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CAPTURES
from storeio import load_store

import streamlens_dist
from streamlens_dist.errors import OutputRefusedError, StoreExistsError

CLI = str(Path(sys.executable).parent / "streamlens-dist")
PTP = CAPTURES / "ptpv2_l2_ethertype88f7.pcap"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` (or `root` itself) with its content hash, links as links."""
    if root.is_file() or root.is_symlink():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest() if not root.is_symlink()
                else "link:" + os.readlink(root)}
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = ("link:" + os.readlink(p) if p.is_symlink() else
                    hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
    return out


def refused(r: subprocess.CompletedProcess, path: Path) -> None:
    """Exit 1, one line naming the path, no traceback."""
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert str(path) in lines[0] or path.name in lines[0], r.stderr


def test_the_capture_itself_is_never_the_store(tmp_path: Path) -> None:
    cap = tmp_path / "self.pcap"
    shutil.copy(PTP, cap)
    before = snapshot(cap)
    for extra in ((), ("--overwrite",)):
        refused(run("analyze", str(cap), "-o", str(cap), "--serial", *extra), cap)
        assert snapshot(cap) == before
    # the same file by another spelling (relative, through .., through a link)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.pcap").symlink_to(cap)
    for out in ("sub/../self.pcap", "link.pcap"):
        r = run("analyze", "self.pcap", "-o", out, "--serial", "--overwrite", cwd=tmp_path)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert snapshot(cap) == before
    # a glob that matches the target
    refused(run("analyze", str(tmp_path / "*.pcap"), "-o", str(cap), "--serial",
                "--overwrite"), cap)
    assert snapshot(cap) == before


def test_a_directory_that_is_not_a_store_is_never_replaced(tmp_path: Path) -> None:
    # the directory holding the input, and one holding someone's other files
    holder = tmp_path / "somedir"
    holder.mkdir()
    shutil.copy(PTP, holder / "cap.pcap")
    other = tmp_path / "results"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    (other / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group",
                                                 "attributes": {"schema": "someone-else/1"}}))
    for target, cap in ((holder, holder / "cap.pcap"), (other, PTP)):
        before = snapshot(target)
        for extra in ((), ("--overwrite",)):
            refused(run("analyze", str(cap), "-o", str(target), "--serial", *extra), target)
            assert snapshot(target) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_plain_file_or_a_link_is_never_replaced(tmp_path: Path) -> None:
    f = tmp_path / "out.zarr"
    f.write_bytes(b"someone's data")
    store = tmp_path / "real.zarr"
    streamlens_dist.analyze(PTP, store, serial=True)
    link = tmp_path / "link.zarr"
    link.symlink_to(store)
    stored = snapshot(store)
    for target in (f, link):
        before = snapshot(target)
        for overwrite in (False, True):
            with pytest.raises(OutputRefusedError, match="only a streamlens-dist result store"):
                streamlens_dist.analyze(PTP, target, serial=True, overwrite=overwrite)
            assert snapshot(target) == before
    assert snapshot(store) == stored


def test_a_store_holding_an_input_is_not_replaced(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    streamlens_dist.analyze(PTP, store, serial=True)
    inside = store / "cap.pcap"
    shutil.copy(PTP, inside)
    before = snapshot(store)
    with pytest.raises(OutputRefusedError, match="an input of this run"):
        streamlens_dist.analyze(inside, store, serial=True, overwrite=True)
    assert snapshot(store) == before


def test_our_store_and_an_empty_directory_are_replaced(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    streamlens_dist.analyze(PTP, store, serial=True)
    with pytest.raises(StoreExistsError):
        streamlens_dist.analyze(PTP, store, serial=True, sigma="2")
    streamlens_dist.analyze(PTP, store, serial=True, sigma="2", overwrite=True)
    assert load_store(store)[1]["sigma"] == "2"
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    streamlens_dist.analyze(PTP, empty, serial=True)
    assert load_store(empty)[1]["complete"] is True


def test_leftovers_are_removed_only_when_they_are_ours(tmp_path: Path) -> None:
    """`.NAME.incomplete-PID` of a dead process is removed only if it holds what a store
    write makes; a user's directory that happens to have such a name stays."""
    dead = 2**22 + 12345  # above the kernel's pid_max default: no such process
    ours = tmp_path / f".s.zarr.incomplete-{dead}"
    (ours / "flows").mkdir(parents=True)
    theirs = tmp_path / f".s.zarr.replaced-{dead + 1}"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("years of work")
    streamlens_dist.analyze(PTP, tmp_path / "s.zarr", serial=True)
    assert not ours.exists()
    assert (theirs / "thesis.tex").read_text() == "years of work"


def test_checkpoint_only_in_an_empty_or_checkpoint_directory(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    busy = tmp_path / "home"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(OutputRefusedError, match="not a streamlens-dist checkpoint"):
        streamlens_dist.analyze(PTP, store, serial=True, checkpoint=busy)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    with pytest.raises(OutputRefusedError, match="overlap"):
        streamlens_dist.analyze(PTP, store, serial=True, checkpoint=store / "ckpt")
    with pytest.raises(OutputRefusedError, match="overlap"):
        streamlens_dist.analyze(PTP, tmp_path / "c" / "s.zarr", serial=True,
                                checkpoint=tmp_path / "c")
    assert not store.exists()
    ckpt = tmp_path / "ckpt"
    streamlens_dist.analyze(PTP, store, serial=True, checkpoint=ckpt, chunk_size="4KiB")
    s = streamlens_dist.analyze(PTP, store, serial=True, checkpoint=ckpt, chunk_size="4KiB",
                                overwrite=True)
    assert s.phases["checkpoint_hits"] == s.chunks > 1
    # a checkpoint written before the marker existed (only its two-hex-digit directories)
    (ckpt / "streamlens-checkpoint.json").unlink()
    s = streamlens_dist.analyze(PTP, store, serial=True, checkpoint=ckpt, chunk_size="4KiB",
                                overwrite=True)
    assert s.phases["checkpoint_hits"] == s.chunks


def test_html_report_never_over_an_input_or_a_foreign_file(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    cap = tmp_path / "cap.pcap"
    shutil.copy(PTP, cap)
    streamlens_dist.analyze(cap, store, serial=True)
    notes = tmp_path / "notes.html"
    notes.write_text("<html>my notes</html>")
    for target in (cap, notes, store / "zarr.json", store / "report.html", store):
        before = snapshot(target) if target.exists() else None
        refused(run("report", str(store), "--html", str(target)), target)
        assert (snapshot(target) if target.exists() else None) == before
    assert snapshot(store) == snapshot(store)
    ok = tmp_path / "report.html"
    assert run("report", str(store), "--html", str(ok)).returncode == 0
    first = ok.stat().st_mtime_ns
    assert run("report", str(store), "--html", str(ok)).returncode == 0  # ours: replaced
    assert ok.stat().st_mtime_ns >= first


def test_sample_refuses_an_existing_path_without_overwrite(tmp_path: Path) -> None:
    cap = tmp_path / "flight.pcap"
    shutil.copy(PTP, cap)
    before = snapshot(cap)
    r = run("sample", str(cap), "--frames", "100")
    assert r.returncode == 1 and "--overwrite" in r.stderr, r.stderr
    assert snapshot(cap) == before
    refused(run("sample", str(tmp_path), "--frames", "100", "--overwrite"), tmp_path)
    r = run("sample", str(cap), "--frames", "100", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert snapshot(cap) != before
    assert streamlens_dist.analyze(cap, tmp_path / "s.zarr", serial=True).frames == 100
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_every_store_schema_of_ours_is_known_to_the_rule() -> None:
    from streamlens_dist.campaign.cstore import SCHEMA as CAMPAIGN
    from streamlens_dist.store import OUR_SCHEMAS, SCHEMA

    assert set(OUR_SCHEMAS) == {SCHEMA, CAMPAIGN}
