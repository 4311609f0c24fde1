"""The engine's store equals the single-process reference on every real capture, for any
chunk size: column by column, row by row."""

from __future__ import annotations

import pytest
from conftest import assert_tables_equal, real_captures
from reference import reference_analyze
from storeio import REFERENCE_ATTRS, load_store

import streamlens_dist

CAPTURES = real_captures()


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
@pytest.mark.parametrize("chunk_size", ["1KiB", "3000", "64MiB"])
def test_engine_matches_reference(capture, chunk_size, tmp_path) -> None:
    store = tmp_path / "out.zarr"
    streamlens_dist.analyze(capture, store, chunk_size=chunk_size, serial=True)
    tables, attrs = load_store(store)
    ref = reference_analyze([capture])
    assert attrs["complete"] is True
    for a in REFERENCE_ATTRS:
        assert attrs[a] == ref["attrs"][a], a
    assert_tables_equal(tables, {t: ref[t] for t in tables}, where=capture.name)


def test_sigma_changes_outliers_exactly(tmp_path) -> None:
    capture = next(p for p in CAPTURES if p.name == "mixed_many_protocols_vlan_ipv6.pcap")
    for sigma in ("2.5", "1"):
        store = tmp_path / f"s{sigma}.zarr"
        streamlens_dist.analyze(capture, store, sigma=sigma, chunk_size="16KiB", serial=True)
        tables, attrs = load_store(store)
        ref = reference_analyze([capture], sigma=sigma)
        assert attrs["sigma"] == sigma
        assert_tables_equal(tables, {t: ref[t] for t in tables}, where=sigma)
        assert len(tables["flow_outliers"]["frame"]) > 0


def test_rotated_set_is_one_capture(tmp_path) -> None:
    """Two files given in the wrong order are ordered by their first timestamps."""
    files = [p for p in CAPTURES if p.name in ("ptpv2_udp_ipv4_multicast.pcap",
                                               "ntp_client_server.pcap")]
    store = tmp_path / "set.zarr"
    summary = streamlens_dist.analyze(list(reversed(files)), store, chunk_size="1KiB",
                                      serial=True)
    ref = reference_analyze(files)
    tables, attrs = load_store(store)
    assert attrs["frames"] == ref["attrs"]["frames"] == 13
    assert attrs["files"] == summary.attrs["files"]
    assert_tables_equal(tables, {t: ref[t] for t in tables})


@pytest.mark.parametrize("variant", [{}, {"nanosecond": True, "big_endian": True}])
def test_generated_flight_test_capture(tmp_path, variant) -> None:
    from streamlens_dist.synth import flight_test_capture

    cap = tmp_path / "ft.pcap"
    truth = flight_test_capture(cap, 6000, seed=7, **variant)
    ref = reference_analyze([cap])
    for chunk_size in ("4KiB", "150KiB"):
        store = tmp_path / f"{chunk_size}.zarr"
        streamlens_dist.analyze(cap, store, chunk_size=chunk_size, serial=True)
        tables, attrs = load_store(store)
        assert attrs["frames"] == 6000
        assert_tables_equal(tables, {t: ref[t] for t in tables}, where=chunk_size)
    # every injected gap is found as an outlier of its (flow, frame type)
    late = set(tables["frame_type_outliers"]["frame"].tolist())
    assert truth.gaps and all(g.frame in late for g in truth.gaps)
