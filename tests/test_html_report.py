"""`report STORE --html FILE`: the self-contained HTML report, rendered in headless Chromium
(no console or page errors, no request but the file itself, every bokeh figure painted), its
content (the worst flow, the late frames of the worst stream), its bounded size on a store
with far more outliers, bins and gaps than the caps, older stores without series, and the CLI.

Screenshots go to $STREAMLENS_ARTIFACTS (default: the test's tmp_path).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bokeh.models import AdaptiveTicker, FixedTicker, Range1d
from browser import chromium_path, visit
from conftest import CAPTURES

from streamlens_dist.api import analyze
from streamlens_dist.campaign.cstore import Campaign
from streamlens_dist.campaign.manifest import discover
from streamlens_dist.campaign.run import run_campaign
from streamlens_dist.htmlreport import DEFAULT_POINTS, DEFAULT_ROWS, render_html, write_html_report
from streamlens_dist.htmlreport.campaign import heatmap_cells
from streamlens_dist.htmlreport.plots import (
    count_label,
    histogram_figure,
    histogram_range,
    iat_label,
)
from streamlens_dist.htmlreport.tables import MAX_TIMELINE_BINS, _coarsen
from streamlens_dist.reader import open_results
from streamlens_dist.series import EDGES
from streamlens_dist.store import write_store
from streamlens_dist.synth import flight_test_capture

pytestmark = pytest.mark.timeout(300)
CLI = str(Path(sys.executable).parent / "streamlens-dist")
F3 = CAPTURES / "ch10udp_f3_cg0_stream.pcap"  # Chapter 10 stream with late frames
MIXED = CAPTURES / "mixed_many_protocols_vlan_ipv6.pcap"  # 132 flows, 82 outliers
GAPS = CAPTURES / "ch10udp_f1_arinc429_random_hdrs.pcap"  # 24 sequence gaps


def _artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("STREAMLENS_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def browser_ok() -> None:
    missing = [what for what, ok in (("chromium", chromium_path() is not None),
                                     ("playwright", _has_playwright())) if not ok]
    if missing:
        fix = "apt-get install -y chromium; pip install playwright (bash .ci/run does both)"
        if os.geteuid() != 0:
            pytest.skip(f"{' and '.join(missing)} not installed and we are not root to "
                        f"install it: {fix}")
        pytest.fail(f"{' and '.join(missing)} not installed: {fix}")


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def _analyse(capture: Path, tmp_path: Path) -> str:
    store = str(tmp_path / f"{capture.stem}.zarr")
    analyze(capture, store, serial=True)
    return store


def _check_page(html: Path, shot: Path, plots: int) -> str:
    """Load the report in Chromium; the visible text of the page."""
    v = visit(html, shot)
    assert v.errors() == [], v.errors()
    assert v.requests == [html.resolve().as_uri()], "the report fetched something else"
    assert v.probe["roots"] == plots
    drawn = {p["name"]: p["ink"] for p in v.probe["views"] if p["name"]}
    assert len(drawn) == plots and all(ink > 0 for ink in drawn.values()), drawn
    assert shot.stat().st_size > 10_000
    return v.text


@pytest.mark.parametrize("capture", [F3, MIXED, GAPS], ids=lambda p: p.stem)
def test_capture_report_in_chromium(capture: Path, tmp_path: Path, browser_ok: None) -> None:
    store = _analyse(capture, tmp_path)
    res = open_results(store)
    html = tmp_path / "report.html"
    rep = write_html_report(store, html)
    assert rep.size == html.stat().st_size
    text = _check_page(html, _artifacts(tmp_path) / f"report-{capture.stem}.png", rep.plots)

    flows = res.table("flows")
    worst = int(np.argmax(flows["outliers"].to_numpy()))
    assert f"{flows['src'].iat[worst]} > {flows['dst'].iat[worst]}" in text
    # timelines of min(10, flows) worst flows, plus the histograms
    assert rep.plots >= min(10, len(flows)) + 1
    late = res.late_frames()
    filt = re.search(r"frame\.number in \{([0-9 ]*)\}", text)
    if len(late):
        assert late["stream"].iat[0] in text and late["flow"].iat[0] in text
        assert filt is not None
        assert [int(x) for x in filt.group(1).split()] == [int(f) for f in late["frame"]]
    else:
        assert "No protocol stream has late frames" in text
    gaps = res.table("sequence_gaps")
    if len(gaps):  # the gap with the most missing messages is the first row
        top = gaps.sort_values("missing", ascending=False, kind="stable").iloc[0]
        assert re.search(rf"\t{top['missing']}\t{top['frame_before']}\t{top['frame_after']}\t",
                         text), "worst gap row missing"


def _campaign(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    flights = [("T1", "2026-03-01", "F001"), ("T1", "2026-03-04", "F002"),
               ("T2", "2026-03-01", "F001")]
    for seed, (tail, date, flight) in enumerate(flights, 1):
        d = root / tail / date / flight
        d.mkdir(parents=True)
        flight_test_capture(d / "rec.pcap", 2500, seed=seed)
    camp = Campaign.create(tmp_path / "c.zarr", "3", 1 << 20)
    camp.add(discover(str(root), "{tail}/{date}/{flight}/*.pcap*"))
    run_campaign(camp.root, serial=True)
    return Path(camp.root)


def test_campaign_report_in_chromium(tmp_path: Path, browser_ok: None) -> None:
    store = _campaign(tmp_path)
    res = open_results(store)
    html = tmp_path / "campaign.html"
    rep = write_html_report(store, html)
    assert rep.plots == 1  # the heatmap
    text = _check_page(html, _artifacts(tmp_path) / "report-campaign.png", rep.plots)
    for cid in res.captures():
        assert cid in text
    fleet = res.table("fleet_flows")
    worst = int(np.argmax(fleet["outlier_rate"].fillna(-1).to_numpy()))
    assert f"{fleet['src'].iat[worst]} > {fleet['dst'].iat[worst]}" in text
    # one heatmap cell per (flow, capture) row of the fleet, rate = outliers / IATs
    cells, flows, caps, note = heatmap_cells(res)
    per = res.table("fleet_flow_captures")
    assert len(flows) == len(fleet) and caps == res.captures() and note == ""
    assert len(cells) == len(per)
    assert cells["outliers"].sum() == per["outliers"].sum() > 0
    rated = cells[cells["iat_count"] > 0]
    assert np.allclose(rated["rate"], rated["outliers"] / rated["iat_count"])


def _huge_store(tmp_path: Path) -> tuple[str, dict]:
    """A real capture's results with flow 0 given 300,000 outliers over 100,000 one-second
    series bins and stream 0 given 50,000 late frames and gaps: far past every cap."""
    cap = tmp_path / "small.pcap"
    flight_test_capture(cap, 3000, seed=3)
    base = open_results(_analyse(cap, tmp_path))
    t, a = base.tables, dict(base.attrs)
    rng = np.random.default_rng(1)
    first, n_bins, n_out, n_late = int(a["first_ns"]), 100_000, 300_000, 50_000
    ts = np.sort(first + rng.integers(0, n_bins * 10**9, n_out))
    frames = np.arange(1, n_out + 1, dtype=np.int64) * 3
    dev = rng.random(n_out) * 100
    out = {"flow": np.zeros(n_out, np.int64), "frame": frames, "ts_ns": ts,
           "iat_ns": rng.integers(10**7, 10**9, n_out), "deviation": dev}
    b = np.arange(n_bins, dtype=np.int64)
    iat_n = rng.integers(1, 50, n_bins)
    series = {"flow": np.zeros(n_bins, np.int64), "bin_start_ns": first // 10**9 * 10**9 + b * 10**9,
              "frames": iat_n, "bytes": iat_n * 100, "iat_count": iat_n,
              "iat_sum_ns": iat_n * 10**7, "iat_min_ns": np.full(n_bins, 10**6),
              "iat_max_ns": np.full(n_bins, 10**8), "iat_sumsq_hi": np.zeros(n_bins, np.int64),
              "iat_sumsq_lo": np.zeros(n_bins, np.int64)}
    keep = t.flow_series["flow"] != 0
    series = {c: np.concatenate([v, t.flow_series[c][keep]]) for c, v in series.items()}
    late = {"stream_row": np.zeros(n_late, np.int64), "frame": frames[:n_late],
            "ts_ns": ts[:n_late], "iat_ns": out["iat_ns"][:n_late], "deviation": dev[:n_late]}
    gaps = {c: np.arange(n_late, dtype=np.int64) for c in t.sequence_gaps}
    gaps["stream_row"] = np.zeros(n_late, np.int64)
    flows = dict(t.flows)
    flows["outliers"] = flows["outliers"].copy()
    flows["outliers"][0] = n_out
    streams = dict(t.streams)
    streams["outliers"] = streams["outliers"].copy()
    streams["outliers"][0] = n_late
    big = dataclasses.replace(t, flows=flows, flow_outliers=out, flow_series=series,
                              streams=streams, stream_outliers=late, sequence_gaps=gaps)
    path = str(tmp_path / "huge.zarr")
    write_store(path, big, {k: v for k, v in a.items() if k not in ("schema", "complete")},
                overwrite=False)
    return path, a


def test_report_size_is_bounded(tmp_path: Path) -> None:
    path, _ = _huge_store(tmp_path)
    normal = write_html_report(tmp_path / "small.zarr", tmp_path / "small.html").size
    rep = write_html_report(path, tmp_path / "huge.html")
    text = (tmp_path / "huge.html").read_text()
    if chromium_path() and _has_playwright():  # and it still draws (without a browser: sizes)
        _check_page(tmp_path / "huge.html", _artifacts(tmp_path) / "report-huge.png", rep.plots)
    # 300,000 outliers, 100,000 bins, 50,000 gaps: capped and re-binned to a few hundred kB
    assert rep.size < 3_000_000 and rep.size - normal < 600_000, (rep.size, normal)
    assert f"{DEFAULT_POINTS:,} largest deviations drawn" in text
    assert f"{DEFAULT_ROWS:,} of 300,000 outliers" in text
    assert f"{DEFAULT_ROWS:,} of 50,000 late frames" in text
    assert f"{DEFAULT_ROWS:,} of 50,000 gaps" in text
    assert "bins of 50 s" in text  # 100,000 one-second bins re-binned to 2,000


def test_coarsened_bins_are_exact_sums() -> None:
    import pandas as pd

    rng = np.random.default_rng(7)
    starts = np.sort(rng.choice(10_000, 4_000, replace=False)).astype(np.int64) * 10
    n = rng.integers(1, 9, len(starts))
    rows = pd.DataFrame({"bin_start_ns": starts, "iat_count": n, "iat_sum_ns": n * 1000 + 7,
                         "iat_min_ns": rng.integers(0, 100, len(starts)),
                         "iat_max_ns": rng.integers(100, 10**6, len(starts))})
    out, width = _coarsen(rows, 10, 300)
    assert len(out) <= 300 and width % 10 == 0
    assert out["iat_count"].sum() == n.sum() and out["iat_sum_ns"].sum() == rows["iat_sum_ns"].sum()
    assert out["iat_max_ns"].max() == rows["iat_max_ns"].max()
    first = rows[rows["bin_start_ns"] < starts[0] + width]
    assert out["iat_min_ns"].iat[0] == first["iat_min_ns"].min()
    few = rows[rows["bin_start_ns"] < 10 * MAX_TIMELINE_BINS]
    same, width = _coarsen(few, 10, MAX_TIMELINE_BINS)
    assert same is few and width == 10  # small enough: unchanged


def test_timeline_bins_whose_sum_is_lost_have_no_mean(tmp_path) -> None:
    """A capture whose times swing between 1970 and 2106 inside one flow: its series bins
    marked SUM_LOST (docs/SERIES.md) are drawn without a mean, the others with theirs, and
    the page renders; coarsening them sums in floats (int64 would wrap)."""
    from streamlens_dist.series import SUM_LOST
    from streamlens_dist.synth import udp_frame, write_pcap

    frame = udp_frame("10.0.0.1", "10.0.0.2", 1000, 2000, bytes(20))
    times = [(5 if i % 2 else 0xFFFFFFFF) * 10**9 + i * 1000 for i in range(9)]
    times += [1000 * 10**9 + i * 10**6 for i in range(3)]  # a bin with a mean
    path = tmp_path / "swing.pcap"
    write_pcap(path, [(t, frame) for t in times])
    store = tmp_path / "s.zarr"
    analyze(path, store, serial=True)
    res = open_results(store)
    ser = res.flow_series
    assert (ser["iat_sumsq_hi"] == SUM_LOST).any() and (ser["iat_sumsq_hi"] >= 0).any()
    from streamlens_dist.htmlreport.tables import timeline

    t = timeline(res.flows, ser, res.flow_outliers, 0, 10**9, 3.0, 100, 1 << 40)  # as stored
    lost = t.bins["mean_ns"].isna()
    assert lost.tolist() == (ser["iat_sumsq_hi"] == SUM_LOST).tolist() and not lost.all()
    kept = ser[ser["iat_sumsq_hi"] >= 0]
    assert t.bins["mean_ns"].dropna().tolist() == (kept["iat_sum_ns"] / kept["iat_count"]).tolist()
    wide = timeline(res.flows, ser, res.flow_outliers, 0, 10**9, 3.0, 100, 2)  # coarsened
    assert wide.bins["iat_count"].sum() == ser["iat_count"].sum() and len(wide.bins) <= 2
    assert wide.bins["mean_ns"].isna().any()  # a wide bin holding a lost one has no mean
    write_html_report(store, tmp_path / "r.html")


# label budget of a 380 x 230 px histogram: ~290 px of x axis for labels like "100 µs",
# ~150 px of y axis
MAX_X_LABELS, MAX_Y_LABELS = 6, 5


def _adaptive_ticks(lo: float, hi: float, ticker: AdaptiveTicker) -> list[float]:
    """The major ticks BokehJS's AdaptiveTicker draws on [lo, hi]: the interval mantissa *
    10^k whose tick count is nearest desired_num_ticks, clamped to min_interval."""
    m = list(ticker.mantissas)
    ext = [m[-1] / ticker.base, *m, m[0] * ticker.base]
    bf = ticker.min_interval or 1.0
    mag = ticker.base ** math.floor(math.log((hi - lo) / ticker.desired_num_ticks / bf,
                                             ticker.base)) * bf
    best = min(ext, key=lambda x: abs(ticker.desired_num_ticks - (hi - lo) / (x * mag)))
    step = max(ticker.min_interval, best * mag)
    return [f * step for f in range(math.floor(lo / step), math.ceil(hi / step) + 1)
            if lo <= f * step <= hi]


@pytest.mark.parametrize("edges", [EDGES, EDGES[40:43], (10**6,), (1, 10**27)],
                         ids=["store", "3-edges", "1-edge", "27-decades"])
@pytest.mark.parametrize("top", [[1], [1, 2, 3], [9], [10], [10**6], [5, 10**9]],
                         ids=lambda c: "-".join(map(str, c)))
def test_histogram_axes_never_crowd(edges: tuple[int, ...], top: list[int]) -> None:
    """A log axis over a narrow range (a few IATs: 0.5..3) made bokeh tick it linearly with
    a crowd of labels (0.5, 0.6, ...), and a zoomed x axis bunched its labels likewise: at
    any count, bin range and zoom there are now few, evenly spread, integer-looking labels."""
    counts = np.zeros(len(edges) + 1, np.int64)
    fit = top[-len(counts):]  # the largest that fit in so few bins
    counts[len(counts) - len(fit):] = fit
    x = histogram_range(edges)
    p = histogram_figure("t", counts, edges, x)

    y, yt = p.y_range, p.yaxis[0].ticker
    assert isinstance(y, Range1d) and isinstance(yt, FixedTicker)
    assert y.start == 0.5 and y.end > max(top) and y.end >= 10  # 1..10 at least
    shown = [t for t in yt.ticks if y.start <= t <= y.end]
    assert 2 <= len(shown) <= MAX_Y_LABELS, shown
    labels = p.yaxis[0].major_label_overrides
    for t in shown:  # whole decades, labelled as the integer they are
        assert t >= 1 and 10 ** round(math.log10(t)) == t, shown
        label = labels[t]
        m = re.fullmatch(r"([1-9]0*)([kMG]?)", label)
        assert m, label
        digits, suffix = m.groups()
        assert int(digits) * {"": 1, "k": 10**3, "M": 10**6, "G": 10**9}[suffix] == t, label

    # x in log10(s): zoomable down to min_interval decades, never past the bins
    xt = p.xaxis[0].ticker
    assert isinstance(xt, AdaptiveTicker) and xt.min_interval >= 1  # whole decades only
    assert x.bounds == (x.start, x.end) and x.min_interval >= 2
    xlabels = p.xaxis[0].major_label_overrides
    span = x.end - x.start
    for width in np.linspace(x.min_interval, span, 25):
        for lo in np.linspace(x.start, x.end - width, 25):
            ticks = _adaptive_ticks(lo, lo + width, xt)
            assert 2 <= len(ticks) <= MAX_X_LABELS, (lo, width, ticks)
            assert all(round(t) in xlabels for t in ticks), ticks


def test_tick_labels() -> None:
    assert [iat_label(d) for d in (-10, -9, -7, -6, -4, -3, 0, 2, 3, 4)] == [
        "10⁻¹⁰ s", "1 ns", "100 ns", "1 µs", "100 µs", "1 ms", "1 s", "100 s", "1000 s", "10⁴ s"]
    assert [count_label(d) for d in (0, 2, 3, 5, 6, 9, 10)] == [
        "1", "100", "1k", "100k", "1M", "1G", "10G"]


def test_store_without_series(tmp_path: Path) -> None:
    """A store written before the series and histogram tables: outliers-only timelines and
    a note instead of the histograms."""
    store = Path(_analyse(F3, tmp_path))
    for name in ("flow_series", "frame_type_series", "flow_histograms", "frame_type_histograms"):
        shutil.rmtree(store / name)
    text, plots = render_html(open_results(store))
    assert "no time series in this store: outliers only" in text
    assert "This store has no IAT histograms" in text
    assert plots == 1 and "frame.number in {" in text
    # the text report and the API summary of such a store still work (empty series tables)
    res = open_results(store)
    assert len(res.tables.flow_series["flow"]) == 0 and res.summary()["flows"]
    with pytest.raises(KeyError, match="before series were stored"):
        res.series()


@pytest.mark.parametrize("capture", ["pcapng_simple_packet_blocks.pcapng",
                                     "irig106_ch24_tmns_single.pcap",
                                     "ch10udp_f1_cg0_zero_timestamps.pcap"])
def test_small_and_empty_captures(capture: str, tmp_path: Path) -> None:
    store = _analyse(CAPTURES / capture, tmp_path)
    text, plots = render_html(open_results(store))
    assert "Late frames of the worst stream" in text and "<script" in text
    # nothing to fetch: no external script, stylesheet or image (BokehJS is inline, and
    # its code has such strings: look at the page outside the scripts' bodies)
    page = re.sub(r"(<script[^>]*>).*?</script>", r"\1", text, flags=re.S)
    assert page.count("<script") >= 2  # BokehJS and the document
    assert not re.search(r"<(script|img)[^>]*\ssrc=|<link[^>]*href=", page)


def test_cli(tmp_path: Path) -> None:
    store = _analyse(GAPS, tmp_path)  # 24 flows
    out = tmp_path / "r.html"
    run = subprocess.run([CLI, "report", store, "--html", str(out), "--html-flows", "2"],
                         capture_output=True, text=True)
    attrs = open_results(store).attrs
    assert attrs["malformed_payloads"]  # a store with data problems reads successfully: 0
    assert run.returncode == 0, run.stderr
    size = out.stat().st_size
    assert run.stdout.strip().startswith(f"wrote {out} (") and f"{size:,} bytes" in run.stdout
    plots = int(re.search(r"(\d+) plots", run.stdout).group(1))
    # --html-flows: timelines of that many flows, the rest (histograms) the same
    assert render_html(open_results(store), flows=5)[1] == plots + 3
    for args, code, message in (
            ([str(tmp_path / "missing.zarr"), "--html", str(out)], 1, "no result store here"),
            ([store, "--html", str(tmp_path / "no" / "r.html")], 1, "does not exist"),
            ([store, "--html", str(tmp_path)], 1, "it is a directory"),
            ([store, "--html", str(out), "--json"], 2, "exclusive")):
        bad = subprocess.run([CLI, "report", *args], capture_output=True, text=True)
        assert bad.returncode == code and message in bad.stderr, bad.stderr
        if code == 1:
            assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert out.stat().st_size == size  # a failed run leaves the old report alone
