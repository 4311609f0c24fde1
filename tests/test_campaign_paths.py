"""Campaign paths and results that must survive: a run from another directory, an archive
moved away and back, a re-analysis that fails, a redefined capture; what `capture(id)` says
when it has nothing to give; outputs that are never written over."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zarr
from conftest import assert_tables_equal

from streamlens_dist import open_results
from streamlens_dist.campaign.cstore import LAYOUT, Campaign
from streamlens_dist.campaign.manifest import CaptureEntry, discover, parse_manifest
from streamlens_dist.campaign.run import run_campaign
from streamlens_dist.store import GROUP, atomic_write, json_bytes
from streamlens_dist.synth import flight_test_capture

pytestmark = pytest.mark.timeout(300)
CLI = str(Path(sys.executable).parent / "streamlens-dist")
PATTERN = "{tail}/{date}/{flight}/*.pcap"
IDS = ["T1-2026-03-01-F001", "T2-2026-03-02-F002"]
FLEET = [t for t in LAYOUT if t != "capture_index"]


def make_archive(root: Path) -> Path:
    """Two flights of one file each, under root/tail/date/flight/."""
    for seed, cid in enumerate(IDS, 1):
        tail, date, flight = cid[:2], cid[3:13], cid[14:]
        (root / tail / date / flight).mkdir(parents=True)
        flight_test_capture(root / tail / date / flight / "rec.pcap", 1500, seed=seed)
    return root


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "campaign", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def tables(store: Path | str) -> dict:
    g = zarr.open_group(store, mode="r")
    return {t: {c: g[t][c][:] for c in cols} for t, cols in LAYOUT.items()}


def index(store: Path | str) -> dict[str, tuple[str, str]]:
    t = tables(store)["capture_index"]
    return {c: (s, e) for c, s, e in zip(t["capture_id"].tolist(), t["status"].tolist(),
                                         t["error"].tolist(), strict=True)}


def test_run_from_elsewhere_and_archive_moved_away(tmp_path) -> None:
    """The reported data loss, end to end through the CLI: discover with a relative root,
    add, run; a rerun from another directory changes nothing; the archive moved away leaves
    every result and fleet table as it was (files-missing, not failed); moved back, the
    captures are unchanged again."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_archive(work / "archive")
    store = work / "fleet.zarr"
    assert cli(work, "init", "fleet.zarr").returncode == 0
    r = cli(work, "discover", "archive", "--pattern", PATTERN, "-o", "m.csv")
    assert r.returncode == 0, r.stderr
    listed = parse_manifest((work / "m.csv").read_text(), yaml=False)
    assert [e.files for e in listed] == [(str(work / "archive" / c[:2] / c[3:13] / c[14:] /
                                          "rec.pcap"),) for c in IDS]
    assert cli(work, "add", "fleet.zarr", "m.csv").returncode == 0
    r = cli(work, "run", "fleet.zarr", "--serial", "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    before = tables(store)
    frames = {c: open_results(store).capture(c).attrs["frames"] for c in IDS}

    r = cli(elsewhere, "run", str(store), "--serial", "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 analysed, 0 failed, 0 files missing, 2 unchanged" in r.stdout
    assert_tables_equal(tables(store), before)

    (work / "archive").rename(tmp_path / "moved")
    r = cli(elsewhere, "run", str(store), "--serial", "-q")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "0 analysed, 0 failed, 2 files missing" in r.stdout
    status = json.loads(cli(elsewhere, "status", str(store), "--json").stdout)
    assert [x["status"] for x in status] == ["files-missing"] * 2
    for x in status:
        assert str(work / "archive" / x["tail"]) in x["error"] and "kept" in x["error"]
    after = tables(store)
    assert_tables_equal({t: after[t] for t in FLEET}, {t: before[t] for t in FLEET})
    for col in ("frames", "flows", "outliers", "first_ns", "last_ns"):
        assert after["capture_index"][col].tolist() == before["capture_index"][col].tolist()
    assert {c: open_results(store).capture(c).attrs["frames"] for c in IDS} == frames

    (tmp_path / "moved").rename(work / "archive")
    r = cli(elsewhere, "run", str(store), "--serial", "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 analysed, 0 failed, 0 files missing, 2 unchanged" in r.stdout
    assert_tables_equal(tables(store), before)


def test_older_store_with_relative_paths(tmp_path, monkeypatch) -> None:
    """A store whose manifest holds relative paths (written before they were made absolute)
    resolves them against the current directory; from anywhere else its files are missing,
    never failed, and nothing of its results is lost."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_archive(work / "archive")
    camp = Campaign.create(work / "old.zarr", "3", 1 << 20)
    rows = [CaptureEntry(c, (f"archive/{c[:2]}/{c[3:13]}/{c[14:]}/*.pcap",), c[:2]).to_dict()
            for c in IDS]
    atomic_write(os.path.join(camp.root, "manifest", "zarr.json"),
                 json_bytes({**GROUP, "attributes": {"captures": rows}}))
    monkeypatch.chdir(work)
    assert sorted(run_campaign(camp.root, serial=True).analysed) == IDS
    before = tables(camp.root)

    monkeypatch.chdir(elsewhere)
    r = run_campaign(camp.root, serial=True)
    assert (r.analysed, r.failed, sorted(r.missing)) == ([], {}, IDS)
    assert {s for s, _e in index(camp.root).values()} == {"files-missing"}
    after = tables(camp.root)
    assert_tables_equal({t: after[t] for t in FLEET}, {t: before[t] for t in FLEET})
    assert open_results(camp.root).capture(IDS[0]).attrs["frames"] == 1500

    monkeypatch.chdir(work)
    assert sorted(run_campaign(camp.root, serial=True).unchanged) == IDS
    assert_tables_equal(tables(camp.root), before)


def test_manifest_paths_are_the_manifests(tmp_path, monkeypatch) -> None:
    """`add` reads a manifest's relative paths and globs from the manifest's directory, and
    the campaign keeps them absolute; URLs are left alone. Entries given to Campaign.add
    directly are taken from the current directory."""
    (tmp_path / "lists").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "lists" / "m.csv").write_text(
        "capture_id,files\na,../archive/a/*.pcap sub/b.pcap\nu,s3://bucket/x/*.pcap\n"
        "f,/data/c.pcap\n")
    (tmp_path / "lists" / "m.yaml").write_text("- {capture_id: y, files: [y/*.pcap]}\n")
    store = tmp_path / "c.zarr"
    assert cli(tmp_path, "init", str(store)).returncode == 0
    for m in ("../lists/m.csv", "../lists/m.yaml"):
        r = cli(tmp_path / "elsewhere", "add", str(store), m)
        assert r.returncode == 0, r.stderr
    files = {e.capture_id: e.files for e in Campaign(store).manifest()}
    assert files == {"a": (str(tmp_path / "archive" / "a" / "*.pcap"),
                           str(tmp_path / "lists" / "sub" / "b.pcap")),
                     "u": ("s3://bucket/x/*.pcap",), "f": ("/data/c.pcap",),
                     "y": (str(tmp_path / "lists" / "y" / "*.pcap"),)}
    monkeypatch.chdir(tmp_path / "elsewhere")
    Campaign(store).add([CaptureEntry("z", ("z.pcap",))])
    assert Campaign(store).manifest()[-1].files == (str(tmp_path / "elsewhere" / "z.pcap"),)


def test_failed_reanalysis_keeps_the_last_results(tmp_path) -> None:
    """A capture whose files stop being captures fails, keeps its group (the error says so)
    and leaves the fleet tables; fixed, it is analysed again. `add --replace` and a successful
    analysis replace the group with the new results."""
    archive = make_archive(tmp_path / "archive")
    camp = Campaign.create(tmp_path / "c.zarr", "3", 1 << 20)
    camp.add(discover(str(archive), PATTERN))
    run_campaign(camp.root, serial=True)
    victim = archive / "T1" / "2026-03-01" / "F001" / "rec.pcap"
    good = victim.read_bytes()
    both = tables(camp.root)["fleet_flows"]["captures"].max()
    assert both == 2

    victim.write_bytes(b"this is not a capture\n" * 100)
    r = run_campaign(camp.root, serial=True)
    assert set(r.failed) == {IDS[0]} and "results of its last successful analysis are kept" \
        in r.failed[IDS[0]]
    status, error = index(camp.root)[IDS[0]]
    assert status == "failed" and "kept" in error
    assert open_results(camp.root).capture(IDS[0]).attrs["frames"] == 1500
    assert tables(camp.root)["fleet_flows"]["captures"].max() == 1  # failed: not counted

    victim.write_bytes(good)
    assert run_campaign(camp.root, serial=True).analysed == [IDS[0]]
    assert index(camp.root)[IDS[0]] == ("ok", "")
    assert tables(camp.root)["fleet_flows"]["captures"].max() == 2

    other = tmp_path / "other.pcap"
    flight_test_capture(other, 700, seed=7)
    entry = next(e for e in camp.manifest() if e.capture_id == IDS[0])
    camp.add([dataclasses.replace(entry, files=(str(other),))], replace=True)
    assert index(camp.root)[IDS[0]][0] == "pending"
    assert run_campaign(camp.root, serial=True).analysed == [IDS[0]]
    assert open_results(camp.root).capture(IDS[0]).attrs["frames"] == 700


def test_capture_without_results_says_why(tmp_path) -> None:
    """capture(id) of an unknown id, and of captures pending, failed or with files missing
    that have no results: KeyErrors whose messages read cleanly and say what to do."""
    good, junk = tmp_path / "good.pcap", tmp_path / "junk.pcap"
    flight_test_capture(good, 300, seed=3)
    junk.write_bytes(b"not a capture\n" * 64)
    camp = Campaign.create(tmp_path / "c.zarr", "3", 1 << 20)
    camp.add([CaptureEntry("good", (str(good),)), CaptureEntry("junk", (str(junk),)),
              CaptureEntry("ghost", (str(tmp_path / "gone" / "*.pcap"),))])
    run_campaign(camp.root, serial=True)
    camp.add([CaptureEntry("later", (str(good),))])
    res = open_results(camp.root)
    assert res.capture("good").attrs["frames"] == 300

    def message(cid: str) -> str:
        with pytest.raises(KeyError) as info:
            res.capture(cid)
        text = str(info.value)
        assert not text.startswith(("'", '"')), text
        return text

    text = message("nope")
    assert text.startswith("no capture 'nope'") and "4 captures" in text
    assert f"campaign status {camp.root}" in text
    text = message("junk")
    assert "status is failed" in text and "not a" in text and "--retry-failed" in text
    text = message("ghost")
    assert "status is files-missing" in text and str(tmp_path / "gone") in text
    assert "campaign run" in text
    text = message("later")
    assert "status is pending" in text and "campaign run" in text


def test_outputs_never_written_over(tmp_path) -> None:
    """discover -o refuses an existing file without --overwrite and a directory always;
    init refuses an existing path of any kind; neither leaves anything behind."""
    make_archive(tmp_path / "archive")
    out = tmp_path / "m.csv"
    out.write_text("keep me")
    r = cli(tmp_path, "discover", "archive", "--pattern", PATTERN, "-o", "m.csv")
    assert r.returncode == 1 and out.read_text() == "keep me"
    assert r.stderr.splitlines() == ["error: m.csv already exists; pass --overwrite to "
                                     "replace it, or choose another path"]
    r = cli(tmp_path, "discover", "archive", "--pattern", PATTERN, "-o", "m.csv", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert len(parse_manifest(out.read_text(), yaml=False)) == 2
    (tmp_path / "d.csv").mkdir()
    (tmp_path / "d.csv" / "x").write_text("x")
    r = cli(tmp_path, "discover", "archive", "--pattern", PATTERN, "-o", "d.csv", "--overwrite")
    assert r.stderr.splitlines() == [
        "error: cannot write d.csv: it is a directory; give a file name for the manifest"]
    assert os.listdir(tmp_path / "d.csv") == ["x"]
    capture = tmp_path / "archive" / "T1" / "2026-03-01" / "F001" / "rec.pcap"
    kept = capture.read_bytes()
    r = cli(tmp_path, "discover", "archive", "--pattern", PATTERN, "-o", str(capture),
            "--overwrite")
    assert r.returncode == 1 and "an input of this run" in r.stderr
    assert capture.read_bytes() == kept

    (tmp_path / "file").write_text("keep")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    for name in ("file", "dir", "link"):
        r = cli(tmp_path, "init", name)
        assert r.returncode == 1 and f"{name} already exists" in r.stderr, r.stderr
    assert (tmp_path / "file").read_text() == "keep" and not os.listdir(tmp_path / "dir")
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "archive", "d.csv", "dir", "file", "link", "m.csv"]
