"""Captures, result store and checkpoint in object storage: a real S3-compatible server (moto's
server mode, its own process on loopback) holds them, real `dask scheduler`/`dask worker`
processes analyse them, and the results must equal a local serial run on the same files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import dask_cluster
from conftest import CAPTURES, assert_tables_equal
from s3server import s3_server, storage_options
from storeio import load_store

import streamlens_dist
from streamlens_dist.capture import source
from streamlens_dist.capture.split import plan_capture
from streamlens_dist.errors import CaptureNotFoundError, OutputRefusedError, StoreExistsError
from streamlens_dist.synth import flight_test_capture

pytest.importorskip("s3fs")
pytest.importorskip("moto")
pytestmark = pytest.mark.timeout(120)

PCAPNG = CAPTURES / "pcapng_multi_section_mixed_endian.pcapng"


@pytest.fixture(scope="module")
def s3():
    """(storage options, fsspec filesystem) of a fresh server with buckets `archive` (a
    rotated 3-file capture under flight-042/, one pcapng) and `results`."""
    with s3_server() as endpoint:
        opts = storage_options(endpoint)
        fs, _ = source.filesystem("s3://archive", opts)
        fs.mkdir("archive")
        fs.mkdir("results")
        yield opts, fs


@pytest.fixture(scope="module")
def rotated(tmp_path_factory, s3):
    """A 30,000-frame flight-test capture cut by editcap into 3 rotated files, local copies
    and the same files uploaded under s3://archive/flight-042/."""
    if shutil.which("editcap") is None:
        pytest.skip("editcap (Debian's wireshark-common / tshark) is not installed")
    d = tmp_path_factory.mktemp("rotated")
    whole = d / "whole.pcap"
    flight_test_capture(whole, 30_000, seed=42)
    subprocess.run(["editcap", "-c", "10000", str(whole), str(d / "part.pcap")], check=True)
    whole.unlink()
    parts = sorted(d.glob("part*.pcap"))
    assert len(parts) == 3
    _opts, fs = s3
    for p in parts:
        fs.put_file(str(p), f"archive/flight-042/{p.name}")
    fs.put_file(str(PCAPNG), f"archive/single/{PCAPNG.name}")
    return parts


def test_cluster_reads_s3_and_writes_the_store_to_s3(s3, rotated, tmp_path) -> None:
    """Scan and chunks on two worker processes, store written to the bucket: every table
    equals the local serial run of the same files."""
    opts, fs = s3
    fs.pipe_file("archive/junk/notes.pcap", b"not a capture, just notes\n")
    with dask_cluster(2) as procs:
        summary = streamlens_dist.analyze(["s3://archive/flight-042/*.pcap",
                                           "s3://archive/junk/notes.pcap"],
                                          "s3://results/f042.zarr", chunk_size="64KiB",
                                          scheduler=procs.address, storage_options=opts)
    assert summary.chunks > 10 and summary.frames == 30_000
    # the object that is not a capture is left out, and the message says who read it
    (problem,) = summary.attrs["problems"]
    assert problem["kind"] == "file-not-capture"
    assert "s3://archive/junk/notes.pcap" in problem["message"]
    assert "read by the Dask worker at tcp://127.0.0.1:" in problem["message"]
    local = tmp_path / "local.zarr"
    streamlens_dist.analyze(rotated, local, chunk_size="1MiB", serial=True)
    remote_tables, remote_attrs = load_store("s3://results/f042.zarr", opts)
    local_tables, local_attrs = load_store(local)
    assert_tables_equal(remote_tables, local_tables)
    assert remote_attrs["complete"] is True
    assert remote_attrs["files"] == [f"s3://archive/flight-042/{p.name}" for p in rotated]
    assert remote_attrs["frames"] == local_attrs["frames"] == 30_000
    assert fs.exists("results/f042.zarr/flows/src/zarr.json")


def test_chunk_tasks_read_only_their_byte_ranges(s3, rotated, tmp_path, monkeypatch) -> None:
    """Every read of the chunk tasks is one ranged request for exactly its chunk's bytes; the
    whole object is read only by the scan (one streamed copy per file)."""
    opts, _ = s3
    fs, _ = source.filesystem("s3://archive", opts)  # fsspec hands out this same instance
    ranges: list[tuple[str, int | None, int | None]] = []
    fetched: list[str] = []
    cat, get = fs.cat_file, fs.get_file
    monkeypatch.setattr(fs, "cat_file", lambda p, start=None, end=None, **kw: (
        ranges.append((p, start, end)), cat(p, start=start, end=end, **kw))[1])
    monkeypatch.setattr(fs, "get_file", lambda rpath, lpath, **kw: (
        fetched.append(rpath), get(rpath, lpath, **kw))[1])
    url = "s3://archive/flight-042/*.pcap"
    plan = plan_capture([url], 256 * 1024, opts)
    assert sorted(fetched) == [f"archive/flight-042/{p.name}" for p in rotated] and not ranges
    streamlens_dist.analyze(url, tmp_path / "s.zarr", chunk_size="256KiB", serial=True,
                            storage_options=opts)
    want = {(c.path.removeprefix("s3://"), c.start, c.end) for c in plan.chunks}
    assert len(fetched) == 6  # the analysis scanned each file once more, nothing else
    assert set(ranges) == want  # pass 1 reads every chunk, pass 2 re-reads some
    assert all(start is not None and end - start <= 256 * 1024 + 70_000
               for _p, start, end in ranges)


def test_pcapng_object_and_glob_problems(s3, rotated, tmp_path) -> None:
    """A pcapng object, beside a URL that names no object: the missing one is left out and
    reported like a missing local file; a glob that matches nothing is a clear error."""
    opts, _ = s3
    store = tmp_path / "ng.zarr"
    summary = streamlens_dist.analyze([f"s3://archive/single/{PCAPNG.name}",
                                       "s3://archive/single/missing.pcap"], store,
                                      chunk_size="1KiB", serial=True, storage_options=opts)
    local = tmp_path / "local.zarr"
    streamlens_dist.analyze(PCAPNG, local, chunk_size="1KiB", serial=True)
    assert_tables_equal(load_store(store)[0], load_store(local)[0])
    (problem,) = summary.attrs["problems"]
    assert problem["kind"] == "file-missing"
    assert "s3://archive/single/missing.pcap" in problem["message"]
    with pytest.raises(CaptureNotFoundError, match="no capture file matches"):
        streamlens_dist.analyze("s3://archive/nowhere/*.pcap", tmp_path / "x.zarr",
                                serial=True, storage_options=opts)


def test_store_on_s3_is_replaced_only_with_overwrite(s3, rotated) -> None:
    opts, fs = s3
    url = "s3://results/replace.zarr"
    cap = f"s3://archive/single/{PCAPNG.name}"
    streamlens_dist.analyze(cap, url, serial=True, storage_options=opts)
    with pytest.raises(StoreExistsError):
        streamlens_dist.analyze(cap, url, serial=True, storage_options=opts)
    streamlens_dist.analyze(cap, url, serial=True, overwrite=True, storage_options=opts,
                            sigma="2")
    assert load_store(url, opts)[1]["sigma"] == "2"
    # a killed run's leftover (root not marked complete, stray objects) is simply replaced
    root = json.loads(fs.cat_file("results/replace.zarr/zarr.json"))
    root["attributes"]["complete"] = False
    fs.pipe_file("results/replace.zarr/zarr.json", json.dumps(root).encode())
    fs.pipe_file("results/replace.zarr/stray/object", b"x")
    streamlens_dist.analyze(cap, url, serial=True, storage_options=opts)
    assert load_store(url, opts)[1]["complete"] is True
    assert not fs.exists("results/replace.zarr/stray/object")
    # someone else's objects under the prefix are not ours to delete, nor is an input
    fs.pipe_file("results/theirs/data.bin", b"x")
    for overwrite in (False, True):
        with pytest.raises(OutputRefusedError, match="not a streamlens-dist result store"):
            streamlens_dist.analyze(cap, "s3://results/theirs", serial=True,
                                    storage_options=opts, overwrite=overwrite)
        with pytest.raises(OutputRefusedError, match="an input of this run"):
            streamlens_dist.analyze(cap, cap, serial=True, storage_options=opts,
                                    overwrite=overwrite)
        with pytest.raises(OutputRefusedError, match="an input of this run"):
            streamlens_dist.analyze("s3://archive/single/*.pcapng", "s3://archive/single",
                                    serial=True, storage_options=opts, overwrite=overwrite)
    assert fs.cat_file("results/theirs/data.bin") == b"x"
    assert fs.size(f"archive/single/{PCAPNG.name}") == PCAPNG.stat().st_size


def test_checkpoint_in_s3_resumes(s3, rotated, tmp_path) -> None:
    """Partials kept under an S3 prefix: a rerun finds every chunk there and computes none."""
    opts, fs = s3
    url = "s3://archive/flight-042/*.pcap"
    ck = "s3://results/ckpt/run-1"
    first = streamlens_dist.analyze(url, tmp_path / "a.zarr", chunk_size="256KiB",
                                    serial=True, storage_options=opts, checkpoint=ck)
    assert first.phases["checkpoint_stored"] == first.chunks > 3
    assert len(fs.glob("results/ckpt/run-1/*/*.partial")) == first.chunks
    # lose a third of them, as if the first run had been killed
    for p in sorted(fs.glob("results/ckpt/run-1/*/*.partial"))[::3]:
        fs.rm_file(p)
    again = streamlens_dist.analyze(url, tmp_path / "b.zarr", chunk_size="256KiB",
                                    serial=True, storage_options=opts, checkpoint=ck)
    assert again.phases["checkpoint_stored"] == -(-first.chunks // 3)
    assert again.phases["checkpoint_hits"] + again.phases["checkpoint_stored"] == first.chunks
    assert_tables_equal(load_store(tmp_path / "a.zarr")[0], load_store(tmp_path / "b.zarr")[0])
    # a changed object misses: its identity (size, ETag) is part of the key
    fs.pipe_file(f"archive/flight-042/{rotated[0].name}", rotated[0].read_bytes()[:-100])
    changed = streamlens_dist.analyze(url, tmp_path / "c.zarr", chunk_size="256KiB",
                                      serial=True, storage_options=opts, checkpoint=ck)
    fs.put_file(str(rotated[0]), f"archive/flight-042/{rotated[0].name}")
    assert changed.phases["checkpoint_stored"] >= 1
    assert fs.exists("results/ckpt/run-1/streamlens-checkpoint.json")
    # a prefix holding someone else's objects is not a checkpoint: nothing goes in
    fs.pipe_file("results/theirs-ckpt/report.pdf", b"x")
    with pytest.raises(OutputRefusedError, match="not a streamlens-dist checkpoint"):
        streamlens_dist.analyze(url, tmp_path / "d.zarr", chunk_size="256KiB", serial=True,
                                storage_options=opts, checkpoint="s3://results/theirs-ckpt")
    assert fs.ls("results/theirs-ckpt") == ["results/theirs-ckpt/report.pdf"]


def test_cli_with_storage_options(s3, rotated) -> None:
    opts, _ = s3
    cli = str(Path(sys.executable).parent / "streamlens-dist")
    args = [cli, "analyze", f"s3://archive/single/{PCAPNG.name}", "-o", "s3://results/cli.zarr",
            "--serial", "--json"]
    out = subprocess.run([*args, "--storage-options", json.dumps(opts)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["store"] == "s3://results/cli.zarr"
    assert load_store("s3://results/cli.zarr", opts)[1]["complete"] is True
    bad = subprocess.run([*args, "--storage-options", "[1]"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "JSON object" in bad.stderr
    # a bucket that does not exist: one line naming the URL, exit 1, no traceback
    nobucket = subprocess.run([cli, "analyze", "s3://no-such-bucket/x.pcap", "-o",
                               "s3://results/nb.zarr", "--serial", "--storage-options",
                               json.dumps(opts)], capture_output=True, text=True, timeout=120)
    assert nobucket.returncode == 1, nobucket.stderr
    assert "s3://no-such-bucket/x.pcap" in nobucket.stderr
    assert "Traceback" not in nobucket.stderr


def test_campaign_of_captures_in_s3(s3, rotated, tmp_path) -> None:
    """`discover` over a bucket prefix and a campaign run reading the objects: the same
    capture groups as local files, identity from size and ETag (a rerun does nothing)."""
    from streamlens_dist.campaign.cstore import Campaign
    from streamlens_dist.campaign.manifest import discover
    from streamlens_dist.campaign.run import run_campaign

    opts, fs = s3
    for p in rotated:
        fs.put_file(str(p), f"archive/fleet/T7/2026-02-02/F11/{p.name}")
    fs.put_file(str(PCAPNG), f"archive/fleet/T8/2026-02-03/F12/{PCAPNG.name}")
    entries = discover("s3://archive/fleet", "{tail}/{date}/{flight}/*", opts)
    assert [(e.capture_id, len(e.files)) for e in entries] == [("T7-2026-02-02-F11", 3),
                                                              ("T8-2026-02-03-F12", 1)]
    assert entries[0].files[0].startswith("s3://archive/fleet/T7/")
    camp = Campaign.create(tmp_path / "c.zarr", "3", 64 * 1024)
    camp.add(entries)
    first = run_campaign(camp.root, serial=True, storage_options=opts)
    assert sorted(first.analysed) == ["T7-2026-02-02-F11", "T8-2026-02-03-F12"]
    assert camp.record("T7-2026-02-02-F11")["identity"][0][2]  # the ETag
    local = tmp_path / "local.zarr"
    streamlens_dist.analyze(rotated, local, chunk_size="64KiB", serial=True)
    assert_tables_equal(load_store(camp.capture_path("T7-2026-02-02-F11"))[0],
                        load_store(local)[0])
    again = run_campaign(camp.root, serial=True, storage_options=opts)
    assert again.analysed == [] and len(again.unchanged) == 2


def test_compressed_objects(s3, rotated, tmp_path) -> None:
    """gzip (several members) and zstd objects: scanned from a copy, chunks decompressed from
    their restart point through fsspec reads; the same tables as the plain local file."""
    import gzip

    import zstandard

    opts, fs = s3
    raw = rotated[0].read_bytes()
    half = len(raw) // 2  # two gzip members: a restart point in the middle
    fs.pipe_file("archive/packed/a.pcap.gz", gzip.compress(raw[:half]) + gzip.compress(raw[half:]))
    fs.pipe_file("archive/packed/b.pcap.zst", zstandard.ZstdCompressor().compress(raw))
    local = tmp_path / "local.zarr"
    streamlens_dist.analyze(rotated[0], local, chunk_size="64KiB", serial=True)
    for name in ("a.pcap.gz", "b.pcap.zst"):
        store = tmp_path / f"{name}.zarr"
        s = streamlens_dist.analyze(f"s3://archive/packed/{name}", store, chunk_size="64KiB",
                                    serial=True, storage_options=opts)
        assert s.chunks > 1 and not s.attrs["problems"], name
        assert_tables_equal(load_store(store)[0], load_store(local)[0], name)
