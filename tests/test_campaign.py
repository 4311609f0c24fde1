"""Campaigns: a generated archive (tails x flights, rotated sets, a damaged file, a capture
added later) analysed incrementally; fleet tables against a brute-force recomputation over
every capture's frames (tests/reference.py); kill-and-rerun gives the same store."""

from __future__ import annotations

import gzip
import json
import lzma
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import zarr
import zstandard
from conftest import assert_tables_equal
from reference import reference_analyze, reference_frames
from storeio import load_store

from streamlens_dist.campaign.cstore import DONE, LAYOUT, Campaign
from streamlens_dist.campaign.manifest import (
    CaptureEntry,
    discover,
    parse_manifest,
    read_manifest,
    write_manifest,
)
from streamlens_dist.campaign.run import run_campaign
from streamlens_dist.errors import SettingsError
from streamlens_dist.synth import flight_test_capture

pytestmark = pytest.mark.timeout(600)
CLI = str(Path(sys.executable).parent / "streamlens-dist")
PATTERN = "{tail}/{date}/{flight}/*.pcap*"
FLIGHTS = [("T1", "2026-03-01", "F001"), ("T1", "2026-03-04", "F002"),
           ("T2", "2026-03-01", "F001"), ("T2", "2026-03-05", "F003")]


def _flight(root: Path, tail: str, date: str, flight: str, seed: int, frames: int = 2400,
            codec: str = "") -> None:
    """A rotated set of 3 files (editcap -c) under root/tail/date/flight/, each compressed
    with `codec` ("gz", "zst", "xz") if given."""
    d = root / tail / date / flight
    d.mkdir(parents=True)
    whole = root / f"whole-{seed}.pcap"
    flight_test_capture(whole, frames, seed=seed)
    subprocess.run(["editcap", "-c", str(frames // 3), str(whole), str(d / "rec.pcap")],
                   check=True, capture_output=True)
    whole.unlink()
    if codec:
        for f in d.glob("*.pcap"):
            Path(f"{f}.{codec}").write_bytes(COMPRESS[codec](f.read_bytes()))
            f.unlink()


COMPRESS = {"gz": gzip.compress, "xz": lzma.compress,
            "zst": lambda b: zstandard.ZstdCompressor().compress(b)}
DECOMPRESS = {".gz": gzip.decompress, ".xz": lzma.decompress,
              ".zst": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)}


def _plain(path: str, tmp: Path) -> str:
    """The decompressed copy of a compressed capture, for the reference reader."""
    suffix = Path(path).suffix
    if suffix not in DECOMPRESS:
        return path
    out = tmp / (Path(path).parent.name + "-" + Path(path).stem)
    out.write_bytes(DECOMPRESS[suffix](Path(path).read_bytes()))
    return str(out)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    if shutil.which("editcap") is None:
        pytest.skip("editcap (Debian's wireshark-common / tshark) is not installed")
    root = tmp_path_factory.mktemp("archive")
    for seed, (tail, date, flight) in enumerate(FLIGHTS, 1):
        # rotated sets: plain, gzip, plain (with the damaged file), zstd
        _flight(root, tail, date, flight, seed, codec={2: "gz", 4: "zst"}.get(seed, ""))
    # one damaged file: the last file of T2's first flight cut in the middle of a record
    damaged = sorted((root / "T2" / "2026-03-01" / "F001").glob("*.pcap"))[-1]
    with open(damaged, "r+b") as f:
        f.truncate(os.path.getsize(damaged) - 37)
    return root


def _campaign(tmp_path: Path, archive: Path, name: str = "c.zarr") -> Campaign:
    camp = Campaign.create(tmp_path / name, "3", 16 * 1024)
    camp.add(discover(str(archive), PATTERN))
    return camp


def _tables(store: Path) -> dict:
    g = zarr.open_group(store, mode="r")
    return {t: {c: g[t][c][:] for c in cols} for t, cols in LAYOUT.items()}


def _pooled(iats: list[int]) -> tuple[float, float]:
    n = len(iats)
    if n == 0:
        return math.nan, math.nan
    mean = Fraction(sum(iats), n)
    var = sum((Fraction(x) - mean) ** 2 for x in iats) / (n - 1) if n >= 2 else None
    return float(mean), math.sqrt(var) if var is not None else math.nan


def brute_force(camp: Campaign, tmp: Path) -> dict:
    """Fleet tables recomputed from every committed capture's frames, by flow key and by
    (flow key, frame type), straight from the definition: IATs within each capture pooled,
    outliers as the single-capture reference decides them."""
    flows: dict[tuple, dict] = {}
    types: dict[tuple, dict] = {}
    for e in camp.index_order():
        rec = camp.record(e.capture_id)
        if rec is None or rec["status"] not in DONE:
            continue
        files = [_plain(f, tmp) for f in sorted(e.files)]
        frames = [f for f in reference_frames(files) if f["status"] == "ok"]
        ref = reference_analyze(files)
        out_flow = {(s, d, k): o for s, d, k, o in zip(ref["flows"]["src"], ref["flows"]["dst"],
                                                        ref["flows"]["kind"],
                                                        ref["flows"]["outliers"], strict=True)}
        out_type = {}
        for row, ft, o in zip(ref["frame_types"]["flow"], ref["frame_types"]["frame_type"],
                              ref["frame_types"]["outliers"], strict=True):
            key = (ref["flows"]["src"][row], ref["flows"]["dst"][row], ref["flows"]["kind"][row])
            out_type[(key, ft)] = o
        last: dict = {}
        for f in frames:
            fk = (f["src"], f["dst"], f["kind"])
            for scopes, key, outs in ((flows, fk, out_flow), (types, (fk, f["frame_type"]),
                                                                 out_type)):
                acc = scopes.setdefault(key, {"captures": set(), "frames": 0, "bytes": 0,
                                              "iats": [], "outliers": 0})
                if e.capture_id not in acc["captures"]:
                    acc["captures"].add(e.capture_id)
                    acc["outliers"] += int(outs[key])
                acc["frames"] += 1
                acc["bytes"] += f["bytes"]
                if (e.capture_id, key) in last:
                    acc["iats"].append(f["ts_ns"] - last[(e.capture_id, key)])
                last[(e.capture_id, key)] = f["ts_ns"]
    return {"flows": flows, "types": types}


def assert_fleet_equals_brute_force(store: Path, camp: Campaign) -> None:
    t = _tables(store)
    plain = store.parent / f"plain-{time.monotonic_ns()}"
    plain.mkdir()
    bf = brute_force(camp, plain)
    ff = t["fleet_flows"]
    keys = list(zip(ff["src"].tolist(), ff["dst"].tolist(), ff["kind"].tolist(), strict=True))
    assert set(keys) == set(bf["flows"]) and len(keys) == len(bf["flows"])
    for i, key in enumerate(keys):
        acc = bf["flows"][key]
        mean, std = _pooled(acc["iats"])
        got = {c: ff[c][i] for c in ff}
        assert got["captures"] == len(acc["captures"]), key
        assert (got["frames"], got["bytes"], got["iat_count"], got["outliers"]) == (
            acc["frames"], acc["bytes"], len(acc["iats"]), acc["outliers"]), key
        assert got["iat_sum_ns"] == sum(acc["iats"])
        if acc["iats"]:
            assert (got["iat_min_ns"], got["iat_max_ns"]) == (min(acc["iats"]), max(acc["iats"]))
            assert got["outlier_rate"] == acc["outliers"] / len(acc["iats"])
        assert np.array_equal([got["iat_mean_ns"], got["iat_std_ns"]], [mean, std],
                              equal_nan=True), key
    # drift: per capture, the flow's own mean IAT as that capture's results have it
    index = t["capture_index"]["capture_id"].tolist()
    fc = t["fleet_flow_captures"]
    per_capture = {}
    for cid in index:
        if camp.record(cid) and camp.record(cid)["status"] in DONE:
            f, _ = load_store(camp.capture_path(cid))
            for src, dst, kind, mean in zip(f["flows"]["src"], f["flows"]["dst"],
                                            f["flows"]["kind"], f["flows"]["iat_mean_ns"],
                                            strict=True):
                per_capture[(str(src), str(dst), str(kind), cid)] = float(mean)
    got = {(*keys[r], index[c]): m for r, c, m in zip(fc["flow"].tolist(), fc["capture"].tolist(),
                                                      fc["iat_mean_ns"].tolist(), strict=True)}
    assert got.keys() == per_capture.keys()
    assert all(np.array_equal(got[k], per_capture[k], equal_nan=True) for k in got)
    ft = t["fleet_frame_types"]
    tkeys = [(keys[r], n) for r, n in zip(ft["flow"].tolist(), ft["frame_type"].tolist(),
                                          strict=True)]
    assert set(tkeys) == set(bf["types"]) and len(tkeys) == len(bf["types"])
    for i, key in enumerate(tkeys):
        acc = bf["types"][key]
        mean, std = _pooled(acc["iats"])
        assert (ft["frames"][i], ft["iat_count"][i], ft["outliers"][i],
                ft["captures"][i]) == (acc["frames"], len(acc["iats"]), acc["outliers"],
                                       len(acc["captures"])), key
        assert np.array_equal([ft["iat_mean_ns"][i], ft["iat_std_ns"][i]], [mean, std],
                              equal_nan=True), key


def test_incremental_campaign(tmp_path, archive) -> None:
    """First run analyses everything (one capture with a damaged file: status problems);
    a second run does nothing; a flight added later is the only one analysed; every fleet
    table equals the brute-force recomputation; per-capture groups equal single analyses."""
    os.chdir(tmp_path)
    camp = _campaign(tmp_path, archive)
    files = [f for e in camp.manifest() for f in e.files]
    assert sum(f.endswith(".pcap.gz") for f in files) == 3  # rotated and compressed
    assert sum(f.endswith(".pcap.zst") for f in files) == 3
    first = run_campaign(camp.root, workers=2)
    assert sorted(first.analysed) == sorted(e.capture_id for e in camp.manifest())
    assert not first.failed
    index = _tables(Path(camp.root))["capture_index"]
    status = dict(zip(index["capture_id"].tolist(), index["status"].tolist(), strict=True))
    assert status["T2-2026-03-01-F001"] == "problems"
    assert sum(v == "ok" for v in status.values()) == 3
    assert_fleet_equals_brute_force(Path(camp.root), camp)
    before = _tables(Path(camp.root))

    second = run_campaign(camp.root, serial=True)
    assert second.analysed == [] and len(second.unchanged) == 4
    assert_tables_equal(_tables(Path(camp.root)), before)

    _flight(archive, "T3", "2026-03-06", "F004", seed=9)
    camp.add(discover(str(archive), PATTERN))
    third = run_campaign(camp.root, serial=True)
    assert third.analysed == ["T3-2026-03-06-F004"] and len(third.unchanged) == 4
    assert_fleet_equals_brute_force(Path(camp.root), camp)
    # a capture's group is exactly a single-capture store of its files
    entry = next(e for e in camp.manifest() if e.capture_id == "T1-2026-03-04-F002")
    single, _ = load_store(camp.capture_path(entry.capture_id))
    ref = reference_analyze([_plain(f, tmp_path) for f in sorted(entry.files)])
    assert_tables_equal({t: single[t] for t in ("flows", "frame_types")},
                        {t: ref[t] for t in ("flows", "frame_types")})
    # the per-tail table pools only that tail's captures
    tail = _tables(Path(camp.root))["tail_flows"]
    assert set(tail["tail"].tolist()) == {"T1", "T2", "T3"}
    t3 = [i for i, t in enumerate(tail["tail"].tolist()) if t == "T3"]
    assert all(tail["captures"][i] == 1 for i in t3)


def test_changed_and_missing_files(tmp_path, archive) -> None:
    os.chdir(tmp_path)
    camp = _campaign(tmp_path, archive)
    camp.add([CaptureEntry("ghost", (str(tmp_path / "nowhere" / "*.pcap"),), "T9")])
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture\n" * 64)
    camp.add([CaptureEntry("junk", (str(junk),), "T9")])
    r = run_campaign(camp.root, serial=True)
    assert set(r.failed) == {"junk"} and set(r.missing) == {"ghost"}
    assert "no capture file matches" in r.missing["ghost"]
    again = run_campaign(camp.root, serial=True)
    assert again.analysed == [] and again.failed == {}  # committed as failed: not retried
    assert set(again.missing) == {"ghost"}  # never analysed while its files are missing
    assert set(run_campaign(camp.root, serial=True, retry_failed=True).failed) == {"junk"}
    # a file rewritten with other content is seen even with the same size and mtime
    victim = sorted((archive / "T1" / "2026-03-01" / "F001").glob("*.pcap*"))[0]
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    try:
        changed = run_campaign(camp.root, serial=True)
        assert changed.analysed == ["T1-2026-03-01-F001"]
    finally:
        data[-1] ^= 0xFF
        victim.write_bytes(bytes(data))


def test_killed_run_resumes_to_the_same_store(tmp_path, archive) -> None:
    os.chdir(tmp_path)
    killed = _campaign(tmp_path, archive, "killed.zarr")
    clean = _campaign(tmp_path, archive, "clean.zarr")
    proc = subprocess.Popen([CLI, "campaign", "run", killed.root, "--serial", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    records = Path(killed.root) / "records"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and \
            sum(1 for _ in records.glob("*/zarr.json")) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sum(1 for _ in records.glob("*/zarr.json"))
    total = len(killed.manifest())
    assert 2 <= done < total, "the run finished before it could be killed"
    assert json.loads((Path(killed.root) / "zarr.json").read_text())["attributes"][
        "complete"] is False
    rerun = subprocess.run([CLI, "campaign", "run", killed.root, "--serial", "-q"],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{total - done} analysed" in rerun.stdout
    run_campaign(clean.root, serial=True)
    assert_tables_equal(_tables(Path(killed.root)), _tables(Path(clean.root)))
    for e in clean.manifest():
        x, xa = load_store(killed.capture_path(e.capture_id))
        y, ya = load_store(clean.capture_path(e.capture_id))
        assert_tables_equal(x, y, e.capture_id)
        assert killed.record(e.capture_id)["fleet"] == clean.record(e.capture_id)["fleet"]


def test_manifest_formats_and_errors(tmp_path) -> None:
    entries = [CaptureEntry("A1-f1", ("a/1.pcap", "a/2.pcap"), "A1", "f1", "2026-01-01",
                            {"campaign": "icing", "pilot": "x"}),
               CaptureEntry("A2-f1", ("s3://b/a2/*.pcapng",), "A2")]
    for name in ("m.csv", "m.yaml"):
        write_manifest(tmp_path / name, entries)
        assert parse_manifest((tmp_path / name).read_text(), name.endswith("yaml")) == entries
        # read as a file: relative paths are relative to its directory, URLs stay
        assert [e.files for e in read_manifest(tmp_path / name)] == [
            (str(tmp_path / "a" / "1.pcap"), str(tmp_path / "a" / "2.pcap")),
            ("s3://b/a2/*.pcapng",)]
    with pytest.raises(SettingsError, match="appears twice"):
        parse_manifest("capture_id,files\nx,a.pcap\nx,b.pcap\n", yaml=False)
    with pytest.raises(SettingsError, match="capture id"):
        parse_manifest("capture_id,files\n../evil,a.pcap\n", yaml=False)
    with pytest.raises(SettingsError, match="header"):
        parse_manifest("id,paths\nx,a.pcap\n", yaml=False)
    with pytest.raises(SettingsError, match="unknown fields"):
        parse_manifest("- {capture_id: x, files: [a], tial: T}\n", yaml=True)
    camp = Campaign.create(tmp_path / "c.zarr", "3", 1 << 20)
    camp.add(entries)
    with pytest.raises(SettingsError, match="--replace"):
        camp.add([CaptureEntry("A1-f1", ("other.pcap",))])
    assert camp.add([CaptureEntry("A1-f1", ("other.pcap",))], replace=True) == (0, 1)


def test_cli_commands(tmp_path, archive) -> None:
    os.chdir(tmp_path)
    store = str(tmp_path / "cli.zarr")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, "campaign", *args], capture_output=True, text=True,
                              timeout=300)

    assert run("init", store, "--chunk-size", "32KiB").returncode == 0
    assert run("init", store).returncode == 1  # exists
    r = run("discover", str(archive), "--pattern", PATTERN, "-o",
            "m.csv")
    assert r.returncode == 0, r.stderr
    assert len(read_manifest("m.csv")) >= 4
    assert all(os.path.isabs(f) for e in parse_manifest(Path("m.csv").read_text(), yaml=False)
               for f in e.files)
    assert "added" in run("add", store, "m.csv").stdout
    r = run("run", store, "--serial")
    assert r.returncode == 0, r.stderr
    assert "0 failed" in r.stdout and "captures to analyse" in r.stderr
    st = run("status", store, "--json")
    rows = json.loads(st.stdout)
    assert {x["status"] for x in rows} <= {"ok", "problems"} and len(rows) >= 4
    rep = run("report", store, "--json", "--min-iats", "1")
    fleet = json.loads(rep.stdout)["fleet_flows"]
    rates = [x["outlier_rate"] for x in fleet if x["outlier_rate"] == x["outlier_rate"]]
    assert rates == sorted(rates, reverse=True) and rates[0] > 0
    assert "Fleet: flows with >= 1 IATs, by outlier rate" in run(
        "report", store, "--min-iats", "1").stdout
    bad = run("status", str(tmp_path))
    assert bad.returncode == 1 and "not a campaign store" in bad.stderr


def test_small_captures_analysed_whole_on_workers(tmp_path, archive) -> None:
    """Captures smaller than a chunk are analysed and written by a worker each
    (run.capture_task): the same store, records and fleet tables as the serial run."""
    os.chdir(tmp_path)
    on_workers = Campaign.create(tmp_path / "w.zarr", "3", 64 << 20)
    serial = Campaign.create(tmp_path / "s.zarr", "3", 64 << 20)
    entries = discover(str(archive), PATTERN)
    entries.append(CaptureEntry("ghost", (str(tmp_path / "none" / "*.pcap"),)))
    for camp in (on_workers, serial):
        camp.add(entries)
    r = run_campaign(on_workers.root, workers=2)
    assert len(r.analysed) == len(entries) - 1 and set(r.missing) == {"ghost"} and not r.failed
    run_campaign(serial.root, serial=True)
    assert_tables_equal(_tables(Path(on_workers.root)), _tables(Path(serial.root)))
    for e in entries:
        assert on_workers.record(e.capture_id) == serial.record(e.capture_id)
        if e.capture_id != "ghost":
            assert_tables_equal(load_store(on_workers.capture_path(e.capture_id))[0],
                                load_store(serial.capture_path(e.capture_id))[0])
    assert_fleet_equals_brute_force(Path(on_workers.root), on_workers)


def test_workers_that_cannot_see_the_store(tmp_path, archive) -> None:
    """A worker in its own mount namespace, with an empty tmpfs over the campaign directory,
    writes small captures where the client cannot see them: the run notices and the client
    writes them instead; nothing is lost."""
    from cluster import BIN, dask_cluster
    from distributed import Client

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {hidden}"],
                           capture_output=True)
    if probe.returncode:
        pytest.skip("needs mount namespaces (unshare -m, root) to hide the store from a worker")
    os.chdir(tmp_path)
    camp = Campaign.create(hidden / "c.zarr", "3", 64 << 20)
    camp.add(discover(str(archive), PATTERN))
    serial = _campaign(tmp_path, archive, "serial.zarr")
    with dask_cluster(0) as procs:
        worker = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {hidden} && exec {BIN / 'dask'} "
             f"worker {procs.address} --nthreads 1 --no-dashboard --host 127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with Client(procs.address) as client:
                client.wait_for_workers(1, timeout=60)
                report = run_campaign(camp.root, client=client)
                # a changed capture, written by the worker out of sight again: the group the
                # client already has must not pass for the worker's new one
                cid = "T1-2026-03-01-F001"
                victim = sorted((archive / "T1" / "2026-03-01" / "F001").glob("*.pcap"))[0]
                saved, st = victim.read_bytes(), victim.stat()
                flight_test_capture(victim, 300, seed=99)
                try:
                    assert run_campaign(camp.root, client=client).analysed == [cid]
                    group = zarr.open_group(camp.capture_path(cid), mode="r")
                    assert group.attrs["frames"] == camp.record(cid)["facts"]["frames"]
                finally:
                    victim.write_bytes(saved)
                    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
                assert run_campaign(camp.root, client=client).analysed == [cid]
        finally:
            worker.terminate()
            worker.wait(20)
    assert len(report.analysed) == len(camp.manifest()) and not report.failed
    run_campaign(serial.root, serial=True)
    for e in camp.manifest():
        assert_tables_equal(load_store(camp.capture_path(e.capture_id))[0],
                            load_store(serial.capture_path(e.capture_id))[0])
    assert_tables_equal(_tables(hidden / "c.zarr"), _tables(Path(serial.root)))


def test_pooled_sums_past_int64_keep_exact_means() -> None:
    """Two captures whose flows span nearly the whole timestamp range (hostile times): the
    pooled IAT sum passes int64 and is stored as INT64_MIN; mean and std stay exact."""
    from streamlens_dist.campaign.fleet import fleet_tables
    from streamlens_dist.outliers import mean_std

    big = (1 << 63) - 10  # one IAT of that size per capture (its S)
    scope = [2, 120, 1, big, big * big, big, big, 0]  # frames, bytes, n, S, Q, min, max, out
    fl = {"flows": [["a", "b", "ip4", *scope]], "types": []}
    t = fleet_tables([("T1", fl), ("T1", fl)])["fleet_flows"]
    assert t["iat_sum_ns"].tolist() == [-(1 << 63)] and t["iat_count"].tolist() == [2]
    assert t["iat_mean_ns"].tolist() == [mean_std(2, 2 * big, 2 * big * big)[0]] == [float(big)]
