"""Property tests: random captures (random flows and frame types, jitter, gaps, repeated and
backwards timestamps) cut at random frame boundaries, from one frame per chunk to a single
chunk, give identical tables (the IAT series and histograms too, at random bin widths), equal
to the single-process reference."""

from __future__ import annotations

import random

import pytest
from chunking import as_dict, one_frame_plan, regroup, tables_for
from conftest import assert_tables_equal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import reference_analyze

from streamlens_dist.store import LAYOUT
from streamlens_dist.synth import Interface, random_records, write_pcap, write_pcapng

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(tmp_path, seed: int, n: int, container: str, files: int) -> list:
    rng = random.Random(seed)
    records = random_records(rng, n)
    paths = []
    per = max(1, len(records) // files)
    for i in range(files):
        part = records[i * per:(i + 1) * per] if i < files - 1 else records[i * per:]
        path = tmp_path / f"cap_{seed}_{i}.{container}"
        if container == "pcap":
            write_pcap(path, part)
        else:
            write_pcapng(path, [(ts, 0, f) for ts, f in part], [Interface(1)])
        paths.append(path)
    return paths


@SETTINGS
@given(seed=st.integers(0, 2**32), n=st.integers(1, 120),
       container=st.sampled_from(["pcap", "pcapng"]), files=st.integers(1, 3),
       cuts=st.lists(st.integers(0, 400), max_size=30),
       sigma=st.sampled_from(["3", "2", "1.5", "0.5"]),
       bin_ns=st.sampled_from([1, 7, 1000, 10**6, 10**9, 3600 * 10**9]))
def test_random_chunkings_equal_reference(tmp_path_factory, seed, n, container, files, cuts,
                                          sigma, bin_ns) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    paths = _write(tmp, seed, n, container, files)
    singles = one_frame_plan(paths)
    ref = reference_analyze(paths, sigma=sigma, bin_ns=bin_ns)
    ref_tables = {t: ref[t] for t in LAYOUT}
    whole = as_dict(tables_for(regroup(singles, []), sigma, bin_ns))
    assert_tables_equal(whole, ref_tables, where="one chunk")
    per_frame = as_dict(tables_for(singles, sigma, bin_ns))
    assert_tables_equal(per_frame, whole, where="one frame per chunk")
    random_cut = as_dict(tables_for(regroup(singles, cuts), sigma, bin_ns))
    assert_tables_equal(random_cut, whole, where=f"cuts {sorted(set(cuts))}")


def test_dask_run_equals_serial_for_random_chunkings(tmp_path) -> None:
    """The Dask reduction (completion order varies, tasks retried) gives the serial tables."""
    from fractions import Fraction

    from distributed import Client, LocalCluster

    from streamlens_dist.engine import run_dask
    from streamlens_dist.results import build_tables
    from streamlens_dist.settings import Settings

    with LocalCluster(n_workers=2, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        for seed in range(6):
            paths = _write(tmp_path, seed, 150, "pcap" if seed % 2 else "pcapng", 1 + seed % 3)
            rng = random.Random(seed)
            singles = one_frame_plan(paths)
            plan = regroup(singles, [rng.randrange(len(singles.chunks) + 1) for _ in range(20)])
            merged, outliers = run_dask(plan, Settings(), client)
            got = as_dict(build_tables(merged, Fraction(3), outliers))
            assert_tables_equal(got, as_dict(tables_for(plan)), where=f"seed {seed}")
            assert_tables_equal(got, as_dict(tables_for(singles)), where=f"seed {seed}")


def test_capture_without_frames_on_a_cluster(tmp_path) -> None:
    """A capture of only a file header has no chunk: the cluster path (which plans while it
    runs) fails like the serial one, with nothing to analyse and nothing written."""
    import struct

    from distributed import Client, LocalCluster

    import streamlens_dist
    from streamlens_dist.errors import CaptureFormatError

    path = tmp_path / "empty.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client, \
            pytest.raises(CaptureFormatError, match="no frame to analyse.*empty.pcap"):
        streamlens_dist.analyze(path, tmp_path / "c.zarr", client=client)
    with pytest.raises(CaptureFormatError, match="no frame to analyse.*empty.pcap"):
        streamlens_dist.analyze(path, tmp_path / "s.zarr", serial=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.pcap"]


def test_damaged_capture_streamed_to_a_cluster_equals_serial(tmp_path) -> None:
    """Chunks that reach the workers while the scan is still going (one local file) include
    the cuts at damage (garbage inside, a truncated end): same store and same problems as the
    serial run, which plans first."""
    from distributed import Client, LocalCluster

    import streamlens_dist

    rng = random.Random(11)
    path = tmp_path / "damaged.pcap"
    write_pcap(path, sorted(random_records(rng, 400)))
    data = path.read_bytes()
    mid = len(data) // 2
    path.write_bytes(data[:mid] + bytes(rng.randrange(256) for _ in range(37)) + data[mid:-9])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        got = streamlens_dist.analyze(path, tmp_path / "c.zarr", client=client,
                                      chunk_size=4096)
    want = streamlens_dist.analyze(path, tmp_path / "s.zarr", serial=True, chunk_size=4096)
    assert got.chunks == want.chunks > 3 and got.attrs["problems"]
    assert got.attrs["problems"] == want.attrs["problems"]
    assert_tables_equal(as_dict(got.tables), as_dict(want.tables), where="damaged, streamed")
