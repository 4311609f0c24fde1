"""open_results (notebook API) and `streamlens-dist report`: the store read back as DataFrames,
and the report's JSON equal to what the API returns (and to analyze's own summary)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CAPTURES, strict_json
from storeio import load_store

import streamlens_dist
from streamlens_dist import CampaignResults, Results, open_results
from streamlens_dist.campaign.cstore import LAYOUT as CAMPAIGN_LAYOUT
from streamlens_dist.campaign.cstore import Campaign
from streamlens_dist.campaign.manifest import CaptureEntry
from streamlens_dist.campaign.run import run_campaign
from streamlens_dist.errors import SettingsError
from streamlens_dist.store import LAYOUT
from streamlens_dist.synth import flight_test_capture

CLI = str(Path(sys.executable).parent / "streamlens-dist")


def _json(obj: object) -> object:
    return json.loads(json.dumps(obj, default=str))


def _report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    d = tmp_path_factory.mktemp("reader")
    cap = d / "ft.pcap"
    flight_test_capture(cap, 8000, seed=5)
    summary = streamlens_dist.analyze([cap, CAPTURES / "iena_n_key001a_10hz.pcap"],
                                      d / "s.zarr", chunk_size="16KiB", serial=True)
    return d / "s.zarr", summary


def test_tables_as_dataframes(analysed) -> None:
    store, summary = analysed
    res = open_results(store)
    assert isinstance(res, Results)
    tables, attrs = load_store(store)
    assert res.attrs == attrs
    for name, cols in LAYOUT.items():
        df = res.table(name)
        assert list(df.columns) == list(cols)
        assert len(df) == len(tables[name][next(iter(cols))])
        for c in cols:
            want = tables[name][c]
            got = df[c].to_numpy()
            if want.dtype.kind == "f":
                assert np.array_equal(got, want, equal_nan=True), (name, c)
            else:
                assert [str(x) for x in got] == [str(x) for x in want], (name, c)
    assert res.flows is res.table("flows")  # read once
    with pytest.raises(KeyError, match="no table"):
        res.table("nope")


def test_summary_equals_analyze_and_report_json(analysed) -> None:
    store, summary = analysed
    res = open_results(store)
    from_api = _json(res.summary())
    from_run = _json(summary.to_dict())
    for key in ("attrs", "flows", "outliers", "top_flows", "top_frame_types", "streams",
                "sequence_gaps", "top_streams_by_loss", "top_streams_by_outliers"):
        assert from_api[key] == from_run[key], key
    out = _report("report", str(store), "--json")
    assert out.returncode == 0, out.stderr  # reading a store is a success, problems or not
    assert strict_json(out.stdout) == from_api
    text = _report("report", str(store), "--top", "3")
    assert text.returncode == 0, text.stderr
    assert str(store) in text.stdout
    for title in (f"Flows: 3 of {from_api['flows']}", "Frame types: 3 of",
                  f"Protocol streams: 3 of {from_api['streams']}"):
        assert title in text.stdout, title


def test_late_frames_of_the_worst_stream(analysed) -> None:
    store, _ = analysed
    res = open_results(store)
    late = res.late_frames()
    st = res.streams
    worst = int(np.argmax(st["outliers"].to_numpy()))
    assert st["outliers"].iloc[worst] > 0 and len(late) == st["outliers"].iloc[worst]
    assert list(late.index) == list(range(len(late)))  # 0..n-1, as every other table
    assert isinstance(res.tables.flows["src"], np.ndarray)  # an attribute, as Summary's
    assert (late["stream_row"] == worst).all()
    assert set(late["frame"]) <= set(res.stream_outliers["frame"])
    flow = res.flows.iloc[int(st["flow"].iloc[worst])]
    assert (late["flow"] == f"{flow['src']} > {flow['dst']}").all()


def test_campaign_results(tmp_path) -> None:
    caps = []
    for i in range(3):
        p = tmp_path / f"c{i}.pcap"
        flight_test_capture(p, 1500, seed=20 + i)
        caps.append(p)
    camp = Campaign.create(tmp_path / "camp.zarr", "3", 1 << 20)
    camp.add([CaptureEntry(f"cap{i}", (str(p),), f"T{i % 2}") for i, p in enumerate(caps)])
    run_campaign(camp.root, serial=True)
    res = open_results(camp.root)
    assert isinstance(res, CampaignResults)
    assert res.captures() == ["cap0", "cap2", "cap1"]  # by (date, tail, flight, id)
    import zarr

    g = zarr.open_group(camp.root, mode="r")
    for name, cols in CAMPAIGN_LAYOUT.items():
        df = res.table(name)
        assert list(df.columns) == list(cols) and len(df) == g[name][next(iter(cols))].shape[0]
    one = res.capture("cap1")
    assert one.attrs["frames"] == 1500
    assert one.table("flows").equals(open_results(camp.capture_path("cap1")).table("flows"))
    out = _report("report", camp.root, "--json", "--top", "3")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == _json(res.summary(top=3))
    assert json.loads(_report("campaign", "report", camp.root, "--json", "--top", "3").stdout) \
        == json.loads(out.stdout)
    assert json.loads(out.stdout)["captures"] == {"ok": 3}


def test_not_a_store(tmp_path) -> None:
    with pytest.raises(SettingsError, match="no result store"):
        open_results(tmp_path)
    r = _report("report", str(tmp_path))
    assert r.returncode == 1 and "no result store" in r.stderr and "Traceback" not in r.stderr


def test_series_as_xarray(analysed) -> None:
    """Dense series over time agree with the flows' own totals and with a brute-force
    recomputation from the reference's frames; the lazy form is the stored long table."""
    from reference import reference_frames

    store, _ = analysed
    res = open_results(store)
    flows = res.flows
    # the two files are years apart: every flow over one time axis at 1 s is refused
    with pytest.raises(ValueError, match="too big to make dense"):
        res.series("flow")
    recent = [i for i in range(len(flows)) if flows["first_ns"].iloc[i] > 1.6e18]
    ds = res.series("flow", rows=recent)
    assert 1 < ds.sizes["flow"] == len(recent) < len(flows)
    sub = flows.iloc[recent]
    assert (ds["frames"].sum("time").values == sub["frames"].to_numpy()).all()
    assert (ds["iat_count"].sum("time").values == sub["iat_count"].to_numpy()).all()
    assert (ds["iat_sum_ns"].sum("time").values == sub["iat_sum_ns"].to_numpy()).all()
    some = sub["iat_count"].to_numpy() > 0
    assert np.array_equal(np.nanmax(ds["iat_max_ns"].values[some], axis=1),
                          sub["iat_max_ns"].to_numpy()[some])
    # the busiest flow, bin by bin, from the frames themselves
    row = recent[int(np.argmax(sub["frames"].to_numpy()))]
    key = (flows["kind"].iloc[row], flows["src"].iloc[row], flows["dst"].iloc[row])
    frames = [f for f in reference_frames(res.attrs["files"]) if f["status"] == "ok"
              and (f["kind"], f["src"], f["dst"]) == key]
    bin_ns = res.attrs["series_bin_ns"]
    per_bin: dict[int, list[int]] = {}
    for a, b in zip(frames, frames[1:], strict=False):
        per_bin.setdefault(b["ts_ns"] // bin_ns * bin_ns, []).append(b["ts_ns"] - a["ts_ns"])
    one = ds.sel(flow=row)
    for start, iats in per_bin.items():
        cell = one.sel(time=np.datetime64(start, "ns"))
        assert int(cell["iat_count"]) == len(iats)
        assert float(cell["iat_mean_ns"]) == sum(iats) / len(iats)
        if len(iats) > 1:
            m = sum(iats) / len(iats)
            want = (sum((x - m) ** 2 for x in iats) / (len(iats) - 1)) ** 0.5
            assert float(cell["iat_std_ns"]) == pytest.approx(want, rel=1e-9)
    empty = one.where(one["frames"] == 0, drop=True)
    assert np.isnan(empty["iat_mean_ns"].values).all()
    assert res.series("flow", rows=[row]).sizes["flow"] == 1

    lazy = res.series("frame_type", lazy=True)
    stored = res.frame_type_series
    assert lazy.sizes["row"] == len(stored)
    for c in stored.columns:
        assert np.array_equal(lazy[c].values, stored[c].to_numpy()), c

    h = res.histograms("frame_type")
    assert (h.sum("bin").values == res.frame_types["iat_count"].to_numpy()).all()
    assert h["lower_ns"].values[1] == 1000 and h["upper_ns"].values[-2] == 10**12
    with pytest.raises(ValueError, match="kind"):
        res.series("stream")
